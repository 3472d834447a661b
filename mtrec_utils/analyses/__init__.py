"""Analyses, one folder per topic a notebook teaches.

joint_loss   notebook 01: gradients of the joint loss, a toy two-task problem, exercises
embedding    notebook 05: the joint embedding space, cold start, cross-domain, low-data augmentation
cases        notebooks 06 and 07: the ad and personalization case studies
finetuning   notebook 08: fine-tuning modes, memory, profiling, multi-process launch
outlook      notebook 10: continual learning, few-label prompting, robustness to perturbed input
"""

"""Notebook 10: where the article says the field goes (its sections 8.2-8.4).

continual    continual learning on time-ordered MovieLens: scratch, naive fine-tuning, replay, EWC, adapters
fewshot      fewer labels through prompt-style task descriptions: zero-shot and k-shot learning curves
robustness   robustness to perturbed input text: metric vs perturbation strength, the area under it
"""

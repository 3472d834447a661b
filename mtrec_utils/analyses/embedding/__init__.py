"""Notebook 05: the joint embedding space, cold start, cross-domain learning, low-data augmentation."""

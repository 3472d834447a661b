"""Notebook 01: the joint loss, its gradients, a toy two-task problem and the exercises."""

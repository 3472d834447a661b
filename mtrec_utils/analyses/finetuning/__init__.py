"""Notebook 08: LoRA / IA3 / full fine-tuning, memory, profiling and the multi-process launch."""

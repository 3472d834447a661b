"""Peak memory of a training step, on CUDA and on CPU.

On CUDA, ``torch.cuda.max_memory_allocated`` is exact. On CPU, the process RSS only grows (freed
memory is kept by the allocator) and ``tracemalloc`` does not see tensor memory, so the meter adds
up what a training step must hold at its peak: weights, gradients, optimizer state, and the
tensors autograd saves for the backward pass (counted once per storage with
``torch.autograd.graph.saved_tensors_hooks``). Temporary buffers inside one operator are not
counted, so the CPU figure is a lower bound; the same rule applies to every mode compared.
"""

from __future__ import annotations

import contextlib

import torch

MB = 2**20


class MemoryMeter:
    """Measure one training run's peak memory (see the module docstring for what is counted).

    Args:
        device: the training device; ``cuda`` uses the allocator's peak, anything else the estimate.

    Attributes:
        kind: ``"cuda_max_allocated"`` or ``"cpu_weights_grads_optimizer_saved_activations"``.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.kind = "cuda_max_allocated" if self.cuda else "cpu_weights_grads_optimizer_saved_activations"
        self.saved_bytes = 0
        self.state_bytes = 0
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)

    @contextlib.contextmanager
    def saved_tensors(self, enabled: bool = True):
        """Within the block, add up the bytes of distinct storages saved for backward."""
        if not enabled:
            yield
            return
        seen: set[int] = set()

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                self.saved_bytes += storage.nbytes()
            return t

        self.saved_bytes = 0
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield

    def after_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """After ``optimizer.step()`` (before ``zero_grad``): weights + gradients + optimizer state."""
        if step != 1:
            return
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
        state = sum(
            v.numel() * v.element_size()
            for s in optimizer.state.values()
            for v in s.values()
            if isinstance(v, torch.Tensor)
        )
        self.state_bytes = weights + grads + state

    def sync(self) -> None:
        """Wait for queued CUDA work, so that wall-clock step times are real."""
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def peak_mb(self) -> float:
        """Peak MiB: the CUDA allocator's peak, or the CPU estimate (state + saved activations)."""
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / MB
        return (self.state_bytes + self.saved_bytes) / MB

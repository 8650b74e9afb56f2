"""Device choice and the batch policy: CUDA when present, else CPU; halve the batch on out-of-memory."""

from __future__ import annotations

import os
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` ('cpu', 'cuda', 'cuda:1') or $EXPLORER_DEVICE, else CUDA when available, else CPU."""
    name = requested or os.environ.get("EXPLORER_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from explorer.core.errors import ExplorerError

        raise ExplorerError(f"device {name!r} was asked for but CUDA is not available here; use 'cpu'")
    return dev


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    if "failed to allocate memory" in msg:  # ONNX Runtime's arena (the scoring engine), its own exception type
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in msg or "can't allocate memory" in msg)


class BatchPolicy:
    """How many images go through the model at once.

    The size starts from a budget (4 on CPU: EfficientNet-Lite0 in channels_last peaks there at ~195 img/s on
    a 2-core machine, against ~110 at batch 16 — see benchmarks/bench_perturbation.py; 128 on CUDA at 224²,
    scaled down with the input area) and halves on out-of-memory, retrying the same work.
    The halved size is kept for later calls.
    """

    def __init__(self, device: torch.device, input_hw: tuple[int, int] = (224, 224), size: int | None = None):
        self.device = device
        if size is None:
            area = max(1, input_hw[0] * input_hw[1])
            base = 128 if device.type == "cuda" else 4
            size = max(1, int(base * (224 * 224) / area)) if area > 224 * 224 else base
        self.size = int(size)
        self.halvings = 0

    def call(self, fn: Callable[[torch.Tensor], T], batch: torch.Tensor, cat: Callable | None = None):
        """``fn(batch)``; on OOM split the batch in two, halve the policy, retry (down to one image)."""
        try:
            return fn(batch)
        except Exception as exc:  # only OOM is handled, the rest re-raised
            if not is_oom(exc) or batch.shape[0] <= 1:
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.size = max(1, min(self.size, batch.shape[0] // 2))
        self.halvings += 1
        half = batch.shape[0] // 2
        a = self.call(fn, batch[:half], cat)
        b = self.call(fn, batch[half:], cat)
        return (cat or (lambda x, y: torch.cat([x, y])))(a, b)

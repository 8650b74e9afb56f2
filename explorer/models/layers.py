"""Layer discovery and hook context managers (hooks never outlive the ``with`` block)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from explorer.core.errors import UnknownNameError


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    shape: tuple[int, ...]  # output shape for one input image


def discover(module: nn.Module, example: torch.Tensor) -> list[LayerInfo]:
    """Modules whose output is a 4-D feature map with a spatial extent > 1, in the order they finish."""
    found: list[LayerInfo] = []
    seen: set[str] = set()

    def hook(name):
        def fn(mod, inputs, output):
            if name in seen or not isinstance(output, torch.Tensor) or output.dim() != 4:
                return
            if output.shape[2] * output.shape[3] <= 1:
                return
            seen.add(name)
            found.append(LayerInfo(name, type(mod).__name__, tuple(output.shape[1:])))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules() if n]
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    skip = (nn.Dropout, nn.Dropout2d, nn.Identity)
    return [f for f in found if not isinstance(module.get_submodule(f.name), skip)]


def get_layer(module: nn.Module, name: str, valid: list[str]) -> nn.Module:
    if name not in valid:
        raise UnknownNameError("layer", name, valid)
    return module.get_submodule(name)


@contextmanager
def recording(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record each module's forward output (graph kept, so gradients w.r.t. it can be taken)."""
    store: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for name, mod in modules.items():
            def fn(m, i, o, name=name):
                store[name] = o
            handles.append(mod.register_forward_hook(fn))
        yield store
    finally:
        for h in handles:
            h.remove()


def hook_count(module: nn.Module) -> int:
    """How many hooks of any kind are registered anywhere in ``module`` (tests: must stay 0)."""
    total = 0
    for m in module.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs"):
            d = getattr(m, attr, None)
            if d:
                total += len(d)
    return total

"""Layer discovery and hook context managers (hooks never outlive the ``with`` block).

A candidate layer is a module whose output, for one image, can be read as a spatial feature map (C, h, w).
Three layouts occur in the models we load:

- ``NCHW``: convolutional nets (ResNet, MobileNet, EfficientNet, RegNet, ConvNeXt's stages);
- ``NHWC``: channels-last token grids (Swin in timm and torchvision, the inner layers of ConvNeXt blocks);
- ``NLC``: token sequences (ViT, DeiT, Swin's flattened MLP input): ``prefix`` leading tokens that are not
  patches (class, distillation, register tokens) followed by the h×w patch tokens in raster order.

Which layout a tensor has is not written on it, so it is inferred from the input's size: a spatial grid
(h, w) of an H×W input has the same stride on both axes (H/h ≈ W/w); a token count N must split as
prefix + h·w with such a grid. ``as_grid`` turns a recorded output into (B, C, h, w) by views only, so
gradients taken with respect to the raw output convert the same way.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from explorer.core.errors import UnknownNameError, UnsupportedError

MAX_PREFIX = 32  # class + distillation + register tokens; more would be an unusual model
LAYOUTS = ("NCHW", "NHWC", "NLC")


@dataclass(frozen=True)
class LayerInfo:
    name: str
    type: str
    shape: tuple[int, ...]  # (C, h, w) of the feature map for one input image, whatever the layout
    layout: str = "NCHW"
    prefix: int = 0  # NLC only: leading non-patch tokens dropped before the reshape
    raw: tuple[int, ...] = ()  # the module's output shape for one image, as recorded

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.shape[-2]), int(self.shape[-1])

    def describe(self) -> str:
        c, h, w = self.shape
        extra = f", {self.prefix} prefix token(s) dropped" if self.prefix else ""
        return f"{self.name} ({self.type}, {self.layout} {c}x{h}x{w}{extra})"


# --------------------------------------------------------------------------- layout inference
def _stride_mismatch(h: int, w: int, H: int, W: int) -> float:
    """How far (h, w) is from being the same-stride grid of an H×W input (0 = same stride on both axes)."""
    if h < 1 or w < 1 or h > H or w > W:
        return math.inf
    sh, sw = H / h, W / w
    return abs(sh - sw) / max(sh, sw)


def token_grid(n: int, H: int, W: int, prefix_hint: int | None = None) -> tuple[int, int, int] | None:
    """(prefix, h, w) with n = prefix + h·w and (h, w) a same-stride grid of H×W, or None.

    The model's own prefix count (timm's ``num_prefix_tokens``) is tried first; otherwise the smallest
    prefix that leaves a grid wins (grids are sparse among integers, so a wrong split is unlikely)."""
    tries = ([prefix_hint] if prefix_hint is not None else []) + list(range(0, MAX_PREFIX + 1))
    for p in tries:
        m = n - p
        if m < 2 or p > m // 4:  # a prefix larger than a quarter of the grid is not a ViT layout
            continue
        gh = max(1, round(math.sqrt(m * H / W)))
        for h in (gh - 1, gh, gh + 1):
            if h >= 1 and m % h == 0 and _stride_mismatch(h, m // h, H, W) < 0.1:
                return p, h, m // h
    return None


def classify(shape: tuple[int, ...], H: int, W: int, prefix_hint: int | None = None) -> tuple[str, int, tuple] | None:
    """(layout, prefix, (C, h, w)) for one image's output ``shape`` (batch dim removed), or None."""
    if len(shape) == 3:
        c, a, b = shape
        as_nchw = _stride_mismatch(a, b, H, W)
        as_nhwc = _stride_mismatch(shape[0], shape[1], H, W)
        # channels-last only when it fits clearly better: a conv map (C, h, w) stays NCHW even for odd sizes
        if as_nhwc < 0.1 and as_nchw > 0.2 and shape[0] * shape[1] > 1:
            return "NHWC", 0, (shape[2], shape[0], shape[1])
        if a * b <= 1 or a > H or b > W:
            return None
        if H / a < 2 and abs(H / a - 1) > 0.1:  # between strides 1 and 2: an N×N attention matrix, not a map
            return None
        return "NCHW", 0, (c, a, b)
    if len(shape) == 2:
        n, c = shape
        found = token_grid(n, H, W, prefix_hint)
        if found is None:
            return None
        p, h, w = found
        return "NLC", p, (c, h, w)
    return None


def prefix_hint(module: nn.Module) -> int | None:
    """The model's count of non-patch tokens when it says so (timm ViTs; torchvision ViT has one class token)."""
    n = getattr(module, "num_prefix_tokens", None)
    if isinstance(n, int):
        return n
    if isinstance(getattr(module, "class_token", None), torch.Tensor):
        return 1
    return None


def as_grid(t: torch.Tensor, info: LayerInfo) -> torch.Tensor:
    """A recorded output (B, …) as (B, C, h, w), by views (writes and gradients go through)."""
    c, h, w = info.shape
    if info.layout == "NCHW":
        return t
    if info.layout == "NHWC":
        return t.permute(0, 3, 1, 2)
    if info.layout == "NLC":
        return t[:, info.prefix:, :].reshape(t.shape[0], h, w, c).permute(0, 3, 1, 2)
    raise ValueError(info.layout)


# --------------------------------------------------------------------------- discovery
_SKIP = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.Softmax)


def _output_shapes(module: nn.Module, example: torch.Tensor,
                   names: set[str] | None = None) -> list[tuple[str, nn.Module, tuple]]:
    """(name, module, output shape) of every named module (or those in ``names``), in the order they finish."""
    found: list[tuple[str, nn.Module, tuple]] = []
    seen: set[str] = set()

    def hook(name):
        def fn(mod, inputs, output):
            if name in seen or not isinstance(output, torch.Tensor):
                return
            seen.add(name)
            found.append((name, mod, tuple(output.shape)))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules()
               if n and (names is None or n in names)]
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return found


def discover(module: nn.Module, example: torch.Tensor) -> list[LayerInfo]:
    """Modules whose output reads as a spatial feature map (see the module docstring), in finishing order."""
    H, W = example.shape[-2:]
    batch = example.shape[0]
    hint = prefix_hint(module)
    out = []
    for name, mod, shape in _output_shapes(module, example):
        # windowed attention runs on (windows, tokens, C): a first axis other than the batch is not an image
        if isinstance(mod, _SKIP) or not shape or shape[0] != batch:
            continue
        got = classify(shape[1:], H, W, hint)
        if got is not None:
            layout, prefix, chw = got
            out.append(LayerInfo(name, type(mod).__name__, tuple(int(v) for v in chw), layout, prefix, shape[1:]))
    return out


def not_spatial(module: nn.Module, name: str, example: torch.Tensor, model_id: str, valid: list[str]) -> Exception:
    """The error for a layer name that is not a candidate: unknown, or why its output is not a feature map."""
    names = dict(module.named_modules())
    if name not in names or not name:
        return UnknownNameError("layer", name, valid)
    got = _output_shapes(module, example, {name})
    H, W = example.shape[-2:]
    hint = f"; pick one of: {', '.join(valid[-8:])}" if valid else ""
    if not got:
        return UnsupportedError(f"layer {name!r} of model {model_id!r} does not return a tensor in a forward "
                                f"pass, so it has no feature map to explain{hint}")
    shape = got[0][2]
    if len(shape) == 3:
        return UnsupportedError(
            f"layer {name!r} of model {model_id!r} outputs {shape[1]} tokens, which do not split into up to "
            f"{MAX_PREFIX} prefix tokens plus a patch grid of the {H}x{W} input; it cannot be shown as a map{hint}")
    return UnsupportedError(f"layer {name!r} of model {model_id!r} outputs shape {tuple(shape)}, not a spatial "
                            f"feature map of the {H}x{W} input{hint}")


def block_norms(infos: list[LayerInfo]) -> list[str]:
    """The first norm of every transformer block, in execution order (empty for a convolutional net).

    A block is a module holding two or more norm layers on token or channels-last outputs (timm's ``norm1``/
    ``norm2``, torchvision's ``ln_1``/``ln_2``); a ConvNeXt block has one, on NCHW or inside the block only."""
    order = {i.name: k for k, i in enumerate(infos)}
    by_parent: dict[str, list[LayerInfo]] = {}
    for i in infos:
        if i.layout != "NCHW" and "norm" in i.type.lower():
            by_parent.setdefault(i.name.rpartition(".")[0], []).append(i)
    firsts = [min(v, key=lambda i: order[i.name]) for v in by_parent.values() if len(v) >= 2]
    return [i.name for i in sorted(firsts, key=lambda i: order[i.name])]


def pick_default(infos: list[LayerInfo]) -> str | None:
    """The layer the CAM family and FEM use when none is named.

    Transformers: the first norm of the last block, the layer the peers (pytorch-grad-cam's ViT and Swin
    recipes) use: in a ViT the last block's patch outputs only feed tokens the class-token head never reads,
    so their gradient is zero, while the last block's first norm still reaches the class token through
    attention. Otherwise: the last NCHW map, i.e. the last spatial feature map before global pooling.
    """
    blocks = block_norms(infos)
    if blocks:
        return blocks[-1]
    conv = [i for i in infos if i.layout == "NCHW"]
    if conv:
        return conv[-1].name
    return infos[-1].name if infos else None


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

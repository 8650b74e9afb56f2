"""Reading the attention probabilities of a timm vision transformer (ViT, DeiT, ViT with registers).

timm's self-attention modules (``timm.layers.Attention`` and its relatives) compute
A = softmax(q k^T * scale) and pass it through their ``attn_drop`` module (an ``nn.Dropout``, the identity in
eval mode) before multiplying by v, unless ``fused_attn`` is on: then ``F.scaled_dot_product_attention`` does
it all in one kernel and A never exists as a tensor. ``attention_recording`` therefore switches ``fused_attn``
off for the ``with`` block (restored on success, on error and on KeyboardInterrupt, as hooks are removed) and
records the output of every ``attn_drop`` with its graph, so gradients with respect to A can be taken.

What is checked, so a model whose attention cannot be read is refused before any compute, with a reason
(``attention_problem``): a module (not TorchScript or ONNX), a token layout we know how to map back to pixels
(``num_prefix_tokens``, a ``patch_embed`` with a patch size, the head reading the class token(s) or the
average of the patch tokens), and blocks whose attention module can be switched to the explicit path. A
probe forward (``probe``) then checks that every block really produced a row-stochastic A.

Hugging Face ViT and DeiT (transformers 5) are read the same way through their own switch: each attention
module returns ``(output, weights)``, and the weights exist only with the eager implementation, so
``unfused`` sets ``config._attn_implementation`` to ``eager`` for the block (restored on any exit) and the
recording hook takes the module's second output. Their token layout comes from the config (class token,
DeiT's distillation token, ``patch_size``).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from explorer.core.errors import UnsupportedError

HF_VIT = ("vit", "deit")  # Hugging Face model types whose attention rollout and Chefer read


def is_hf(module: nn.Module | None) -> bool:
    return module is not None and type(module).__module__.startswith("transformers.") and hasattr(module, "config")


def _hf_attention(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The innermost ``...Attention`` modules of a Hugging Face ViT/DeiT, in execution (registration) order."""
    if getattr(module.config, "model_type", "") not in HF_VIT:
        return []
    return [(n, m) for n, m in module.named_modules() if type(m).__name__.endswith("Attention")
            and not any(type(c).__name__.endswith("Attention") for c in m.children())]


def attention_modules(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The self-attention module of each transformer block, in execution order (empty if none).

    A block's attention is ``blocks[i].attn``, timm's layout for every ViT-like model; it must have the
    ``fused_attn`` switch and an ``attn_drop`` module (where the explicit path passes A). A Hugging Face
    ViT/DeiT's are its attention modules (see the module docstring).
    """
    if is_hf(module):
        return _hf_attention(module)
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.Module):
        return []
    out = []
    for i, block in enumerate(blocks.children()):
        attn = getattr(block, "attn", None)
        if isinstance(attn, nn.Module):
            out.append((f"blocks.{i}.attn", attn))
    return out


def has_attention(module: nn.Module | None) -> bool:
    """Cheap structural test (no forward): a ViT-like module with at least one attention block."""
    return module is not None and bool(attention_modules(module)) and (hasattr(module, "patch_embed") or is_hf(module))


@dataclass(frozen=True)
class TokenLayout:
    """How a transformer's tokens map to the image.

    ``prefix``: leading non-patch tokens (class, distillation, registers). ``readout``: the tokens the head
    reads (their rows of the relevance matrix give the map), or ``None`` for "the mean of the patch tokens"
    (global average pooling heads). ``patch``: the patch size in input pixels; ``pad``: whether the patch
    embedding pads the input up to a multiple of the patch size (else it floors).
    """

    prefix: int
    readout: tuple[int, ...] | None
    patch: tuple[int, int]
    pad: bool

    def grid(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        (h, w), (ph, pw) = input_hw, self.patch
        if self.pad:
            return -(-h // ph), -(-w // pw)
        return h // ph, w // pw


def token_layout(module: nn.Module, model_id: str = "model") -> TokenLayout:
    """The token layout of a timm ViT-like module, or UnsupportedError naming what is missing."""
    if is_hf(module):
        return _hf_layout(module, model_id)
    prefix = getattr(module, "num_prefix_tokens", None)
    pe = getattr(module, "patch_embed", None)
    patch = getattr(pe, "patch_size", None)
    if not isinstance(prefix, int) or patch is None:
        raise UnsupportedError(
            f"model {model_id!r} is not a timm ViT-like model (no num_prefix_tokens / patch_embed.patch_size), so "
            f"its attention cannot be mapped to pixels")
    patch = (int(patch[0]), int(patch[1])) if isinstance(patch, (tuple, list)) else (int(patch), int(patch))
    if getattr(module, "attn_pool", None) is not None:
        raise UnsupportedError(
            f"model {model_id!r} pools its tokens with an attention-pooling head, which rollout and Chefer "
            "relevance do not cover")
    pool = getattr(module, "global_pool", "token")
    if pool == "token":
        # DeiT's distilled model averages the heads on the class and distillation tokens
        readout = (0, 1) if hasattr(module, "dist_token") and getattr(module, "dist_token") is not None else (0,)
        if prefix < len(readout):
            raise UnsupportedError(f"model {model_id!r} reads a class token it does not have")
    elif pool == "avg" and not getattr(module, "pool_include_prefix", False):
        readout = None
    else:
        raise UnsupportedError(
            f"model {model_id!r} pools its tokens with global_pool={pool!r}, which rollout and Chefer relevance do "
            "not cover (class token or average of patch tokens only)")
    return TokenLayout(prefix, readout, patch, bool(getattr(pe, "dynamic_img_pad", False)))


def _hf_layout(module: nn.Module, model_id: str) -> TokenLayout:
    cfg = module.config
    if getattr(cfg, "model_type", "") not in HF_VIT:
        raise UnsupportedError(f"model {model_id!r} is a Hugging Face {getattr(cfg, 'model_type', '?')} model; "
                               "attention rollout and Chefer relevance read Hugging Face ViT and DeiT only")
    patch = cfg.patch_size
    patch = (int(patch[0]), int(patch[1])) if isinstance(patch, (tuple, list)) else (int(patch), int(patch))
    if cfg.model_type == "deit":  # class and distillation tokens; the teacher variant averages both heads
        return TokenLayout(2, (0, 1) if "WithTeacher" in type(module).__name__ else (0,), patch, False)
    return TokenLayout(1, (0,), patch, False)  # ViTForImageClassification reads the class token


@contextmanager
def unfused(modules: list[nn.Module]) -> Iterator[None]:
    """Switch ``fused_attn`` off on each module (timm), or its config to the eager implementation (Hugging
    Face), for the block; the previous values come back on any exit."""
    saved = []
    try:
        for m in modules:
            if hasattr(m, "fused_attn"):
                saved.append((m, "fused_attn", m.fused_attn))
                m.fused_attn = False
            else:
                saved.append((m.config, "_attn_implementation", m.config._attn_implementation))
                m.config._attn_implementation = "eager"
        yield
    finally:  # also on KeyboardInterrupt and on an exception inside the block
        for obj, attr, value in reversed(saved):
            setattr(obj, attr, value)


@contextmanager
def attention_recording(modules: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Record each module's attention probabilities (B, heads, N, N) in call order, graph kept."""
    store: list[torch.Tensor] = []
    handles = []
    with unfused(modules):
        try:
            for m in modules:
                if hasattr(m, "fused_attn"):
                    handles.append(m.attn_drop.register_forward_hook(lambda _m, _i, out: store.append(out)))
                else:  # Hugging Face: (output, weights); weights None would mean a fused kernel ran
                    handles.append(m.register_forward_hook(
                        lambda _m, _i, out: store.append(out[1]) if isinstance(out, tuple) and len(out) > 1
                        and isinstance(out[1], torch.Tensor) else None))
            yield store
        finally:
            for h in handles:
                h.remove()


_PROBED: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


def attention_problem(model) -> str:
    """Why this LoadedModel's attention cannot be read ('' when it can); one probe forward, cached per module."""
    if model.kind != "torch" or model.module is None:
        return (f"the {model.kind} model {model.id!r} hides its attention weights; load the architecture by name "
                "(--model timm:NAME --weights FILE) to read them")
    module = model.module
    mods = attention_modules(module)
    if not mods or not (hasattr(module, "patch_embed") or is_hf(module)):
        return (f"model {model.id!r} has no transformer attention blocks (a timm ViT, DeiT or ViT with registers, "
                "or a Hugging Face ViT or DeiT is needed)")
    try:
        token_layout(module, model.id)
    except UnsupportedError as exc:
        return str(exc)
    for name, m in mods:
        if is_hf(module):
            continue  # switched through the config (unfused); the probe checks what comes out
        if not hasattr(m, "fused_attn") or not isinstance(getattr(m, "attn_drop", None), nn.Module):
            return (f"model {model.id!r}: {name} ({type(m).__name__}) has no fused_attn switch or attn_drop module, "
                    "so its attention cannot be switched to the explicit path and read")
    if module in _PROBED:
        return _PROBED[module]
    problem = probe(model, mods)
    _PROBED[module] = problem
    return problem


def probe(model, mods: list[tuple[str, nn.Module]]) -> str:
    """One forward on a blank input: did every block hand over a row-stochastic attention matrix?"""
    h, w = model.preprocess.input_size
    x = torch.zeros(1, 3, h, w, device=model.device)
    with torch.inference_mode(), attention_recording([m for _, m in mods]) as store:
        model(x)
    if len(store) != len(mods):
        return (f"model {model.id!r}: {len(store)} of its {len(mods)} attention blocks produced readable weights "
                "with fused attention switched off (the rest compute attention in a fused kernel)")
    for (name, _), a in zip(mods, store):
        ok = a.dim() == 4 and a.shape[-1] == a.shape[-2] and torch.allclose(
            a.float().sum(-1), torch.ones((), device=a.device), atol=1e-3)
        if not ok:
            return (f"model {model.id!r}: what {name} passes through attn_drop (shape {tuple(a.shape)}) is not a "
                    "softmax attention matrix")
    return ""


def check_attention(model, method: str, instead: str = "") -> TokenLayout:
    """The model's token layout, or UnsupportedError (one line naming the model and why). ``instead`` is the
    caller's "use X instead": which methods do work on the model is the methods layer's knowledge."""
    problem = attention_problem(model)
    if problem:
        raise UnsupportedError(f"{method}: {problem}" + (f"; {instead}" if instead else ""))
    return token_layout(model.module, model.id)

"""LRP on vision transformers: prefix tokens read as biases; Hugging Face ViT/DeiT attention made reachable.

A ViT prepends constant tokens (the class token, DeiT's distillation token, register tokens) to the patch
tokens. Relevance that reaches a constant has no pixel to go to, and in gradient form (``lrp_rules``) it
reaches them in the first block, the first place where they meet the image: there the class token's row of
the residual sum ``x + attn(norm1(x))`` and the value rows of the prefix tokens in ``A·v`` are constants next
to input-dependent terms. The rules treat a constant term like a bias (as the rest of the conserving rules do:
Σ R_in = Σ R_out per layer, with the constant's share going to the input-dependent terms in proportion to
their contributions), so those two sums hand the prefix tokens' share to the patch tokens:

- residual: on the prefix rows, s = c + a with c constant, so R_a = R_s (the branch gets all of it);
- values: out_i = Σ_j A_ij v_j = shift_i + u_i with shift_i = Σ_{j<p} A_ij v_j constant (the prefix values,
  with A itself a constant as in the ``cp`` attention), so R_u = R_out.

In gradient form (R = t ⊙ g) both mean multiplying the gradient that reaches ``a`` (or the ``A·v`` output) by
s / a (or out / u), a constant of the forward pass (``_ScaleGrad``). After the first block every row depends
on the image, and nothing else is constant there except biases and the position embedding (``ShiftFree``).

Hugging Face ViT and DeiT compute their softmax inside a function chosen by ``config._attn_implementation``,
which no hook reaches; ``HFAttention`` registers our own implementation (the eager computation with A a constant, or
AttnLRP's half gradient, plus the prefix treatment above) under the name ``explorer_lrp`` and selects it for
the run only.

Both are recognised by block class, not by model name, and everything else with prefix tokens is refused by
``prefix_problem`` before anything is computed, rather than run with relevance leaking into the tokens.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

# The ratios that hand a constant's share to the input-dependent terms (here, and ``ShiftFree`` for the position
# embedding) only guard against a division by zero: they are not an ε rule, which absorbs relevance on purpose.
# With ε = 1e-6 there, measured on random-weight timm ViTs, Σ R / z_c was 1.043 (the 4-block ViT of
# tests/test_lrp_conservation.py) and 1.38 (the 12-block ViT of tests/test_model_zoo.py, whose token entries
# carry large relevances of opposite signs), against 1.025 and 1.010 with this guard.
GUARD = 1e-12
HF_IMPLEMENTATION = "explorer_lrp"
# First-block classes whose residual and attention layout the prefix treatment knows: x + drop_path1(ls1(
# attn(norm1(x)))) with a timm Attention (qkv, attn_drop, norm before proj); Hugging Face's pre-norm ViTLayer.
_TIMM_BLOCKS = {("timm.models.vision_transformer", "Block")}
_TIMM_ATTENTION = {("timm.layers.attention", "Attention")}
_HF_LAYERS = {("transformers.models.vit.modeling_vit", "ViTLayer"),
              ("transformers.models.deit.modeling_deit", "DeiTLayer")}
# Hugging Face model types whose attention module calls the attention interface with (q, k, v) in heads; the
# attribute holding their base model
HF_TYPES = ("vit", "deit")
_HF_PREFIX = ("cls_token", "distillation_token")

# attention module -> (mode 'cp' | 'attnlrp', number of prefix tokens or 0) while a run has it switched
_HF_RUN: "weakref.WeakKeyDictionary[nn.Module, tuple[str, int]]" = weakref.WeakKeyDictionary()


def _stabilise(t: torch.Tensor, eps: float) -> torch.Tensor:
    return t + eps * (2 * (t >= 0).to(t) - 1)


class _ScaleGrad(torch.autograd.Function):
    """Forward: t unchanged. Backward: the gradient times the constant m."""

    @staticmethod
    def forward(ctx, t, m):
        ctx.save_for_backward(m)
        return t.clone()

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return g * m, None


def _ratio(num: torch.Tensor, den: torch.Tensor, eps: float) -> torch.Tensor:
    """num / den with den stabilised; 0 where den is exactly 0 (nothing input-dependent to hand relevance to)."""
    return torch.where(den != 0, num / _stabilise(den, eps), torch.zeros_like(num))


def residual_to_branch(a: torch.Tensor, c: torch.Tensor, p: int, eps: float = GUARD) -> torch.Tensor:
    """``a`` whose prefix rows get the relevance of s = c + a (c: the constant prefix rows of the residual)."""
    m = torch.ones_like(a)
    m[:, :p] = _ratio(a[:, :p] + c[:, :p], a[:, :p], eps)
    return _ScaleGrad.apply(a, m.detach())


def values_without_prefix(out: torch.Tensor, attn: torch.Tensor, v: torch.Tensor, p: int,
                          eps: float = GUARD) -> torch.Tensor:
    """``out`` = attn @ v (B, H, N, D) whose relevance goes to the patch values only (the prefix values'
    share, attn[..., :p] @ v[:, :, :p], is a constant)."""
    u = attn[..., p:].detach() @ v[:, :, p:].detach()
    return _ScaleGrad.apply(out, _ratio(out.detach(), u, eps))


# --------------------------------------------------------------------------- structure
def is_hf_vit(module: nn.Module) -> bool:
    cfg = getattr(module, "config", None)
    return type(module).__module__.startswith("transformers.") and getattr(cfg, "model_type", None) in HF_TYPES


def _prefix_count(module: nn.Module) -> int:
    if is_hf_vit(module):
        emb = getattr(getattr(module, module.config.model_type, None), "embeddings", None)
        return sum(isinstance(getattr(emb, k, None), torch.Tensor) for k in _HF_PREFIX)
    return int(getattr(module, "num_prefix_tokens", 0) or 0)


def _first_block(module: nn.Module) -> tuple[str, nn.Module] | None:
    """(name, module) of the block the tokens enter first."""
    if is_hf_vit(module):
        base = module.config.model_type
        for name in (f"{base}.layers", f"{base}.encoder.layer"):  # transformers 5, 4
            try:
                layers = module.get_submodule(name)
            except AttributeError:
                continue
            return (f"{name}.0", layers[0]) if isinstance(layers, nn.ModuleList) and len(layers) else None
        return None
    blocks = getattr(module, "blocks", None)
    return ("blocks.0", blocks[0]) if isinstance(blocks, nn.Sequential) and len(blocks) else None


def _known(block: nn.Module, table) -> bool:
    return (type(block).__module__, type(block).__name__) in table


def prefix_problem(module: nn.Module) -> str:
    """Why the prefix tokens' relevance cannot be handed to the patches on ``module`` ('' when it can, or when
    the model has no prefix tokens)."""
    p = _prefix_count(module)
    if p == 0:
        return ""
    first = _first_block(module)
    if first is None:
        return f"{p} prefix token(s) (class token ...) but no block list the rules know"
    name, block = first
    why = ("so the class token's relevance could not be handed to the pixels (lrp_tokens reads it as a bias "
           "there)")
    if not _known(block, _HF_LAYERS if is_hf_vit(module) else _TIMM_BLOCKS):
        return f"{name} ({type(block).__name__}), a first block whose residual layout the rules do not know, {why}"
    attn = getattr(block, "attention" if is_hf_vit(module) else "attn", None)
    if not is_hf_vit(module) and not (_known(attn, _TIMM_ATTENTION) and isinstance(getattr(attn, "qkv", None),
                                                                                   nn.Linear)):
        return f"{name}.attn ({type(attn).__name__}), first-block attention of a layout the rules do not know, {why}"
    return ""


def prefix_tokens(module: nn.Module) -> int:
    """How many constant prefix tokens the canonizer treats (0: none, or a layout ``prefix_problem`` refuses)."""
    return 0 if prefix_problem(module) else _prefix_count(module)


# --------------------------------------------------------------------------- the Hugging Face attention function
def _hf_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The eager attention of ``transformers`` with the LRP rules: A a constant ('cp') or half its gradient
    ('attnlrp'), and the prefix values' share of A·v handed to the patch values."""
    run = _HF_RUN.get(module)
    if run is None:  # only a run that registered the module selects this implementation
        raise RuntimeError(f"lrp: {type(module).__name__} runs the LRP attention outside an LRP run")
    mode, p = run
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    attn = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    attn = attn.detach() if mode == "cp" else 0.5 * attn + (0.5 * attn).detach()
    out = torch.matmul(attn, value)
    if p:
        out = values_without_prefix(out, attn, value, p)
    return out.transpose(1, 2).contiguous(), attn


def _register_hf_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(HF_IMPLEMENTATION, _hf_attention)


# --------------------------------------------------------------------------- canonizers
def canonizer_types():
    from zennit.canonizers import Canonizer

    class PrefixTokensAsBias(Canonizer):
        """Forward hooks on the first block handing the prefix tokens' relevance to the patch tokens (module
        docstring). On Hugging Face ViT also switches the attention implementation (``HFAttention``)."""

        def __init__(self, attention: str = "cp", eps: float = GUARD):
            super().__init__()
            self.attention, self.eps = attention, eps
            self.handles: list = []
            self.store: dict = {}

        def copy(self):
            return PrefixTokensAsBias(self.attention, self.eps)

        def apply(self, root_module):
            inst = PrefixTokensAsBias(self.attention, self.eps)
            inst.register(root_module)
            return [inst]

        def register(self, root):
            p = prefix_tokens(root)
            if p == 0:
                return
            _, block = _first_block(root)
            hf = is_hf_vit(root)
            norm = block.layernorm_before if hf else block.norm1
            st = self.store

            def keep_residual(m, args):
                st["residual"] = args[0].detach()

            self.handles.append(norm.register_forward_pre_hook(keep_residual))
            if hf:
                def branch(m, args, out):
                    return (residual_to_branch(out[0], st["residual"], p, self.eps),) + tuple(out[1:])

                self.handles.append(block.attention.register_forward_hook(branch))
                _HF_RUN[block.attention] = (self.attention, p)  # the attention function does the values
                self.hf_first = block.attention
                return
            attn = block.attn

            def keep_probs(m, args, out):
                st["attn"] = out.detach()

            def keep_values(m, args, out):
                b, n, _ = out.shape
                st["v"] = out.detach().reshape(b, n, 3, attn.num_heads, -1)[:, :, 2].transpose(1, 2)

            def values(m, args):
                x = args[0]  # (B, N, H·D): attn @ v with its heads side by side
                a, v = st["attn"], st["v"]
                b, n, _ = x.shape
                heads = x.reshape(b, n, attn.num_heads, -1).transpose(1, 2)
                heads = values_without_prefix(heads, a, v, p, self.eps)
                return (heads.transpose(1, 2).reshape(b, n, -1),) + tuple(args[1:])

            def branch(m, args, out):
                return residual_to_branch(out, st["residual"], p, self.eps)

            self.handles += [attn.attn_drop.register_forward_hook(keep_probs),
                             attn.qkv.register_forward_hook(keep_values),
                             attn.norm.register_forward_pre_hook(values),
                             block.drop_path1.register_forward_hook(branch)]

        def remove(self):
            for h in self.handles:
                h.remove()
            self.handles = []
            self.store.clear()
            first = getattr(self, "hf_first", None)
            if first is not None:
                _HF_RUN.pop(first, None)

    class HFAttention(Canonizer):
        """Select ``explorer_lrp`` as the attention implementation of a Hugging Face ViT for the run (the
        previous one comes back on removal), with the mode of every attention module."""

        def __init__(self, attention: str = "cp"):
            super().__init__()
            self.attention = attention
            self.saved: list = []  # (config, its previous implementation)
            self.modules: list = []

        def copy(self):
            return HFAttention(self.attention)

        def apply(self, root_module):
            inst = HFAttention(self.attention)
            inst.register(root_module)
            return [inst]

        def register(self, root):
            if not is_hf_vit(root):
                return
            _register_hf_attention()
            configs = {id(root.config): root.config}
            for m in root.modules():
                if is_hf_attention(m):
                    _HF_RUN[m] = (self.attention, 0)  # PrefixTokensAsBias, applied next, sets the first one's p
                    self.modules.append(m)
                    configs.setdefault(id(m.config), m.config)
            for cfg in configs.values():
                self.saved.append((cfg, cfg._attn_implementation))
                cfg._attn_implementation = HF_IMPLEMENTATION

        def remove(self):
            for cfg, previous in reversed(self.saved):
                cfg._attn_implementation = previous
            self.saved = []
            for m in self.modules:
                _HF_RUN.pop(m, None)
            self.modules = []

    return PrefixTokensAsBias, HFAttention


HF_ATTENTION_CHILDREN = ("q_proj", "k_proj", "v_proj", "o_proj")


def is_hf_attention(m: nn.Module) -> bool:
    kids = dict(m.named_children())
    return type(m).__module__.startswith("transformers.") and all(k in kids for k in HF_ATTENTION_CHILDREN)

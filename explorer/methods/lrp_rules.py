"""Conserving LRP rules for CNNs, SE networks, LayerNorm networks and transformers, on zennit's machinery.

zennit's own rules pass *relevance* between hooked layers and let plain autograd act on it in between, so
every functional operation (a residual ``+``, a layer-scale ``*``, ``mean`` pooling, the matmuls of
attention) needs its own canonizer. These rules work in *gradient form* instead (as AttnLRP, Achtibat et al.
2024, and CP-LRP, Ali et al. 2022, do): the quantity flowing backward is a modified gradient g, and the
relevance of any tensor t is R = t ⊙ g. Linear functional operations then distribute relevance correctly by
plain autograd (a residual sum splits R in proportion to the summands, which is zennit's Norm rule), and only
the non-linear steps get a rule (a zennit ``Hook`` that returns the modified gradient):

- ``LinearRule`` (convolutions, depthwise ones included, and linear layers): the ε rule, or the generalised γ
  rule (Montavon et al. 2019; positive and negative inputs, sign chosen per output), computed on the layer
  **without its bias**: the relevance the bias (a merged BatchNorm shift) would absorb goes to the inputs in
  proportion to their contributions, so Σ R_in = Σ R_out per layer. The γ rule keeps channels whose weights are
  all negative (z+ drops them: 277 of 1152 depthwise channels in one Lite0 block).
- ``Elementwise`` (activations — ReLU6, SiLU, GELU, Hardswish … —, BatchNorm, LayerNorm, RMSNorm,
  GroupNorm): the identity rule, R_in = R_out element by element (g_in = g_out · y / x). For a norm this reads
  the statistics (mean, std) of the current input as constants, which makes it an elementwise affine map;
  with its shift excluded like every other bias, relevance passes unchanged.
- ``Constant``: an output read as a constant (detached): squeeze-and-excitation gates (x · gate is then
  linear in x, and nothing flows into the gate branch) and the softmax output of attention (``cp`` attention:
  out = A·v with A constant, linear in v, all relevance goes through the values).
- ``HalfGradient`` with ``LinearRule(scale=0.5)`` on q/k/v: AttnLRP's attention. The softmax keeps its plain
  gradient (AttnLRP's softmax rule in gradient form), and both bilinear products (q·kᵀ and A·v) split their
  relevance evenly between their factors (the uniform rule): halving the gradient reaching A and q, k, v.

Canonizers: BatchNorm merged into the convolution that feeds it (so γ sees the effective weights), in-place
activations made out-of-place for the run (the identity rule needs the input), timm's fused attention turned
off (the rules need the softmax). Everything is removed after the run, also when it raises.

Structure is read by module type and by the shape of a block (an attention module holds a ``qkv`` linear
layer and an ``attn_drop`` applied to its softmax output; an SE block holds ``conv_reduce``, ``conv_expand``
and ``gate``), not by model name, so other implementations of the same blocks can be added to the tables.
A module no rule covers is named by ``coverage_problem`` before anything is computed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from explorer.methods.lrp_tokens import HF_ATTENTION_CHILDREN, is_hf_attention, is_hf_vit, prefix_problem

EPSILON = 1e-6

# Elementwise modules (identity rule). Softmax is deliberately absent: it is not elementwise.
_ELEMENTWISE_NAMES = {
    "relu", "relu6", "leakyrelu", "prelu", "elu", "celu", "selu", "gelu", "gelutanh", "quickgelu", "silu",
    "swish", "hardswish", "mish", "sigmoid", "hardsigmoid", "tanh", "softplus", "hardtanh",
    # Hugging Face's activation modules (transformers.activations)
    "geluactivation", "newgeluactivation", "fastgeluactivation", "quickgeluactivation", "accurategeluactivation",
    "siluactivation", "mishactivation",
}
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
_NORM_NAMES = {"rmsnorm", "rmsnorm2d", "layernorm2d", "layernorm"}
# Parameters a container may use directly in a way the gradient form handles: added tokens and embeddings
# (their share is absorbed, like a bias), layer-scale factors (a constant multiplier), attention logit biases.
_CONSTANT_PARAMS = {"cls_token", "dist_token", "distillation_token", "reg_token", "pos_embed", "mask_token", "gamma",
                    "relative_position_bias_table", "position_embeddings"}
# Squeeze-and-excitation blocks: (children that identify the block, the child whose output is the gate).
SE_PATTERNS = ((("conv_reduce", "conv_expand", "gate"), "gate"),  # timm EfficientNet / MobileNetV3
               (("fc1", "fc2", "gate"), "gate"),  # timm SEModule
               (("fc1", "fc2", "scale_activation"), "scale_activation"))  # torchvision SqueezeExcitation
# Attention blocks: (the linear layers that make q, k, v; the module applied to the softmax output).
ATTENTION_PATTERNS = ((("qkv",), "attn_drop"),)  # timm Attention (ViT, DeiT), WindowAttention (Swin)


def _kind(m: nn.Module) -> str:
    return type(m).__name__.lower()


def is_elementwise(m: nn.Module) -> bool:
    return isinstance(m, _NORMS) or _kind(m) in _ELEMENTWISE_NAMES or _kind(m) in _NORM_NAMES


def _fit(grad_input, g):
    return tuple(g if t is not None and t.shape == g.shape else None for t in grad_input)


def _stabilise(t: torch.Tensor, eps: float) -> torch.Tensor:
    return t + eps * (2 * (t >= 0).to(t) - 1)


def _favouring(gamma: float, positive: bool):
    """The γ rule's weights w + γ·w⁺ (``positive``) or w + γ·w⁻; γ = inf keeps w⁺ or w⁻ alone (the z⁺ limit)."""
    if math.isinf(gamma):
        return (lambda w: w.clamp(min=0)) if positive else (lambda w: w.clamp(max=0))
    return (lambda w: w + gamma * w.clamp(min=0)) if positive else (lambda w: w + gamma * w.clamp(max=0))


def _hooks():
    """The rule classes (zennit is imported only when LRP runs)."""
    from zennit.core import Hook, ParamMod, RemovableHandleList

    class _Stored(Hook):
        def forward(self, module, input, output):
            out = output[0] if isinstance(output, tuple) else output
            self.stored_tensors["input"] = input[0].detach()
            self.stored_tensors["output"] = out.detach()

    class Elementwise(_Stored):
        """Identity rule: R_in = R_out elementwise, i.e. g_in = g_out · y / x."""

        def __init__(self, eps: float = EPSILON):
            super().__init__()
            self.eps = eps

        def copy(self):
            return Elementwise(self.eps)

        def backward(self, module, grad_input, grad_output):
            x, y = self.stored_tensors["input"], self.stored_tensors["output"]
            if x.shape != y.shape:
                raise RuntimeError(f"lrp: {type(module).__name__} is not elementwise ({tuple(x.shape)} -> "
                                   f"{tuple(y.shape)})")
            return _fit(grad_input, grad_output[0] * y / _stabilise(x, self.eps))

    class LinearRule(_Stored):
        """ε (gamma = 0) or generalised γ rule on the layer without its bias.

        Gradient form (default): takes and returns gradients (R = t ⊙ g). Relevance form (``relevance=True``,
        zennit's convention, for the canonized CNN path): takes and returns relevance, and an output with no
        input contribution at all (every input of its window is 0, its value is its bias alone) hands its
        relevance to its inputs by the w² rule (Montavon et al. 2017) instead of losing it."""

        def __init__(self, gamma: float = 0.0, eps: float = EPSILON, scale: float = 1.0, relevance: bool = False):
            super().__init__()
            self.gamma, self.eps, self.scale, self.relevance = gamma, eps, scale, relevance

        def copy(self):
            return LinearRule(self.gamma, self.eps, self.scale, self.relevance)

        def backward(self, module, grad_input, grad_output):
            x, y = self.stored_tensors["input"], self.stored_tensors["output"]
            rel = grad_output[0] if self.relevance else y * grad_output[0]
            g = self._gradient(module, x, rel * self.scale)
            if not self.relevance:
                return _fit(grad_input, g)
            out = x * g
            with torch.no_grad():
                empty = self._linear(module, x) == 0  # every input of the window is 0: the bias alone
            if bool(empty.any()):
                ones = torch.ones_like(x).requires_grad_()
                with torch.enable_grad():
                    w2 = self._linear(module, ones, lambda w: w * w)
                (fb,) = torch.autograd.grad(w2, ones, rel * empty / _stabilise(w2.detach(), self.eps))
                out = out + fb
            return _fit(grad_input, out)

        def _linear(self, module, x, weight=None):
            """The layer's output for ``x`` without bias, with ``weight(w)`` in place of its weight."""
            def mod(p, name):
                return weight(p) if name == "weight" and weight is not None else p

            with ParamMod(mod, zero_params=["bias"], require_params=False)(module) as m:
                return m.forward(x)

        def _gradient(self, module, x, rel):
            """g with x ⊙ g = the input relevance of ``rel`` (the output relevance) by this rule."""
            xg = x.clone().requires_grad_()
            with torch.enable_grad():
                if self.gamma == 0:
                    z = self._linear(module, xg)
                    zd = z.detach()  # an output of bias alone (z = 0) has no input to go to here
                    return torch.autograd.grad(z, xg, rel * (zd != 0) / _stabilise(zd, self.eps))[0]
                wp, wn = _favouring(self.gamma, True), _favouring(self.gamma, False)
                a = self._linear(module, xg, wp)  # weights favouring positive contributions
                b = self._linear(module, xg, wn)  # ... and negative ones
            with torch.no_grad():
                xp, xn = x.clamp(min=0), x.clamp(max=0)
                pos = self._linear(module, x) > 0  # the sign of the bias-free output picks the branch
                zp = self._linear(module, xp, wp) + self._linear(module, xn, wn)
                zn = self._linear(module, xp, wn) + self._linear(module, xn, wp)
                up = rel * pos / _stabilise(zp, self.eps)
                un = rel * ~pos / _stabilise(zn, self.eps)
            gp = torch.autograd.grad((a, b), xg, (up, un), retain_graph=True)[0]  # for positive inputs
            gn = torch.autograd.grad((a, b), xg, (un, up))[0]  # for negative inputs
            return torch.where(x > 0, gp, gn)

    class ShiftFree(_Stored):
        """The module's input is x + shift for a constant ``shift`` (a position embedding added just before it):
        the shift's share of the relevance goes to x, like a bias's (g_in = g_out · y / (y − shift))."""

        def __init__(self, shift: torch.Tensor | None = None, eps: float = EPSILON):
            super().__init__()
            self.shift, self.eps = shift, eps

        def copy(self):
            return ShiftFree(self.shift, self.eps)

        def backward(self, module, grad_input, grad_output):
            y = self.stored_tensors["output"]
            shift = self.shift.to(y)
            if shift.ndim == 3 and shift.shape[1] < y.shape[1]:  # no embedding on the prefix tokens (DeiT-3)
                shift = torch.cat([shift.new_zeros(1, y.shape[1] - shift.shape[1], shift.shape[2]), shift], 1)
            inner = y - shift
            return _fit(grad_input, grad_output[0] * y * (inner != 0) / _stabilise(inner, self.eps))

    class _OutputHook(Hook):
        """A rule that replaces the module's output in the forward pass (one forward hook, no backward)."""

        def register(self, module):
            return RemovableHandleList([module.register_forward_hook(lambda m, i, o: self.transform(o))])

        def transform(self, out):
            raise NotImplementedError

    class Constant(_OutputHook):
        """The output is read as a constant: no gradient reaches the branch that computed it."""

        def transform(self, out):
            return out.detach()

    class HalfGradient(_OutputHook):
        """Forward unchanged; half the gradient flows back (AttnLRP's uniform rule for a bilinear product)."""

        def transform(self, out):
            return 0.5 * out + (0.5 * out).detach()

    return Elementwise, LinearRule, Constant, HalfGradient, ShiftFree


# --------------------------------------------------------------------------- structure
def roles(module: nn.Module, attention: str) -> dict[str, str]:
    """{module name: 'constant' | 'half' | 'half_linear' | 'shift'} for SE gates, attention parts and the
    dropout that receives tokens + position embedding."""
    out: dict[str, str] = {}
    for name, m in module.named_modules():
        kids = dict(m.named_children())
        prefix = f"{name}." if name else ""
        for needed, gate in SE_PATTERNS:
            if all(k in kids for k in needed):
                out[prefix + gate] = "constant"
        if isinstance(getattr(m, "pos_embed", None), torch.Tensor) and isinstance(kids.get("pos_drop"), nn.Dropout) \
                and not getattr(m, "dynamic_img_size", False):
            out[prefix + "pos_drop"] = "shift"  # timm ViT/DeiT: tokens + pos_embed go straight into pos_drop
        hf_embeddings = all(isinstance(getattr(m, k, None), torch.Tensor) for k in ("position_embeddings", "cls_token"))
        if hf_embeddings and isinstance(kids.get("dropout"), nn.Dropout) and "patch_embeddings" in kids:
            out[prefix + "dropout"] = "shift"  # Hugging Face ViTEmbeddings: the same, into its dropout
        if attention == "attnlrp" and is_hf_attention(m):
            for k in HF_ATTENTION_CHILDREN[:3]:  # its softmax is halved in the attention function
                out[prefix + k] = "half_linear"
        for linears, probs in ATTENTION_PATTERNS:
            if all(k in kids for k in linears) and probs in kids:
                out[prefix + probs] = "constant" if attention == "cp" else "half"
                if attention == "attnlrp":
                    for k in linears:
                        out[prefix + k] = "half_linear"
    return out


def _is_attention(name: str, m: nn.Module) -> bool:
    return isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention") or \
        (hasattr(m, "num_heads") and any(isinstance(c, nn.Linear) for c in m.children()))


def coverage_problem(module: nn.Module) -> str:
    """The first module no conserving rule covers, as a phrase for a refusal ('' when every one is)."""
    hf_vit = is_hf_vit(module)
    for name, m in module.named_modules():
        kind = type(m).__name__
        kids = dict(m.named_children())
        if _is_attention(name, m):
            if isinstance(m, nn.MultiheadAttention):
                return f"{name} ({kind}) computes its softmax inside one fused function the rules cannot reach"
            if hf_vit and is_hf_attention(m):
                continue  # its attention function is ours for the run (lrp_tokens.HFAttention)
            if not any(all(k in kids for k in lin) and p in kids for lin, p in ATTENTION_PATTERNS):
                return f"{name} ({kind}) is attention of a layout the rules do not know"
            if getattr(m, "gate", None) is not None:
                return f"{name} ({kind}) gates its output by a sigmoid of its input"
        own = [p for p, _ in m.named_parameters(recurse=False)]
        if not own:
            continue
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) or is_elementwise(m):
            continue
        unknown = [p for p in own if p not in _CONSTANT_PARAMS]
        if unknown:
            return f"{name or 'the model'} ({kind}, parameter {unknown[0]!r}), a layer type no LRP rule covers"
    return prefix_problem(module)


# --------------------------------------------------------------------------- canonizers
def _canonizers_types():
    from zennit.canonizers import Canonizer

    class AttributeFlip(Canonizer):
        """Set an attribute on every module that has it truthy (``inplace``, ``fused_attn``), restore after."""

        def __init__(self, attribute: str):
            super().__init__()
            self.attribute, self.modules = attribute, []

        def apply(self, root_module):
            inst = AttributeFlip(self.attribute)
            inst.register([m for m in root_module.modules() if getattr(m, self.attribute, None) is True])
            return [inst]

        def register(self, modules):
            self.modules = modules
            for m in modules:
                setattr(m, self.attribute, False)

        def remove(self):
            for m in self.modules:
                setattr(m, self.attribute, True)
            self.modules = []

        def copy(self):
            return AttributeFlip(self.attribute)

    return AttributeFlip


def conserving_composite(module: nn.Module, bn_pairs: list, *, conv_gamma: float, attention: str,
                         eps: float = EPSILON):
    """A zennit Composite applying the rules above: γ = ``conv_gamma`` on convolutions (0: ε), ε on linear
    layers, the identity rule on elementwise layers, ``attention`` 'cp' or 'attnlrp'."""
    from zennit.canonizers import NamedMergeBatchNorm
    from zennit.core import Composite

    from explorer.methods import lrp_tokens

    Elementwise, LinearRule, Constant, HalfGradient, ShiftFree = _hooks()
    AttributeFlip = _canonizers_types()
    role = roles(module, attention)
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

    def module_map(ctx, name, m):
        r = role.get(name)
        if r == "shift":
            parent = module.get_submodule(name.rpartition(".")[0])
            shift = parent.pos_embed if isinstance(getattr(parent, "pos_embed", None), torch.Tensor) \
                else parent.position_embeddings
            return ShiftFree(shift.detach(), lrp_tokens.GUARD)  # a division guard, not an ε rule (lrp_tokens)
        if r == "constant":
            return Constant()
        if r == "half":
            return HalfGradient()
        if r == "half_linear":
            return LinearRule(0.0, eps, scale=0.5)
        if isinstance(m, convs):
            return LinearRule(conv_gamma, eps)
        if isinstance(m, nn.Linear):
            return LinearRule(0.0, eps)
        if is_elementwise(m):
            return Elementwise(eps)
        return None

    PrefixTokensAsBias, HFAttention = lrp_tokens.canonizer_types()
    mode = "attnlrp" if attention == "attnlrp" else "cp"
    # HFAttention before PrefixTokensAsBias: it marks every attention module, the prefix one then its first
    canonizers = [AttributeFlip("inplace"), AttributeFlip("fused_attn"), HFAttention(mode), PrefixTokensAsBias(mode)]
    if bn_pairs:
        canonizers.insert(0, NamedMergeBatchNorm(bn_pairs))
    return Composite(module_map=module_map, canonizers=canonizers)


def relevance_composite(module: nn.Module, canonizers: list, *, conv_gamma: float, eps: float = EPSILON):
    """Relevance-form composite for CNNs whose functional steps are canonized into modules (BatchNorm merged,
    residual sums as zennit ``Sum``): γ = ``conv_gamma`` (0: ε) on convolutions, ε on linear layers, both
    without bias and with the w² fallback for bias-only outputs; activations and BatchNorm pass relevance
    through, sums and average pools split it by zennit's Norm rule."""
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm

    _, LinearRule, _, _, _ = _hooks()
    AttributeFlip = _canonizers_types()
    layer_map = [
        (Sum, Norm(stabilizer=eps)),
        (AvgPool, Norm(stabilizer=eps)),
        ((nn.Conv1d, nn.Conv2d, nn.Conv3d), LinearRule(conv_gamma, eps, relevance=True)),
        (nn.Linear, LinearRule(0.0, eps, relevance=True)),
        ((Activation, BatchNorm, nn.modules.batchnorm._BatchNorm), Pass()),
    ]
    return LayerMapComposite(layer_map=layer_map, canonizers=[AttributeFlip("inplace")] + canonizers)

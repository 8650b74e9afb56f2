"""Layer-wise Relevance Propagation through zennit (Bach et al. 2015; Montavon et al. 2019).

The rules and composites are zennit's (EpsilonPlusFlat, EpsilonAlpha2Beta1Flat, EpsilonGammaBox). What is
ours is the canonization that makes them apply to timm's EfficientNet (and similar models), which zennit's
built-in canonizers do not recognise:

- ``traced_batchnorm_pairs``: zennit's ``SequentialMergeBatchNorm`` only finds a BatchNorm that follows a
  linear layer *in the order children are declared*; timm's blocks keep their convolutions and
  ``BatchNormAct2d`` as attributes of one module, so nothing is found. We instead trace one forward pass and
  pair every BatchNorm (``BatchNormAct2d`` is a ``BatchNorm2d`` subclass) with the convolution/linear layer
  whose output tensor it receives, then merge them with zennit's ``NamedMergeBatchNorm``. The merged
  ``BatchNormAct2d`` computes the identity followed by its activation (ReLU6); zennit's composites give
  BatchNorm and activations the ``Pass`` rule, so relevance is not cut at saturated ReLU6 units.
- ``ResidualSumCanonizer``: residual additions ``x + shortcut`` of timm's ``InvertedResidual`` /
  ``DepthwiseSeparableConv`` blocks (attribute ``has_skip``) are replaced for the run by zennit's ``Sum``
  module, so the ``Norm`` rule splits relevance between the branches instead of copying it to both.
  torchvision ResNet blocks get zennit's own ResNet block canonizers.

Everything is registered for the run and removed afterwards, also when the run raises (the BatchNorm
merge edits the shared model's parameters for the duration of the run: do not run another method on the
same model object in another thread meanwhile). Relevance is signed; the map is the input relevance summed
over colour channels, and ``info`` reports conservation: sum(R) / z_c, where z_c (the target logit) is the
relevance put in at the output.

Conservation on the default model: with biases, LRP rules route relevance into the biases, and here the
BatchNorm shifts merged into 49 convolutions are large, so sum(R) is a small fraction of z_c (measured
0.0004-0.0011 for epsilon_plus_flat, -0.001 to 0.003 for epsilon_alpha2_beta1_flat, 0.02-0.04 for
epsilon_gamma_box on the sample photos). The z+ rule also drops the relevance of depthwise channels whose
(merged) weights are all negative but which are active through their bias (277 of 1152 channels in
``blocks.6.0.conv_dw``). ``zero_bias`` ignores the biases inside the rules. On the same network with its
biases set to zero the canonized composites conserve relevance within 5% (tests/test_whitebox.py), which
checks our BatchNorm merge, the ReLU6 pass-through and the residual ``Sum``. ``epsilon_flat`` (ours, built
from zennit's rules) is LRP-epsilon on every layer with the flat rule on the first.
"""

from __future__ import annotations

import weakref
from typing import Iterator

import torch
from torch import nn

from explorer.core.errors import ExplorerError, UnsupportedError
from explorer.core.params import Param, Params
from explorer.core.types import LayerSpec, Needs, Step
from explorer.methods.alternatives import use_instead
from explorer.methods.base import Context, Method, register

COMPOSITES = ("epsilon_plus_flat", "epsilon_alpha2_beta1_flat", "epsilon_gamma_box", "epsilon_flat")

_PAIRS: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def traced_batchnorm_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[tuple[str], str]]:
    """[((linear_name,), batchnorm_name)] for every BatchNorm fed directly by a conv/linear layer's output."""
    key = (tuple(example.shape[1:]),)
    cached = _PAIRS.get(module, {}).get(key)
    if cached is not None:
        return cached
    produced: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keep outputs alive so their ids stay unique during the trace
    pairs: list[tuple[tuple[str], str]] = []
    handles = []
    linear_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    try:
        for name, mod in module.named_modules():
            if isinstance(mod, linear_types):
                def out_hook(m, i, o, name=name):
                    if isinstance(o, torch.Tensor):
                        produced[id(o)] = name
                        keep.append(o)
                handles.append(mod.register_forward_hook(out_hook))
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                def in_hook(m, inputs, name=name):
                    src = produced.get(id(inputs[0])) if inputs else None
                    if src is not None:
                        pairs.append(((src,), name))
                handles.append(mod.register_forward_pre_hook(in_hook))
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    # one BatchNorm per linear layer (a second BN on the same output cannot be merged twice)
    seen: set[str] = set()
    unique = []
    for lin, bn in pairs:
        if lin[0] not in seen:
            seen.add(lin[0])
            unique.append((lin, bn))
    _PAIRS.setdefault(module, {})[key] = unique
    return unique


def _canonizer_types():
    from zennit.canonizers import Canonizer
    from zennit.layer import Sum

    class ResidualSumCanonizer(Canonizer):
        """Route the residual addition of timm blocks (``has_skip``) through a zennit ``Sum`` module."""

        def __init__(self):
            super().__init__()
            self.module = None

        def apply(self, root_module):
            instances = []
            for mod in root_module.modules():
                if getattr(mod, "has_skip", False) is True and hasattr(mod, "drop_path"):
                    inst = ResidualSumCanonizer()
                    inst.register(mod)
                    instances.append(inst)
            return instances

        def register(self, mod):
            self.module = mod
            mod.has_skip = False  # the class's forward then skips its own addition
            mod.canonizer_sum = Sum()
            cls_forward = type(mod).forward

            def forward(x, _mod=mod, _fwd=cls_forward):
                out = _fwd(_mod, x)
                return _mod.canonizer_sum(torch.stack([x, out], dim=-1))

            mod.forward = forward

        def remove(self):
            mod = self.module
            mod.__dict__.pop("forward", None)
            if "canonizer_sum" in mod._modules:
                del mod._modules["canonizer_sum"]
            mod.has_skip = True

        def copy(self):
            return ResidualSumCanonizer()

    return ResidualSumCanonizer


def make_canonizers(module: nn.Module, example: torch.Tensor) -> list:
    from zennit.canonizers import NamedMergeBatchNorm
    from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer

    out = []
    pairs = traced_batchnorm_pairs(module, example)
    if pairs:
        out.append(NamedMergeBatchNorm(pairs))
    out.append(_canonizer_types()())
    out += [ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]
    return out


def make_composite(name: str, canonizers: list, *, low: torch.Tensor, high: torch.Tensor, epsilon: float,
                   gamma: float, zero_bias: bool):
    from zennit import composites as zc

    zero = ["bias"] if zero_bias else None
    if name == "epsilon_plus_flat":
        return zc.EpsilonPlusFlat(epsilon=epsilon, zero_params=zero, canonizers=canonizers)
    if name == "epsilon_alpha2_beta1_flat":
        return zc.EpsilonAlpha2Beta1Flat(epsilon=epsilon, zero_params=zero, canonizers=canonizers)
    if name == "epsilon_gamma_box":
        return zc.EpsilonGammaBox(low=low, high=high, epsilon=epsilon, gamma=gamma, zero_params=zero,
                                  canonizers=canonizers)
    if name == "epsilon_flat":  # ours, from zennit's rules: LRP-epsilon on every layer, flat on the first
        import torch.nn as tnn
        from zennit.rules import Epsilon, Flat
        from zennit.types import Convolution, Linear

        layer_map = zc.layer_map_base(1e-6) + [
            (Convolution, Epsilon(epsilon=epsilon, zero_params=zero)),
            (tnn.Linear, Epsilon(epsilon=epsilon, zero_params=zero)),
        ]
        first_map = [(Linear, Flat(zero_params=zero))]
        return zc.SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map, canonizers=canonizers)
    raise ValueError(name)


def lrp_problem(module: nn.Module) -> str:
    """Why zennit's composites cannot explain ``module`` conservatively ('' when they can).

    zennit has rules for convolutions, linear layers and (merged) BatchNorm, and lets activations pass. A
    LayerNorm/GroupNorm divides by a statistic of its own input and self-attention multiplies two functions
    of the input (softmax(qk)·v): without rules for them (AttnLRP, Achtibat et al. 2024, which zennit does
    not ship) the backward pass there is the plain gradient, and the relevance is wrong, not approximately
    right: measured on random-weight timm models, NaN on ViT and Swin, sum(R)/z = 2e-6 on ConvNeXt-Atto."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.modules.instancenorm._InstanceNorm)
    for name, m in module.named_modules():
        kind = type(m).__name__
        if isinstance(m, norms) or "rmsnorm" in kind.lower():
            return f"a {kind} layer ({name}), which normalises by its input's own statistics"
        if isinstance(m, nn.MultiheadAttention) or kind.endswith("Attention"):
            return f"self-attention ({name}, {kind})"
    return ""


def lrp_relevance(model, x: torch.Tensor, target: int, composite: str = "epsilon_plus_flat", *,
                  epsilon: float = 1e-6, gamma: float = 0.25, zero_bias: bool = False) -> tuple[torch.Tensor, float]:
    """Input relevance (1, 3, h, w) for ``target`` (started from the logit z_c) and z_c itself."""
    from zennit.attribution import Gradient

    module = model.module
    xin = x.detach()
    if model.channels_last:
        xin = xin.contiguous(memory_format=torch.channels_last)
    pre = model.preprocess
    low = pre.normalise(torch.zeros_like(xin[:, :, :1, :1])).expand_as(xin).contiguous()
    high = pre.normalise(torch.ones_like(xin[:, :, :1, :1])).expand_as(xin).contiguous()
    canon = make_canonizers(module, xin)
    comp = make_composite(composite, canon, low=low, high=high, epsilon=epsilon, gamma=gamma, zero_bias=zero_bias)

    def start(out: torch.Tensor) -> torch.Tensor:
        g = torch.zeros_like(out)
        g[:, target] = out[:, target].detach()
        return g

    with torch.enable_grad(), Gradient(model=module, composite=comp) as attributor:
        out, rel = attributor(xin, start)
    return rel.detach(), float(out.detach()[0, target])


@register("lrp")
class LRP(Method):
    title = "Layer-wise Relevance Propagation (zennit)"
    family = "relevance"
    paper = ("Bach et al. 2015, "
             "On Pixel-Wise Explanations by Layer-Wise Relevance Propagation; zennit (Anders et al. 2021)")
    summary = "relevance of the class logit propagated back layer by layer with zennit's rule composites"
    needs = Needs.GRADIENTS | Needs.LAYER
    outputs = (LayerSpec("salient", signed=True, help="input relevance summed over colour channels",
                         zero="0 = no relevance; positive supports the target, negative opposes it, and the map "
                              "sums to about z_c (what the biases and epsilon absorb is missing)"),)
    params = Params(
        Param("composite", "choice", "epsilon_plus_flat", "zennit rule composite", choices=COMPOSITES),
        Param("epsilon", "float", 1e-6, "stabiliser of the epsilon rule (dense layers)", low=1e-9, high=10.0,
              step=1e-6, log=True),
        Param("gamma", "float", 0.25, "gamma of the gamma rule (epsilon_gamma_box only)", low=0.0, high=10.0,
              step=0.05),
        Param("zero_bias", "bool", False, "ignore biases in the rules (no relevance absorbed by biases)"),
    )
    quick: dict = {}

    def validate(self) -> None:
        problem = lrp_problem(self.model.module)
        if problem:
            raise UnsupportedError(
                f"lrp: model {self.model.id!r} has {problem}; zennit's LRP rules do not conserve relevance "
                f"through it (the map would be NaN or near zero), so lrp is refused; "
                f"{use_instead(self.model, exclude=('lrp',))}")

    def steps(self, ctx: Context) -> Iterator[Step]:
        try:
            rel, z = lrp_relevance(self.model, ctx.x, ctx.target, self.p.composite, epsilon=self.p.epsilon,
                                   gamma=self.p.gamma, zero_bias=self.p.zero_bias)
        except ImportError:
            raise ExplorerError("lrp needs the 'zennit' package (pip install zennit)") from None
        total = float(rel.sum())
        info = {"relevance_sum": total, "logit": z, "conservation": total / z if z else float("nan"),
                "composite": self.p.composite}
        yield Step(1.0, {"salient": rel[0].float().sum(0)}, info=info)

"""Layer-wise Relevance Propagation on zennit's machinery (Bach et al. 2015; Montavon et al. 2019).

Two kinds of composites:

- *conserving* (ours, ``lrp_rules.py``; the default, ``auto``): rules that keep Σ R = z_c on the models
  people use — biases left out of every rule (their share goes to the inputs), the generalised γ rule on
  convolutions (depthwise ones included) and linear layers, activations and norms passed through, SE gates and
  attention weights read as constants (``conserving_gamma``), or AttnLRP's softmax and bilinear rules
  (``attnlrp``). On plain CNNs (no SE, LayerNorm or attention) they run in zennit's relevance form on the
  canonized network below, where an output made of its bias alone hands its relevance on by the w² rule; on
  every other network in gradient form (see ``lrp_rules``). On vision transformers the class, distillation and
  register tokens are read as biases where they first meet the image, and Hugging Face ViT's attention
  function is swapped for ours for the run (``lrp_tokens``).
- zennit's own (``epsilon_plus_flat``, ``epsilon_alpha2_beta1_flat``, ``epsilon_gamma_box``, ours
  ``epsilon_flat``): the textbook composites, kept for comparison. Biases absorb relevance in them (on the
  default model Σ R / z_c is 0.0003–0.04), and they are refused on LayerNorm and attention networks.

The canonization that makes zennit's rules apply to timm's EfficientNet (and similar models), which zennit's
built-in canonizers do not recognise:

- ``traced_batchnorm_pairs``: zennit's ``SequentialMergeBatchNorm`` only finds a BatchNorm that follows a
  linear layer *in the order children are declared*; timm's blocks keep their convolutions and
  ``BatchNormAct2d`` as attributes of one module, so nothing is found. We instead trace one forward pass and
  pair every BatchNorm (``BatchNormAct2d`` is a ``BatchNorm2d`` subclass) with the convolution/linear layer
  whose output tensor it receives, then merge them with zennit's ``NamedMergeBatchNorm``.
- ``ResidualSumCanonizer``: residual additions ``x + shortcut`` of timm's ``InvertedResidual`` /
  ``DepthwiseSeparableConv`` blocks (attribute ``has_skip``) are replaced for the run by zennit's ``Sum``
  module, so the ``Norm`` rule splits relevance between the branches instead of copying it to both.
  torchvision ResNet blocks get zennit's own ResNet block canonizers.

Everything is registered for the run and removed afterwards, also when the run raises (the BatchNorm
merge edits the shared model's parameters for the duration of the run: do not run another method on the
same model object in another thread meanwhile). Relevance is signed; the map is the input relevance summed
over colour channels, and ``info`` reports conservation: sum(R) / z_c, where z_c (the target logit) is the
relevance put in at the output, the composite that ran, and a warning when conservation is below 0.5.
"""

from __future__ import annotations

import math
import weakref
from typing import Iterator

import torch
from torch import nn

from explorer.core.catalog import Family
from explorer.core.errors import ExplorerError, UnsupportedError
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.alternatives import use_instead
from explorer.methods.base import Context, Method, register
from explorer.models.outputs import LOW_PRECISION, ModelForward

ZENNIT_COMPOSITES = ("epsilon_plus_flat", "epsilon_alpha2_beta1_flat", "epsilon_gamma_box", "epsilon_flat")
CONSERVING = ("conserving_plus", "conserving_gamma", "attnlrp")
COMPOSITES = ("auto",) + CONSERVING + ZENNIT_COMPOSITES
LOW_CONSERVATION = 0.5  # below this, the run says so in its info (and so in the manifest and the window)

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


def has_se_or_attention(module: nn.Module) -> bool:
    from explorer.methods.lrp_rules import roles

    return bool(roles(module, "cp"))


# Containers whose forward the relevance form handles: chains of modules, and blocks whose residual sum the
# canonizers turn into a zennit Sum. (A container not listed may add branches in its forward, which would
# copy relevance into both in relevance form: such models run in gradient form, where sums split correctly.)
_CANONIZED_CONTAINERS = {
    "torch.nn.modules.container": {"Sequential", "ModuleList", "ModuleDict"},
    "timm.layers.norm_act": {"BatchNormAct2d"},
    "timm.layers.adaptive_avgmax_pool": {"SelectAdaptivePool2d"},
    "timm.models._efficientnet_blocks": {"DepthwiseSeparableConv", "InvertedResidual"},
    "timm.models.efficientnet": {"EfficientNet"},
    "torchvision.models.resnet": {"BasicBlock", "Bottleneck", "ResNet"},
}


def engine(module: nn.Module) -> str:
    """'relevance' for a CNN whose every container the canonizers cover (no LayerNorm, attention or SE gate),
    else 'gradient'."""
    if lrp_problem(module) or has_se_or_attention(module):
        return "gradient"
    for m in module.modules():
        cls = type(m)
        if next(m.children(), None) is not None and cls.__name__ not in _CANONIZED_CONTAINERS.get(cls.__module__, ()):
            return "gradient"
    return "relevance"


def resolve(composite: str, module: nn.Module) -> str:
    """The composite ``auto`` stands for on this model (chosen by measurement, docs/methods.md §1.7)."""
    return "conserving_plus" if composite == "auto" else composite


def _start(target: int, value: bool):
    def start(out: torch.Tensor) -> torch.Tensor:
        g = torch.zeros_like(out)
        g[:, target] = out[:, target].detach() if value else 1.0
        return g
    return start


def direct_call_problem(model, composite: str = "auto") -> str:
    """Why this run of ``composite``, where it calls the module itself (the relevance form and zennit's own
    composites), would not compute the model's logits ('' when it would). The gradient form goes through
    explorer's forward, which selects a tuple's or dict's scores (a Hugging Face output) and turns the image grey,
    so only low precision is refused there: the rules' stabilisers (epsilon 1e-6) underflow in half."""
    fwd = model.forward
    if not isinstance(fwd, ModelForward):
        return ""
    problem = fwd.direct_call_problem()
    through_forward = resolve(composite, model.module) in CONSERVING and engine(model.module) == "gradient"
    if problem and through_forward and fwd.dtype not in LOW_PRECISION:
        return ""
    return problem


def lrp_relevance(model, x: torch.Tensor, target: int, composite: str = "auto", *,
                  epsilon: float = 1e-6, gamma: float = 0.25, zero_bias: bool = False,
                  form: str | None = None) -> tuple[torch.Tensor, float]:
    """Input relevance (1, 3, h, w) for ``target`` (started from the logit z_c) and z_c itself. ``form``: force
    the conserving composites' 'relevance' or 'gradient' form (benchmarks; default: ``engine(module)``)."""
    from explorer.methods import lrp_rules

    module = model.module
    if model.binary and target == 1:
        # "not the class" scores -z, and every rule here is linear in the relevance it starts from, so its
        # relevance is the class's own, negated (the module itself has the one logit only)
        rel, z = lrp_relevance(model, x, 0, composite, epsilon=epsilon, gamma=gamma, zero_bias=zero_bias, form=form)
        return -rel, -z
    composite = resolve(composite, module)
    xin = x.detach()
    if model.channels_last:
        xin = xin.contiguous(memory_format=torch.channels_last)
    gradient_form = False
    form = form or engine(module)
    conv_gamma = math.inf if composite == "conserving_plus" else gamma
    if composite in CONSERVING and form == "relevance":
        comp = lrp_rules.relevance_composite(module, make_canonizers(module, xin), conv_gamma=conv_gamma,
                                             eps=epsilon)
    elif composite in CONSERVING:
        gradient_form = True
        comp = lrp_rules.conserving_composite(module, traced_batchnorm_pairs(module, xin), conv_gamma=conv_gamma,
                                              attention="attnlrp" if composite == "attnlrp" else "cp",
                                              eps=epsilon)
    else:
        pre = model.preprocess
        low = pre.normalise(torch.zeros_like(xin[:, :, :1, :1])).expand_as(xin).contiguous()
        high = pre.normalise(torch.ones_like(xin[:, :, :1, :1])).expand_as(xin).contiguous()
        comp = make_composite(composite, make_canonizers(module, xin), low=low, high=high, epsilon=epsilon,
                              gamma=gamma, zero_bias=zero_bias)
    # The composite on the module. In gradient form the forward goes through the model's wrapper, as every other
    # method's does (it reads the logits out of a Hugging Face output; whatever it does after the module, a
    # binary model's (z, -z) pair included, autograd carries back exactly). In relevance form what comes back
    # from the output is read as relevance, which the wrapper's own backward would rescale: the module itself
    # (only plain timm/torchvision CNNs run in relevance form, see ``engine``).
    with torch.enable_grad(), comp.context(module):
        xg = xin.clone().requires_grad_()
        if gradient_form:
            out = model.forward(xg)
            (rel,) = torch.autograd.grad(out, xg, _start(target, value=False)(out.detach()))
            return (xin * rel).detach(), float(out.detach()[0, target])
        out = module(xg)
        sign = 1.0
        if getattr(model, "binary", False) and out.shape[1] == 1:
            # a single logit z explained as the pair (z, -z): the rules are linear in the relevance put in, so
            # "not the class" (-z) is z's decomposition started from -z
            sign, target = (-1.0 if target == 1 else 1.0), 0
        start = _start(target, value=True)(out.detach()) * sign
        (rel,) = torch.autograd.grad(out, xg, start)
    return rel.detach(), sign * float(out.detach()[0, target])


@register("lrp")
class LRP(Method):
    title = "Layer-wise Relevance Propagation (zennit)"
    family = Family.RELEVANCE
    paper = ("Bach et al. 2015, "
             "On Pixel-Wise Explanations by Layer-Wise Relevance Propagation; zennit (Anders et al. 2021); "
             "AttnLRP (Achtibat et al. 2024)")
    summary = ("relevance of the class logit propagated back layer by layer, conserved through BatchNorm, SE gates, "
               "LayerNorm and attention (AttnLRP's rules available)")
    needs = Needs.GRADIENTS | Needs.LAYER
    outputs = (MapSpec("salient", signed=True, help="input relevance summed over colour channels",
                         zero="0 = no relevance; positive supports the target, negative opposes it, and the map "
                              "sums to about z_c (info.conservation = sum / z_c says how closely)"),)
    params = Params(
        Param("composite", "choice", "auto", "rule composite (auto: the measured default for the model)",
              choices=COMPOSITES),
        Param("epsilon", "float", 1e-6, "stabiliser of the epsilon rule (dense layers)", low=1e-9, high=10.0,
              step=1e-6, log=True),
        Param("gamma", "float", 0.25, "gamma of the gamma rule (conserving composites, epsilon_gamma_box)",
              low=0.0, high=10.0,
              step=0.05),
        Param("zero_bias", "bool", False, "ignore biases in zennit's composites (the conserving ones always do)"),
    )
    quick: dict = {}

    def validate(self) -> None:
        from explorer.methods.lrp_rules import coverage_problem

        adapted = direct_call_problem(self.model, self.p.composite)
        if adapted:
            raise UnsupportedError(f"lrp: model {self.model.id!r} has {adapted}, which zennit's rules, attached to "
                                   f"the module itself, would not see, so lrp is refused; "
                                   f"{use_instead(self.model, exclude=('lrp',))}")
        composite = resolve(self.p.composite, self.model.module)
        if composite in ZENNIT_COMPOSITES:
            problem = lrp_problem(self.model.module)
            if problem:
                raise UnsupportedError(
                    f"lrp: model {self.model.id!r} has {problem}; zennit's composite {composite!r} does not "
                    f"conserve relevance through it (the map would be NaN or near zero), so it is refused; "
                    f"use composite auto, conserving_gamma or attnlrp")
            return
        problem = coverage_problem(self.model.module)
        if problem:
            raise UnsupportedError(f"lrp: model {self.model.id!r} has {problem}, so lrp is refused; "
                                   f"{use_instead(self.model, exclude=('lrp',))}")

    @classmethod
    def refuses(cls, model) -> bool:
        """Whether lrp at its defaults refuses ``model`` (for the "use X instead" of other refusals)."""
        from explorer.methods.lrp_rules import coverage_problem

        return bool(direct_call_problem(model) or coverage_problem(model.module))

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        composite = resolve(self.p.composite, self.model.module)
        try:
            rel, z = lrp_relevance(self.model, ctx.x, ctx.target, composite, epsilon=self.p.epsilon,
                                   gamma=self.p.gamma, zero_bias=self.p.zero_bias)
        except ImportError:
            raise ExplorerError("lrp needs the 'zennit' package (pip install zennit)") from None
        total = float(rel.sum())
        conservation = total / z if z else float("nan")
        info = {"relevance_sum": total, "logit": z, "conservation": conservation, "composite": composite,
                "form": engine(self.model.module) if composite in CONSERVING else "relevance"}
        if not conservation >= LOW_CONSERVATION:
            info["warning"] = (f"the relevance sums to {conservation:.3g} of the logit z_c (below "
                               f"{LOW_CONSERVATION}): the rest was absorbed by biases or rules; the map is not "
                               f"a decomposition of the score")
        yield MethodStep(1.0, {"salient": rel[0].float().sum(0)}, info=info)

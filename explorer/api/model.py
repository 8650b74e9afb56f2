"""A model for the API: an ``nn.Module`` the user already holds (wrapped, never copied) or any CLI spec.

The module stays the user's object. It is switched to eval mode once, here (as pytorch-grad-cam does when
it is constructed), and never switched back: every forward refuses a module that is in training mode again,
since BatchNorm and dropout in training mode give wrong maps and would update the running statistics. Its
parameters keep their ``requires_grad`` (the methods differentiate with respect to the input only), its
device and memory format stay as they are unless ``device=`` asks to move it.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from explorer.core.errors import ExplorerError, ModelLoadError, ParamError
from explorer.models.engine import Engine, engine_choice
from explorer.models.loaded import LoadedModel, validate_output
from explorer.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Preprocess

# Modules already wrapped, so that explain(net, ...) called in a loop neither re-validates nor re-switches.
_WRAPPED: "weakref.WeakKeyDictionary[nn.Module, LoadedModel]" = weakref.WeakKeyDictionary()
PREPROCESS_KEYS = ("mean", "std", "size", "input_size", "policy", "crop_pct", "interpolation", "crop_mode")


class ModuleForward:
    """The forward of a user's module: refuses training mode (the dtype, channels and output are handled by
    ``models.outputs.ModelForward`` around it)."""

    def __init__(self, module: nn.Module, model_id: str):
        self.module = module
        self.model_id = model_id

    def __call__(self, x: torch.Tensor):
        if self.module.training:
            raise ModelLoadError(
                f"model {self.model_id!r} is in training mode (model.train() was called after it was loaded): call "
                "model.eval() before explaining it; explorer never switches your model's mode itself")
        return self.module(x)


def load_model(spec_or_module: Any = None, *, preprocess: Any = None, labels: Any = None,
               device: str | torch.device | None = None, weights: str | Path | None = None,
               trust_pickle: bool = False, offline: bool | None = None, activation: str | None = None,
               output: str | int | None = None, processor: Any = None, engine: str | None = None) -> LoadedModel:
    """A classifier ready for ``explain``: your ``nn.Module`` as it is, or anything ``--model`` takes.

    ``spec_or_module``: an ``nn.Module`` (or TorchScript module) mapping a normalised (N, 3, H, W) batch to
    (N, K) scores; or a spec: ``"efficientnet_lite0"`` (default, offline), ``"torchvision:NAME"``,
    ``"timm:NAME"``, a ``.pt``/``.ts``/``.onnx`` file (with ``weights=``, ``trust_pickle=``, ``offline=`` as
    on the command line). A module is used in place, never copied: it is put in eval mode once, here, and
    a later ``model.train()`` makes explanations refuse until you call ``model.eval()`` again.

    ``preprocess``: ``{"mean": (...), "std": (...), "size": 224, "policy": "resize" | "center_crop",
    "crop_pct": 0.875}``, a torchvision weights enum (``ResNet50_Weights.DEFAULT``) or its ``transforms()``,
    or None: the module's timm metadata when it carries some, else ImageNet's mean/std at 224×224.
    ``labels``: class names (a list, an {index: name} dict or a file); default ImageNet's for 1000 outputs,
    else ``class 0``, ``class 1``... ``device``: move the module there (in place); default where it is.
    A one-channel module gets the photo in grey (mean/std of length 1, or the RGB ones averaged).

    ``activation``: how logits become scores, ``softmax``, ``sigmoid`` (multi-label, or a binary model's one
    logit) or ``none``; default: sigmoid for one output, a Hugging Face model's ``problem_type``, else softmax.
    ``output``: which part of a tuple / dict / ``ModelOutput`` holds the scores (default element 0 / ``logits``).
    ``processor``: a Hugging Face image processor (its size, resampling, crop and mean/std become the
    preprocessing); a Hugging Face module without one is read from its config.
    """
    from explorer.models.outputs import check_activation

    activation = check_activation(activation)
    if isinstance(spec_or_module, LoadedModel):
        model = spec_or_module
        if preprocess is not None or labels is not None or activation or output is not None:
            model = _with(model, preprocess, labels, activation, output)
        if engine is not None and model.kind != "onnx":
            model = _with_engine(replace(model, notes=list(model.notes)) if model is spec_or_module else model, engine)
        return model
    if isinstance(spec_or_module, nn.Module):
        if weights is not None:
            raise ParamError("weights= is for a model given by name; load the state dict into your module yourself "
                             "(module.load_state_dict(torch.load(FILE)))")
        model = _wrap(spec_or_module, preprocess, labels, device, activation, output, processor)
        return _with_engine(model, engine) if engine is not None else model
    if spec_or_module is not None and not isinstance(spec_or_module, (str, Path)):
        raise ModelLoadError(f"cannot use a {type(spec_or_module).__name__} as a model: give a torch nn.Module that "
                             "returns (N, K) class scores, or a spec such as 'efficientnet_lite0', "
                             "'torchvision:resnet50', 'timm:NAME' or a model file")
    from explorer.models.loader import load_model as load_spec

    label_file = labels if isinstance(labels, (str, Path)) else None
    stats = {k: preprocess.get(k) for k in ("mean", "std")} if isinstance(preprocess, Mapping) else {}
    model = load_spec(str(spec_or_module) if spec_or_module is not None else None, weights=weights,
                      labels=label_file, device=device, trust_pickle=trust_pickle,
                      allow_download=False if offline else None, activation=activation, output=output,
                      engine=engine, **stats)  # the loader then knows the normalisation is given, not assumed
    if preprocess is not None or (labels is not None and label_file is None):
        model = _with(model, preprocess, None if label_file else labels)
    return model


def as_loaded(model: Any) -> LoadedModel:
    """What every API function calls first: a LoadedModel from a LoadedModel, a module (cached) or a spec."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        cached = _WRAPPED.get(model)
        return cached if cached is not None else load_model(model)
    return load_model(model)


def _wrap(module: nn.Module, preprocess: Any, labels: Any, device: Any, activation: str | None = None,
          output: str | int | None = None, processor: Any = None) -> LoadedModel:
    from explorer.models.outputs import unwrap

    given = module
    scripted = isinstance(module, torch.jit.ScriptModule)
    model_id = f"{type(module).__name__} (in memory)"
    module, unwrapped = unwrap(module)
    notes = [unwrapped] if unwrapped else []
    if module.training:
        module.eval()  # the one switch, at load time (see the module docstring)
        notes.append("switched to eval mode when it was loaded")
    if device is not None:
        from explorer.models.device import pick_device

        dev = device if isinstance(device, torch.device) else pick_device(str(device))
        module.to(dev)  # in place: the same object, on the asked device
    else:
        dev = _device_of(module)
    names = _label_list(labels)
    from explorer.models import hf
    from explorer.models.labels import imagenet_labels

    if hf.is_hf_module(module):
        pre, hf_labels, hf_activation = hf.describe_module(module, processor, model_id, preprocess)
        if preprocess is not None:
            pre = resolve_preprocess(preprocess, module)
        names, activation = names or hf_labels, activation or hf_activation
    elif processor is not None:
        raise ParamError("processor= is for a Hugging Face model (a transformers PreTrainedModel); give "
                         "preprocess= for other modules")
    else:
        pre = resolve_preprocess(preprocess, module)
    model = LoadedModel(id=model_id, kind="torchscript" if scripted else "torch",
                        forward=ModuleForward(module, model_id), labels=names or imagenet_labels(),
                        preprocess=pre, device=dev, module=module, channels_last=False,
                        source="in-memory nn.Module", notes=notes, activation=activation, output=output)
    validate_output(model)
    _check_label_count(model, names)
    model.engine = Engine(engine_choice(None))
    _WRAPPED[given] = model
    return model


def _with_engine(model: LoadedModel, engine: str) -> LoadedModel:
    """``model`` scoring through ``engine`` (a fresh decision; ``onnxruntime`` is decided, or refused, now)."""
    model.engine = Engine(engine_choice(engine))
    if model.engine.requested == "onnxruntime":
        model.resolve_engine()
    return model


def _with(model: LoadedModel, preprocess: Any, labels: Any, activation: str | None = None,
          output: str | int | None = None) -> LoadedModel:
    """A copy of the wrapper (not of the module) with other preprocessing, class names, activation or output."""
    pre = resolve_preprocess(preprocess, model.module) if preprocess is not None else model.preprocess
    names = _label_list(labels)
    out = replace(model, preprocess=pre, labels=names or list(model.labels), notes=list(model.notes),
                  activation=activation or model.activation, output=model.output if output is None else output,
                  _layers=None, _batch=None)
    validate_output(out)
    _check_label_count(out, names)
    return out


def _device_of(module: nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def _label_list(labels: Any) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, Path)):
        from explorer.models.labels import read_labels

        return read_labels(labels)
    if isinstance(labels, Mapping):
        try:
            return [str(labels[k]) for k in sorted(labels, key=int)]
        except (TypeError, ValueError):
            raise ParamError("a labels mapping must have integer keys (class index -> name)") from None
    if isinstance(labels, Sequence):
        names = [str(n) for n in labels]
        if not names:
            raise ParamError("labels is empty")
        return names
    raise ParamError(f"labels must be a list of class names, an {{index: name}} mapping or a file path, "
                     f"not a {type(labels).__name__}")


def _check_label_count(model: LoadedModel, names: list[str] | None) -> None:
    if model.binary and names is not None and len(names) in (1, 2):
        return  # a single-logit model's one name (its class) or two (the class, its negation)
    if names is not None and len(names) != model.num_classes:
        raise ModelLoadError(f"model {model.id!r} has {model.num_classes} outputs but {len(names)} labels were given")


# --------------------------------------------------------------------------- preprocessing
def resolve_preprocess(preprocess: Any, module: nn.Module | None) -> Preprocess:
    """A ``Preprocess`` from what the user gave, or from metadata the module carries (timm), or ImageNet's.

    Accepted: a ``Preprocess``; a mapping with ``mean``, ``std``, ``size`` (or timm's ``input_size``),
    ``policy`` (``resize`` | ``center_crop``) and ``crop_pct`` (timm's data config fits); a torchvision
    weights enum (``ResNet18_Weights.DEFAULT``) or its ``transforms()``.
    """
    if preprocess is None:
        if module is not None and (getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)):
            from explorer.models.loader import _timm_preprocess

            return _timm_preprocess(module, None)
        return Preprocess()
    if isinstance(preprocess, Preprocess):
        return preprocess
    if hasattr(preprocess, "transforms") and hasattr(preprocess, "meta"):  # a torchvision WeightsEnum member
        preprocess = preprocess.transforms()
    if all(hasattr(preprocess, a) for a in ("crop_size", "resize_size", "mean", "std")):  # torchvision transform
        crop = _pair(preprocess.crop_size, "crop_size")
        resize = _pair(preprocess.resize_size, "resize_size")
        interp = str(getattr(getattr(preprocess, "interpolation", None), "value", "bilinear")).lower()
        return _make(crop, preprocess.mean, preprocess.std, "center_crop", min(crop) / min(resize), interp)
    if isinstance(preprocess, Mapping):
        unknown = [k for k in preprocess if k not in PREPROCESS_KEYS]
        if unknown:
            raise ParamError(f"unknown preprocess key(s) {', '.join(map(repr, unknown))}; valid: "
                             f"{', '.join(PREPROCESS_KEYS)}")
        interp = preprocess.get("interpolation") or "bilinear"
        size = preprocess.get("size", preprocess.get("input_size", 224))
        if isinstance(size, (list, tuple)) and len(size) == 3:  # timm's (C, H, W)
            size = tuple(size[1:])
        crop_pct = preprocess.get("crop_pct")
        # resize by default, as for a timm:NAME spec on the command line (maps then cover every pixel)
        return _make(_pair(size, "size"), preprocess.get("mean", IMAGENET_MEAN), preprocess.get("std", IMAGENET_STD),
                     preprocess.get("policy") or "resize", 0.875 if crop_pct is None else crop_pct, interp)
    raise ParamError(f"cannot use a {type(preprocess).__name__} as preprocessing: give a dict with mean, std and "
                     "size, or torchvision weights (e.g. ResNet50_Weights.DEFAULT)")


def _pair(v: Any, what: str) -> tuple[int, int]:
    vals = list(v) if isinstance(v, (list, tuple)) else [v, v]
    if len(vals) == 1:
        vals = vals * 2
    try:
        h, w = (int(x) for x in vals)
    except (TypeError, ValueError):
        raise ParamError(f"preprocess {what} must be an integer or (height, width), got {v!r}") from None
    if h < 8 or w < 8:
        raise ParamError(f"preprocess {what} must be at least 8 pixels, got {v!r}")
    return h, w


def _make(size: tuple[int, int], mean: Any, std: Any, policy: str, crop_pct: Any,
          interpolation: str = "bilinear") -> Preprocess:
    try:
        m = tuple(float(x) for x in mean)
        s = tuple(float(x) for x in std)
        crop = float(crop_pct)
    except (TypeError, ValueError):
        raise ParamError(f"preprocess mean/std must be numbers (three, or one for a grey model) and crop_pct a "
                         f"number, got {mean!r}, {std!r}, {crop_pct!r}") from None
    if len(m) != len(s) or len(m) not in (1, 3):
        raise ParamError(f"preprocess mean and std need one value per input channel (3 for RGB, 1 for a grey "
                         f"model), got {mean!r} and {std!r}")
    if min(s) <= 0:
        raise ParamError(f"preprocess std must be > 0, got {std!r}")
    if max(abs(v) for v in m) > 1 or max(s) > 1:
        raise ParamError(f"preprocess mean {mean!r} / std {std!r} look like 0..255 values; explorer scales pixels "
                         "to [0, 1] before normalising, so give them in [0, 1] (e.g. 0.485, not 123.7)")
    if policy not in ("resize", "center_crop"):
        raise ParamError(f"preprocess policy must be 'resize' or 'center_crop', got {policy!r}")
    if not 0 < crop <= 1:
        raise ParamError(f"preprocess crop_pct must be in (0, 1], got {crop_pct!r}")
    if interpolation not in INTERPOLATIONS:
        raise ParamError(f"preprocess interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    try:
        return Preprocess(input_size=size, mean=m, std=s, policy=policy, crop_pct=crop, interpolation=interpolation)
    except (TypeError, ValueError) as exc:
        raise ExplorerError(f"bad preprocessing: {exc}") from None

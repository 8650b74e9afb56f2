"""A loaded classifier with everything methods need: forward, preprocessing, labels, layers, device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from explorer.core import allocator
from explorer.core.errors import ExplorerError, ModelLoadError, TargetError, UnknownNameError, UnsupportedError
from explorer.core.types import Needs
from explorer.models.attention import attention_problem, has_attention
from explorer.models.device import BatchPolicy
from explorer.models.engine import Engine, onnx_model_record
from explorer.models.layers import LayerInfo, discover, not_spatial, pick_default
from explorer.models.outputs import (
    ModelForward,
    activate,
    binary_labels,
    input_channels,
    module_dtype,
    resolve_activation,
)
from explorer.models.preprocess import Preprocess


@dataclass
class Prediction:
    index: int
    name: str
    prob: float


@dataclass
class LoadedModel:
    """``forward`` maps a normalised (N, 3, h, w) batch to (N, K) float32 logits on ``device`` (after
    ``validate_output``, a ``ModelForward``: grey conversion, dtype, output selection, binary pair).

    ``module`` is the torch module when there is one (TorchScript included); ``None`` for ONNX. ``kind`` is
    ``torch`` (hooks and gradients), ``torchscript`` (gradients, no hooks) or ``onnx`` (scores only).
    ``activation`` (softmax, sigmoid or none; ``None`` until ``validate_output`` picks it from the number of
    outputs) turns logits into the scores methods and metrics read: ``activate`` is the one place it happens.
    ``output`` selects the scores in a tuple/dict/ModelOutput the module returns (None: element 0 / ``logits``).
    """

    id: str
    kind: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    labels: list[str]
    preprocess: Preprocess
    device: torch.device
    module: nn.Module | None = None
    channels_last: bool = False
    source: str = ""
    notes: list[str] = field(default_factory=list)
    activation: str | None = None
    output: str | int | None = None
    _layers: list[LayerInfo] | None = field(default=None, repr=False)
    _batch: BatchPolicy | None = field(default=None, repr=False)
    # the engine of score-only forwards (models/engine.py); None: torch (or the ONNX session of an ONNX model)
    engine: Engine | None = field(default=None, repr=False)
    # Images through ``__call__`` with and without autograd: the runner records a run's share in its
    # timings, so a benchmark can compare a method with the bare forwards (and backwards) it needed.
    passes: dict[str, int] = field(default_factory=lambda: {"images": 0, "grad_images": 0}, repr=False)

    # ----------------------------------------------------------------- capabilities
    @property
    def supports(self) -> Needs:
        if self.kind == "torch":
            base = Needs.SCORES | Needs.GRADIENTS | Needs.LAYER
            return base | Needs.ATTENTION if has_attention(self.module) else base
        if self.kind == "torchscript":
            return Needs.SCORES | Needs.GRADIENTS
        return Needs.SCORES

    def check_supports(self, needs: Needs, method: str = "this method") -> None:
        missing = needs & ~self.supports
        if Needs.ATTENTION in missing:  # the most specific reason first: what to load instead
            raise UnsupportedError(f"{method}: {attention_problem(self)}")
        if Needs.GRADIENTS in missing:
            raise UnsupportedError(
                f"{method} needs gradients, which the {self.kind} model {self.id!r} does not offer "
                "(black box: use a scores-only method such as rise, occlusion, lime, kernelshap, undesirable, borex)")
        if Needs.LAYER in missing:
            raise UnsupportedError(
                f"{method} needs hooks on an inner layer, which the {self.kind} model {self.id!r} does not offer "
                "(load the architecture by name with --weights to use layer methods)")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def batch(self) -> BatchPolicy:
        if self._batch is None:
            self._batch = BatchPolicy(self.device, self.preprocess.input_size)
        return self._batch

    # ----------------------------------------------------------------- forward
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        self.passes["grad_images" if torch.is_grad_enabled() else "images"] += int(x.shape[0])
        return self.forward(x)

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) logits -> (N, K) float32 scores under the model's activation (softmax: probabilities that sum
        to 1; sigmoid: one independent probability per label; none: the logits). The only place where a class
        score becomes a probability: every method's ``score=prob`` and every metric goes through here."""
        return activate(logits, self.activation or "softmax")

    @property
    def binary(self) -> bool:
        """A single-logit model, explained as the pair (class, not class)."""
        return isinstance(self.forward, ModelForward) and self.forward.binary

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) logits of a score-only forward: through the scoring engine when one is set and autograd is
        off, else torch's ``__call__``. Only paths that need the scores alone call this (never with a layer hook
        registered: a hook sees torch's forwards only)."""
        fwd = self.engine.forward(self, x) if self.engine is not None and not torch.is_grad_enabled() else None
        if fwd is None:
            return self(x)
        self.passes["images"] += int(x.shape[0])
        return fwd(x)

    def resolve_engine(self) -> dict:
        """Decide the scoring engine now (export/check/time) rather than at the first score-only forward."""
        if self.engine is not None and not self.engine.resolved:
            self.engine.resolve(self)
        return self.engine_record()

    def engine_record(self) -> dict:
        if self.kind == "onnx":
            return onnx_model_record()
        return self.engine.record() if self.engine is not None else {"requested": "torch", "engine": "torch"}

    def scores(self, x: torch.Tensor, probs: bool = True, batch_size: int | None = None,
               engine: bool = True) -> torch.Tensor:
        """(N, K) probabilities (or logits) for a batch of any size, in chunks, under inference mode; through
        the scoring engine unless ``engine=False`` (one prediction need not wait for an export)."""
        size = batch_size or self.batch.size
        outs = []
        fwd = self.logits if engine else self
        with torch.inference_mode():
            for i in range(0, x.shape[0], size):
                out = self.batch.call(fwd, x[i : i + size]).float()
                outs.append(self.activate(out) if probs else out)
        return torch.cat(outs)

    def predict(self, x: torch.Tensor, k: int = 5) -> list[Prediction]:
        p = self.scores(x[:1], engine=False)[0]
        if not torch.isfinite(p).all():
            raise ExplorerError(f"model {self.id!r} returned NaN or infinite scores for this image")
        v, i = p.topk(min(k, p.numel()))
        return [Prediction(int(j), self.labels[int(j)], float(q)) for q, j in zip(v.tolist(), i.tolist())]

    def uniform_warning(self, predictions: list[Prediction]) -> str:
        """A warning when the top predictions are near chance ('' otherwise): the softmax's top-1 under three
        times the uniform 1/K over 10 or more classes, or every sigmoid label within 0.05 of 0.5. Such scores
        usually mean untrained (random) weights, or weights that do not fit the preprocessing."""
        if not predictions:
            return ""
        k, top = self.num_classes, predictions[0].prob
        if self.activation == "softmax" and k >= 10 and top < 3.0 / k:
            return (f"predictions are near-uniform over the {k} classes (top-1 {top:.4f}, uniform {1 / k:.4f}): "
                    "the weights are likely untrained, or do not fit the preprocessing; the maps explain that model")
        if self.activation == "sigmoid" and all(abs(p.prob - 0.5) < 0.05 for p in predictions):
            return (f"every label's probability is within 0.05 of 0.5 (top {top:.3f}): the weights are likely "
                    "untrained, or do not fit the preprocessing; the maps explain that model")
        return ""

    # ----------------------------------------------------------------- classes
    def class_index(self, target: int | str) -> int:
        """A class index from an index (or its string) or a class name (exact, then case-insensitive)."""
        if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
            idx = int(target)
            if not 0 <= idx < self.num_classes:
                raise TargetError(f"class index {idx} is out of range: the model has {self.num_classes} classes "
                                  f"(0..{self.num_classes - 1})")
            return idx
        name = str(target).strip()
        if name in self.labels:
            return self.labels.index(name)
        low = [l.lower() for l in self.labels]
        if name.lower() in low:
            return low.index(name.lower())
        close = [l for l in self.labels if name.lower() in l.lower()]
        raise UnknownNameError("class", name, close or self.labels)

    # ----------------------------------------------------------------- layers
    def layers(self) -> list[LayerInfo]:
        """Candidate layers (4-D feature maps), in execution order; empty without hooks."""
        if Needs.LAYER not in self.supports or self.module is None:
            return []
        if self._layers is None:
            self._layers = discover(self.module, self._example())
        return self._layers

    def layer_names(self) -> list[str]:
        return [l.name for l in self.layers()]

    def _example(self) -> torch.Tensor:
        """A blank input as the module itself takes it (its channels and dtype), for layer discovery."""
        h, w = self.preprocess.input_size
        example = torch.zeros(1, 3, h, w, device=self.device)
        if isinstance(self.forward, ModelForward):
            example = self.forward.model_input(example)
        if self.channels_last:
            example = example.contiguous(memory_format=torch.channels_last)
        return example

    def default_layer(self) -> str:
        """The layer the CAM family and FEM explain by default (``layers.pick_default``): the last spatial
        feature map before global pooling, or a transformer's last block's first norm."""
        name = pick_default(self.layers())
        if name is None:
            raise UnsupportedError(f"model {self.id!r} offers no inner layers with spatial feature maps")
        return name

    def layer_info(self, name: str) -> LayerInfo:
        """How layer ``name``'s output reads as a feature map (layout, prefix tokens, (C, h, w))."""
        for info in self.layers():
            if info.name == name:
                return info
        raise not_spatial(self.module, name, self._example(), self.id, self.layer_names())

    def layer(self, name: str | None) -> tuple[str, nn.Module]:
        """``(name, module)`` for a layer name, or the auto-picked one for ``None``.

        A name that is not a candidate is refused with the reason: unknown (the valid ones are listed), no
        tensor output, or an output that is not a feature map (e.g. a token count that is not a grid)."""
        self.check_supports(Needs.LAYER, "a layer method")
        name = name or self.default_layer()
        if name not in self.layer_names():
            raise not_spatial(self.module, name, self._example(), self.id, self.layer_names())
        return name, self.module.get_submodule(name)

    def describe(self) -> dict:
        return {
            "id": self.id, "kind": self.kind, "source": self.source, "classes": self.num_classes,
            "device": str(self.device), "preprocess": self.preprocess.record(),
            "supports": self.supports.describe(), "notes": self.notes, "allocator": allocator.state(),
            "activation": self.activation, "output": self.output, "binary": self.binary,
            "input_channels": getattr(self.forward, "channels", 3),
            "dtype": str(getattr(self.forward, "dtype", None) or torch.float32).removeprefix("torch."),
            "engine": self.engine_record(),
        }


def validate_output(model: LoadedModel) -> None:
    """Wrap the model's forward (``ModelForward``), run one blank input and check it gives finite (1, K)
    scores matching its labels; pick the activation for K outputs (``outputs.resolve_activation``).

    Every model (loaded by spec, or an in-memory module from the Python API) passes here before its first
    forward, so this is where the process's allocator is put in its fast state (core/allocator.py). Run again
    on a copy of a model (other labels or preprocessing), it rewraps the raw forward, never a wrapper."""
    allocator.tune()
    inner = model.forward.inner if isinstance(model.forward, ModelForward) else model.forward
    channels = input_channels(model.module, inner)
    pre = model.preprocess
    if channels is not None and channels not in (1, 3):
        raise ModelLoadError(f"model {model.id!r} takes {channels} input channels; explorer explains RGB (3) or "
                             "grey (1) images only")
    if channels == 1 and pre.channels == 3:
        model.preprocess = pre = pre.grey()
        model.notes.append(f"one input channel: the photo is turned grey for the model (mean {pre.mean[0]:.3f}, "
                           f"std {pre.std[0]:.3f}); maps are drawn over the original photo")
    elif channels == 3 and pre.channels == 1:
        raise ModelLoadError(f"model {model.id!r} takes 3 input channels but its preprocessing has one mean/std "
                             "value: give three (one per colour channel)")
    fwd = ModelForward(inner, model.id, channels=pre.channels, dtype=module_dtype(model.module), output=model.output)
    model.forward = fwd
    h, w = pre.input_size
    x = torch.zeros(1, 3, h, w)
    try:
        with torch.inference_mode():
            out = model(x)
    except ExplorerError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a user's model is reported, not raised
        shown = f"{pre.channels}x{h}x{w}"
        raise ModelLoadError(f"model {model.id!r} failed on a 1x{shown} input: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if out.dim() != 2 or out.shape[0] != 1:
        raise ModelLoadError(
            f"model {model.id!r} returned scores of shape {tuple(out.shape)}; a classifier must return (1, K)")
    if not torch.isfinite(out).all():
        raise ModelLoadError(f"model {model.id!r} returned NaN or infinite scores on a test input")
    k = out.shape[1]
    model.activation = resolve_activation(model.activation, k, model.id)
    if k == 1:
        if len(model.labels) > 2 and len(model.labels) != 1000:
            raise ModelLoadError(f"model {model.id!r} has one output (a binary classifier) but its labels name "
                                 f"{len(model.labels)} classes: give one name (the class its output scores) or two "
                                 "(that class, then its negation)")
        fwd.binary = True
        model.labels = binary_labels(None if len(model.labels) == 1000 else model.labels)
        if not any(n.startswith("single output:") for n in model.notes):
            model.notes.append(f"single output: explained as the pair {model.labels[0]!r} (logit z) and "
                               f"{model.labels[1]!r} (logit -z)")
        return
    if k != len(model.labels):
        if len(model.labels) == 1000 or not model.labels:
            model.notes.append(f"{k} outputs but {len(model.labels)} labels: classes are named 'class i'")
            model.labels = [f"class {i}" for i in range(k)]
        else:
            raise ModelLoadError(
                f"model {model.id!r} has {k} outputs but its labels file names {len(model.labels)} classes")

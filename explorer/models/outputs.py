"""What stands between explorer's normalised RGB batch and a user's module, and how its output reads as scores.

``ModelForward`` wraps the raw forward once, at load time, so every method and metric sees the same thing: a
float32 (N, K) tensor of logits for a float32 (N, 3, h, w) batch, whatever the model takes and returns:

- one input channel: the batch is turned grey (ITU-R BT.601 luma) before the model. The luma weights sum to
  1, so the luma of (rgb - m) / s with the grey mean m and std s replicated on three channels is exactly
  (luma(rgb) - m) / s: explorer's input stays an RGB tensor (in-fillers, maps over the photo, gradients per
  colour channel all unchanged) and the model sees the grey image it was trained on;
- a half or bfloat16 model: the batch is cast to its dtype and the logits back to float32 (maps in float32);
  an operation this device has no kernel for in that dtype is refused in one line that suggests ``.float()``;
- a tuple, dict or Hugging Face ``ModelOutput``: the ``output`` selector picks the scores (default: element 0
  of a tuple, ``logits`` of a mapping);
- one logit (a binary classifier): the single score z becomes the pair (z, -z), the logits of "the class"
  and "not the class", so both decisions can be explained; with the sigmoid activation the pair scores
  (p, 1 - p), the model's own probabilities.

``activate`` is the one place where logits become scores (softmax, sigmoid or none): every method and metric
goes through ``LoadedModel.activate``, which calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch

from explorer.core.errors import ModelLoadError, UnsupportedError

ACTIVATIONS = ("softmax", "sigmoid", "none")
# Hugging Face config.problem_type -> the activation the model was trained with
PROBLEM_TYPES = {"single_label_classification": "softmax", "multi_label_classification": "sigmoid",
                 "regression": "none"}
LUMA = (0.299, 0.587, 0.114)
LOW_PRECISION = (torch.float16, torch.bfloat16)


def activate(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """(N, K) logits -> (N, K) scores under ``activation`` (float32)."""
    z = logits.float()
    if activation == "softmax":
        return z.softmax(1)
    if activation == "sigmoid":
        return z.sigmoid()
    if activation == "none":
        return z
    raise ValueError(f"unknown activation {activation!r}")


def log_odds(logits: torch.Tensor, target: int, activation: str = "softmax") -> torch.Tensor:
    """The target's log-odds log(P_c / (1 - P_c)) per row, under ``activation`` (FIDO's and the extremal
    perturbation's score). Softmax: z_c - logsumexp_{c' != c} z_c' (the other classes share 1 - P_c); sigmoid:
    the label's own logit z_c, whatever the other labels score (for a binary model's pair (z, -z): z and -z);
    none: the raw score z_c, which has no odds."""
    z = logits
    if activation == "softmax":
        others = z.clone()
        others[:, target] = float("-inf")
        return z[:, target] - torch.logsumexp(others, dim=1)
    if activation in ("sigmoid", "none"):
        return z[:, target]
    raise ValueError(f"unknown activation {activation!r}")


def check_activation(value: str | None) -> str | None:
    if value is None or value == "auto":
        return None
    if value not in ACTIVATIONS:
        raise ModelLoadError(f"unknown activation {value!r}; valid: auto, {', '.join(ACTIVATIONS)}")
    return value


def resolve_activation(requested: str | None, outputs: int, model_id: str) -> str:
    """The activation for a model with ``outputs`` logits: the requested one, else sigmoid for one output and
    softmax otherwise. A softmax over one output is the constant 1, so that combination is refused."""
    if requested is None:
        return "sigmoid" if outputs == 1 else "softmax"
    if requested == "softmax" and outputs == 1:
        raise ModelLoadError(
            f"model {model_id!r} has one output, and a softmax over one output is always 1: use activation sigmoid "
            "(a binary classifier's probability) or none (raw score)")
    return requested


def select_output(out: Any, output: str | int | None, model_id: str) -> torch.Tensor:
    """The tensor of class scores in what the model returned (see the module docstring)."""
    if isinstance(out, torch.Tensor):
        if output not in (None, 0, "0"):
            raise ModelLoadError(f"model {model_id!r} returns one tensor, so output={output!r} selects nothing; "
                                 "drop the output option")
        return out
    if isinstance(out, Mapping):
        names = [str(k) for k, v in out.items() if isinstance(v, torch.Tensor)]
        key = "logits" if output is None else str(output)
        if key in names:
            return out[key]
        if output is None and len(names) == 1:
            return out[names[0]]
        what = "has no 'logits' entry" if output is None else f"has no entry {key!r}"
        raise ModelLoadError(f"model {model_id!r} returns a {type(out).__name__} that {what}: choose the scores with "
                             f"output=NAME, one of {', '.join(names) or '(no tensors)'}")
    if isinstance(out, (tuple, list)):
        try:
            idx = 0 if output is None else int(output)
        except (TypeError, ValueError):
            raise ModelLoadError(f"model {model_id!r} returns a {type(out).__name__} of {len(out)}, so output must "
                                 f"be an index 0..{len(out) - 1}, not {output!r}") from None
        if not -len(out) <= idx < len(out) or not isinstance(out[idx], torch.Tensor):
            kinds = ", ".join(f"{i}: {type(v).__name__}" for i, v in enumerate(out))
            raise ModelLoadError(f"model {model_id!r} returns a {type(out).__name__} ({kinds}); output={idx} is not "
                                 "a tensor of class scores: choose one with output=INDEX")
        return out[idx]
    raise ModelLoadError(f"model {model_id!r} returned {type(out).__name__}, not a tensor of class scores")


def module_dtype(module: torch.nn.Module | None) -> torch.dtype | None:
    """The floating dtype of the module's parameters (None: no floating parameters, or not a module)."""
    if module is None:
        return None
    try:
        p = next((t for t in module.parameters() if t.is_floating_point()), None)
    except (AttributeError, RuntimeError):
        return None
    return p.dtype if p is not None else None


class ModelForward:
    """The wrapped forward (see the module docstring). ``inner`` is the raw forward, kept so that a copy of the
    model with other options rewraps it instead of stacking wrappers."""

    def __init__(self, inner: Callable, model_id: str, *, channels: int = 3, dtype: torch.dtype | None = None,
                 output: str | int | None = None, binary: bool = False):
        self.inner = inner
        self.model_id = model_id
        self.channels = channels
        self.dtype = dtype
        self.output = output
        self.binary = binary
        # whether the module itself returned a bare tensor of scores (None until the first call): code that
        # calls the module directly (LRP's attributor) cannot select a part of a tuple or dict
        self.returns_tensor: bool | None = None

    def direct_call_problem(self) -> str:
        """Why calling the raw module on explorer's batch would not give these logits ('' when it would): what
        this wrapper adapts (grey input, a low-precision dtype, a tuple or dict output) that a method calling
        the module itself would miss. The binary pair is not listed: its callers negate the one logit."""
        if self.channels != 3:
            return f"{self.channels} input channel(s), turned grey in explorer's forward"
        if self.dtype in LOW_PRECISION:
            return f"{str(self.dtype).removeprefix('torch.')} weights, fed in that dtype by explorer's forward"
        if self.returns_tensor is False:
            return "an output that is not one tensor (explorer's forward selects the scores)"
        return ""

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """explorer's (N, 3, h, w) float batch as the module takes it (channels, dtype)."""
        if self.channels == 1 and x.shape[1] == 3:
            w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)
        if self.dtype is not None and x.dtype != self.dtype:
            x = x.to(self.dtype)
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.inner(self.model_input(x))
        except (RuntimeError, NotImplementedError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if self.dtype in LOW_PRECISION and ("not implemented for" in msg or "Half" in msg or "BFloat16" in msg):
                name = str(self.dtype).removeprefix("torch.")
                raise UnsupportedError(
                    f"model {self.model_id!r} runs in {name}, and this device has no {name} kernel for an operation "
                    f"it uses ({msg[:160]}): load it in float32 (module.float()) or run it on a GPU") from None
            raise
        self.returns_tensor = isinstance(out, torch.Tensor)
        z = select_output(out, self.output, self.model_id)
        if z.dim() == 1:  # (N,) from a binary head that squeezed its last axis
            z = z[:, None]
        z = z.float()
        if self.binary:
            z = torch.cat([z, -z], 1)
        return z


def binary_labels(names: list[str] | None) -> list[str]:
    """Labels of a single-logit model: the class its logit scores and its negation."""
    if names and len(names) == 2:
        return list(names)
    pos = names[0] if names and len(names) == 1 else "positive"
    return [pos, f"not {pos}"]


def input_channels(module: torch.nn.Module | None, forward: Callable | None = None) -> int | None:
    """How many channels the model takes: its first convolution's input channels (eager modules), the first
    4-D weight's second axis (TorchScript), or the ONNX graph's input; None when nothing says."""
    known = getattr(forward, "channels", None)
    if isinstance(known, int):
        return known
    if module is None:
        return None
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            return int(m.in_channels)
    if isinstance(module, torch.jit.ScriptModule):
        w = next((p for p in module.parameters() if p.dim() == 4), None)
        return int(w.shape[1]) if w is not None else None
    return None


def unwrap(module: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The module that holds the layers: a ``torch.compile``d module's ``_orig_mod``, a ``DataParallel`` /
    ``DistributedDataParallel``'s ``.module`` (hooks on the compiled graph or on the replicas would not see
    the layers); and a note saying what was unwrapped ('' when nothing was)."""
    notes = []
    while True:
        inner = getattr(module, "_orig_mod", None)
        if isinstance(inner, torch.nn.Module):
            notes.append(f"{type(module).__name__} (torch.compile): explained through its original module, run eagerly")
            module = inner
            continue
        if isinstance(module, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            notes.append(f"{type(module).__name__}: explained through its .module on one device")
            module = module.module
            continue
        return module, "; ".join(notes)

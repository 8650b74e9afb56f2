"""Typed results shared by compute, CLI, session and GUI (no torch, no Qt)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core.jsonable import jsonable

# Layer roles the app knows by name; methods may return other names too (e.g. ``ssr_keep``).
SALIENT = "salient"
TARGET_HINDERING = "target_hindering"
NON_TARGET = "non_target"
REFINED = "refined"
UNCERTAINTY = "uncertainty"


class Needs(enum.Flag):
    """What a method needs of the model."""

    SCORES = 1  # black box: class scores of (perturbed) inputs
    GRADIENTS = 2  # autograd through the model
    LAYER = 4  # forward/backward hooks on a named inner layer
    ATTENTION = 8  # the attention probabilities of a ViT-like transformer's blocks (timm)

    def describe(self) -> str:
        parts = []
        if Needs.GRADIENTS in self:
            parts.append("gradients")
        if Needs.LAYER in self:
            parts.append("layer hooks")
        if Needs.ATTENTION in self:
            parts.append("attention weights")
        return " + ".join(parts) or "scores only"


# What a layer of a known role shows, in plain words (the window's one line per layer), and for signed
# roles what 0 and the sign mean. A method's MapSpec may say it better for its own map; these are the
# defaults, so that every layer of every method explains itself without per-widget text.
ROLE_MEANINGS = {
    SALIENT: "pixels that support the target class: brighter = more",
    TARGET_HINDERING: "pixels whose presence lowers the target's score: removing them raises it",
    NON_TARGET: "pixels that pull the image towards other classes than the target",
    REFINED: "the prior map corrected by Bayesian optimisation: prior + Gaussian-process posterior mean",
    UNCERTAINTY: "how unsure the estimate is per pixel: bright = needs more samples or iterations",
    "signed": "the raw map before its ReLU or absolute value: positive supports, negative opposes the target",
}
ROLE_ZERO = {
    SALIENT: "0 = no effect on the target's score; positive supports it, negative argues against it",
    "signed": "0 = no evidence either way; positive supports the target, negative opposes it",
}
SIGNED_SALIENT = "pixels for (positive) and against (negative) the target class"
UNSIGNED_ZERO = "unsigned: never negative, brighter = more"


@dataclass(frozen=True)
class MapSpec:
    """A map a method returns: its name, whether its sign is meaningful, and what it means.

    ``help``: how it is computed (a formula). ``meaning``: what it shows, in plain words, one line (defaults
    to the role's, ROLE_MEANINGS). ``zero``: what the value 0 and the sign mean (signed maps; defaults to
    the role's, ROLE_ZERO, or says that an unsigned map has no negative values).
    """

    name: str
    signed: bool = False
    help: str = ""
    meaning: str = ""
    zero: str = ""

    def __post_init__(self) -> None:
        if not self.meaning:
            meaning = (SIGNED_SALIENT if self.signed and self.name == SALIENT
                       else ROLE_MEANINGS.get(self.name, self.help))
            object.__setattr__(self, "meaning", meaning)
        if not self.zero:
            zero = ROLE_ZERO.get(self.name, ROLE_ZERO["signed"]) if self.signed else UNSIGNED_ZERO
            object.__setattr__(self, "zero", zero)


@dataclass(frozen=True)
class Placement:
    """Where the model input sits in the original image.

    ``box`` = (top, left, height, width) in image pixels covered by the model input (the whole image for
    the ``resize`` policy, the central crop for ``center_crop``). Maps are resampled into that box;
    pixels outside it get NaN (no evidence).
    """

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    box: tuple[int, int, int, int]

    @classmethod
    def whole(cls, image_hw: tuple[int, int], input_hw: tuple[int, int]) -> "Placement":
        return cls(tuple(image_hw), tuple(input_hw), (0, 0, int(image_hw[0]), int(image_hw[1])))


def as_map2d(value: Any, what: str = "a map", dtype=np.float32) -> np.ndarray:
    """A 2-D array from an array-like or a torch tensor (detached, no torch import), leading 1-axes squeezed.

    The one place maps from methods, files, priors and metrics are checked for shape; raises ExplorerError.
    """
    from explorer.core.errors import ExplorerError

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    a = np.asarray(value, dtype=dtype)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ExplorerError(f"{what} must be 2-D (H x W), got shape {a.shape}")
    return a


def resize_map(m: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of a float map to ``hw`` (float32), torch-free."""
    from PIL import Image

    m = np.asarray(m, dtype=np.float32)
    if m.shape == tuple(hw):
        return m.copy()
    img = Image.fromarray(np.ascontiguousarray(m), mode="F")
    return np.asarray(img.resize((int(hw[1]), int(hw[0])), Image.BILINEAR), dtype=np.float32)


def to_image_space(m: np.ndarray, placement: Placement) -> np.ndarray:
    """Map an input-space map (any resolution) to the original image's resolution."""
    top, left, h, w = placement.box
    H, W = placement.image_hw
    inner = resize_map(m, (h, w))
    if (top, left, h, w) == (0, 0, H, W):
        return inner
    out = np.full((H, W), np.nan, dtype=np.float32)
    out[top : top + h, left : left + w] = inner
    return out


def to_input_space(m: np.ndarray, placement: Placement) -> np.ndarray:
    """The inverse of ``to_image_space``: crop the box and resample to the model input size."""
    top, left, h, w = placement.box
    inner = np.asarray(m, dtype=np.float32)[top : top + h, left : left + w]
    return np.nan_to_num(resize_map(inner, placement.input_hw))


@dataclass
class MethodResult:
    """The result of one run: maps at the original image's resolution plus everything needed to redo it.

    ``raw`` holds the maps as the method produced them (model-input space); ``maps`` resamples them to the
    image on first access and caches the result, so a partial result costs nothing until someone looks.
    """

    method: str
    raw: dict[str, np.ndarray]
    signed: dict[str, bool]
    placement: Placement
    target: int | None
    target_name: str
    params: dict[str, Any]
    seed: int
    model_id: str
    timings: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    progress: float = 1.0
    complete: bool = True
    cancelled: bool = False
    _maps: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def maps(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            self._maps = {k: to_image_space(v, self.placement) for k, v in self.raw.items()}
        return self._maps

    @property
    def map_names(self) -> list[str]:
        return list(self.raw)

    @property
    def layer_names(self) -> list[str]:  # old name kept (issue 32): the maps' names, as map_names
        return self.map_names

    @property
    def main(self) -> str:
        """The name of the first (headline) map."""
        return next(iter(self.raw))

    def record(self) -> dict[str, Any]:
        """A JSON-friendly description (no arrays)."""
        return {
            "method": self.method,
            "layers": {k: {"signed": bool(self.signed.get(k, False)),
                           "shape": list(self.placement.image_hw)} for k in self.raw},
            "target": self.target,
            "target_name": self.target_name,
            "params": jsonable(self.params),
            "seed": self.seed,
            "model": self.model_id,
            "timings": self.timings,
            "info": jsonable({k: v for k, v in self.info.items() if k != "state"}),  # resumable sums: not a record
            "complete": self.complete,
            "cancelled": self.cancelled,
        }


@dataclass
class MethodStep:
    """What a method's generator yields: progress in [0, 1] and the running maps (input space).

    ``maps`` values may be numpy arrays or torch tensors (H×W); ``info`` carries extras (a completeness
    gap, the probed windows of BOREx, loss values). A method's last step has progress 1.0.
    """

    progress: float
    maps: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    message: str = ""


# The models that load offline with no file (their table, with weights and preprocessing: models/embedded.py).
# Named here, torch-free, so that argument checking and the GUI's model box know them without importing torch.
EMBEDDED_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass
class RunUpdate:
    """What the runner yields to callers: progress plus a (partial or final) Explanation."""

    progress: float
    explanation: MethodResult
    done: bool = False
    message: str = ""


# The names these types had before issue 32 (one meaning per name: a network layer is a "layer", what a method
# returns is a "map"). Code written against them, methods kept outside this tree above all, still imports them.
# The script that made the renames (rename_32.py) leaves every line that says "old name kept" alone.
LayerSpec = MapSpec  # old name kept
Explanation = MethodResult  # old name kept
Step = MethodStep  # old name kept
Update = RunUpdate  # old name kept

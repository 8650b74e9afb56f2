"""Shared pieces of the evaluation metrics: progress records, the generator/plain-function pair, and the
conversion of any map (image space, input space, other resolution, torch or numpy) to model-input space.

Every metric comes in two forms: ``iter_<metric>(...)`` is a generator yielding ``MetricProgress`` records (the
last one has ``done=True`` and carries the result), and ``<metric>(...)`` runs it to the end and returns the
result. Both take ``cancel`` (a ``CancelToken``); a set token raises ``Cancelled`` at the next check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.types import MethodResult, Placement, as_map2d, resize_map, to_input_space


@dataclass
class MetricProgress:
    """One report of a running metric: ``progress`` in [0, 1], a message, and (when done) the result."""

    progress: float
    message: str = ""
    result: Any = None
    done: bool = False


def run_to_end(gen: Iterator[MetricProgress], on_progress: Callable[[float, str], None] | None = None) -> Any:
    """Drive a metric generator to the end and return its result (``on_progress`` sees every report)."""
    result = None
    for p in gen:
        if on_progress is not None:
            on_progress(p.progress, p.message)
        if p.done:
            result = p.result
    return result


def token(cancel: CancelToken | None) -> CancelToken:
    return cancel if cancel is not None else NEVER


def map_array(saliency: Any) -> np.ndarray:
    """A 2-D float32 numpy map from an ndarray, a torch tensor (squeezing leading 1s) or an Explanation."""
    if isinstance(saliency, MethodResult):
        saliency = saliency.raw[saliency.main]
    return as_map2d(saliency, "a saliency map")


def input_space(saliency: Any, placement: Placement) -> np.ndarray:
    """The map in model-input space (``placement.input_hw``).

    A map of the original image's size is cropped to the model's box and resampled
    (``to_input_space``); a map of the input size is used as it is; any other size (a 7×7 CAM, a 56×56
    FIDO map) is resampled bilinearly to the input size. NaN (no evidence) ranks lowest.
    """
    m = map_array(saliency)
    if m.shape == tuple(placement.input_hw):
        out = m.copy()
    elif m.shape == tuple(placement.image_hw):
        nan = np.isnan(m)
        out = to_input_space(np.where(nan, np.nanmin(m) if (~nan).any() else 0.0, m), placement)
    else:
        filled = np.nan_to_num(m, nan=float(np.nanmin(m)) if np.isfinite(m).any() else 0.0)
        out = resize_map(filled, placement.input_hw)
    return np.nan_to_num(out, nan=-np.inf).astype(np.float32)


def random_map(hw: tuple[int, int], cells: int = 7, seed: int = 0) -> np.ndarray:
    """A random baseline map at a map-like spatial scale: a cells×cells grid of U(0, 1), bilinearly upsampled.

    ``cells=None`` or ``cells >= min(hw)`` gives pixel-level noise (a harsher, less fair baseline for
    deletion: see the note in ``explorer.evaluation.causal``).
    """
    rng = np.random.default_rng(int(seed))
    if not cells or cells >= min(hw):
        return rng.random(tuple(hw)).astype(np.float32)
    return resize_map(rng.random((int(cells), int(cells))).astype(np.float32), tuple(hw))


Progress = MetricProgress  # old name kept (issue 32): metrics outside this tree yield it

"""Scoring perturbed copies of an image, and the one rule for how many images go through the model at once.

Methods (RISE, occlusion, LIME, KernelSHAP, undesirable pixels, BOREx) and the faithfulness metrics
(deletion/insertion, pixel flipping, removal gain) all score through ``score_batch``, so every forward of a
perturbation runs under inference mode with the model's batch policy (halving on out-of-memory), on the model's
scoring engine (``LoadedModel.logits``: ONNX Runtime where it is faster, see explorer/models/engine.py).
"""

from __future__ import annotations

import torch

from explorer.models.loaded import LoadedModel
from explorer.perturb.infill import Infill


def score_batch(model: LoadedModel, infill: Infill, x: torch.Tensor, masks: torch.Tensor,
                probs: bool = True) -> torch.Tensor:
    """Scores (B, K) of the perturbed copies ``infill.apply(x, masks)``, OOM-safe, under inference mode:
    the model's activated scores (``LoadedModel.activate``) with ``probs``, else its logits."""

    def fn(m: torch.Tensor) -> torch.Tensor:
        out = model.logits(infill.apply(x, m)).float()
        return model.activate(out) if probs else out

    with torch.inference_mode():
        return model.batch.call(fn, masks)


def batch_size(model: LoadedModel, requested: int) -> int:
    """Images per forward: the ``batch_size`` parameter when set, else the model's device policy (0)."""
    return int(requested) if requested else model.batch.size

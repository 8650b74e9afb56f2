"""Removal gain (docs/methods.md §7.6; this project's metric after Kang, Jung, Lee, ICCVW 2019).

For each map and each fraction k, the top-k pixels of the map are in-filled (default: Gaussian blur, σ = 10)
and the model is run again. Recorded, relative to the unperturbed image:

- ``delta_p_target``: ΔP_c. Removing target-hindering pixels should RAISE P_c; removing salient pixels should
  lower it.
- ``delta_p_other``: Δ max_{c' != c} P_c' (the strongest other class on each image). Removing non-target
  pixels should lower it.
- ``delta_margin``: Δ (P_c - max_{c' != c} P_c'). Removing non-target pixels should raise it.
- ``gain_vs_random``: ``delta_p_target`` minus the same quantity for removing random pixels of the same area
  (``n_random`` random sets, mean and standard deviation under ``random``).

Pixels are ranked in model-input space; ties (e.g. the zeros of a clamped map) are broken in a seeded random
order, NaN ranks last. Fractions are keyed as percentages ("1%", "10%", ...). All forwards are batched.

    r = removal_gain(model, image_rgb, {"target_hindering": m}, target)
    r["layers"]["target_hindering"]["10%"]["delta_p_target"], r["random"]["10%"]["delta_p_target"]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.core.errors import ExplorerError, ParamError
from explorer.evaluation.base import input_space
from explorer.methods.base import prepare_context
from explorer.models.loaded import LoadedModel
from explorer.perturb.infill import make_infill
from explorer.perturb.scoring import score_batch

FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2)


def fraction_key(f: float) -> str:
    return f"{100 * f:g}%"


def _top_order(m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices, highest value first; ties in a random order, NaN/-inf last."""
    flat = np.nan_to_num(m.ravel().astype(np.float64), nan=-np.inf)
    perm = rng.permutation(flat.size)
    return perm[np.argsort(-flat[perm], kind="stable")]


def _stats(probs: torch.Tensor, c: int) -> tuple[np.ndarray, np.ndarray]:
    """P_c and max_{c' != c} P_c' per row."""
    p = probs.double().cpu()
    pc = p[:, c].clone()
    p[:, c] = -1.0
    return pc.numpy(), p.amax(dim=1).numpy()


def removal_gain(model: LoadedModel, image_rgb: np.ndarray, maps: dict[str, Any], target: int | str, *,
                 fractions: tuple[float, ...] = FRACTIONS, infill: str = "blur", n_random: int = 5,
                 seed: int = 0, sigma: float = 10.0) -> dict:
    """ΔP_c (and Δ max other-class P, Δ margin) after in-filling the top-k% pixels of each map, with the
    random-removal baseline. ``maps``: name -> H×W map in input or image space (numpy or torch)."""
    if not maps:
        raise ExplorerError("removal_gain needs at least one map")
    fracs = tuple(float(f) for f in fractions)
    for f in fracs:
        if not 0 < f <= 1:
            raise ParamError(f"removal fraction {f!r} is out of range: must be in (0, 1]")
    if int(n_random) < 0:
        raise ParamError(f"n_random = {n_random!r} must be >= 0")
    ctx = prepare_context(model, image_rgb, target, seed=seed)
    c = ctx.target
    _, _, H, W = ctx.x.shape
    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"sigma": sigma, "generator": ctx.generator(offset=31337)}
    filler = make_infill(infill, ctx.x, model.preprocess, **kw)

    names = list(maps)
    masks: list[np.ndarray] = []
    for name in names:
        m = input_space(maps[name], ctx.placement)
        order = _top_order(m, rng)
        for f in fracs:
            keep = np.ones(H * W, dtype=np.float32)
            keep[order[: max(1, int(round(f * H * W)))]] = 0
            masks.append(keep.reshape(H, W))
    for f in fracs:
        for _ in range(int(n_random)):
            keep = np.ones(H * W, dtype=np.float32)
            keep[rng.choice(H * W, size=max(1, int(round(f * H * W))), replace=False)] = 0
            masks.append(keep.reshape(H, W))

    with torch.inference_mode():
        base_p = model.scores(ctx.x)
    base_c, base_o = _stats(base_p, c)
    all_masks = torch.from_numpy(np.stack(masks))[:, None].to(ctx.device)
    size = model.batch.size
    probs = torch.cat([score_batch(model, filler, ctx.x, all_masks[i:i + size], True)
                       for i in range(0, all_masks.shape[0], size)])
    pc, po = _stats(probs, c)
    dc, do = pc - base_c[0], po - base_o[0]
    dm = dc - do

    nf = len(fracs)
    off = len(names) * nf
    rand: dict[str, dict[str, float]] = {}
    for j, f in enumerate(fracs):
        sl = slice(off + j * n_random, off + (j + 1) * n_random)
        if n_random:
            rand[fraction_key(f)] = {
                "delta_p_target": float(dc[sl].mean()), "delta_p_target_std": float(dc[sl].std()),
                "delta_p_other": float(do[sl].mean()), "delta_margin": float(dm[sl].mean()),
            }
    layers: dict[str, dict[str, dict[str, float]]] = {}
    for i, name in enumerate(names):
        per: dict[str, dict[str, float]] = {}
        for j, f in enumerate(fracs):
            k = i * nf + j
            row = {"delta_p_target": float(dc[k]), "delta_p_other": float(do[k]), "delta_margin": float(dm[k])}
            if n_random:
                row["gain_vs_random"] = row["delta_p_target"] - rand[fraction_key(f)]["delta_p_target"]
            per[fraction_key(f)] = row
        layers[name] = per
    other = base_p[0].double().clone()
    other[c] = -1
    return {
        "target": c,
        "target_name": model.labels[c],
        "infill": infill,
        "fractions": list(fracs),
        "n_random": int(n_random),
        "base": {"p_target": float(base_c[0]), "p_other": float(base_o[0]), "margin": float(base_c[0] - base_o[0]),
                 "other_class": model.labels[int(other.argmax())]},
        "random": rand,
        "layers": layers,
    }

"""The rows one explanation scores in ``explorer evaluate``: every metric asked for on its headline map (one
loop over explorer.evaluation.registry), as (image, method, target, metric, quantity, value, fraction) dicts for
the per-image CSVs; the agreement rows between the methods of one photo; and the seeded random baseline map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.evaluation.config import RANDOM, EvalConfig
from explorer.evaluation.inputs import load_reference


def random_explanation(model, ctx, image_name: str, seed: int):
    """The random baseline as an Explanation (seeded by the image name and the run's seed: reproducible)."""
    import zlib

    from explorer.core.types import MethodResult
    from explorer.evaluation.base import random_map

    s = (zlib.crc32(image_name.encode()) + 7919 * int(seed)) % (2 ** 32)
    raw = {"salient": random_map(tuple(ctx.placement.input_hw), 7, s)}
    return MethodResult(method=RANDOM, raw=raw, signed={"salient": False}, placement=ctx.placement,
                       target=ctx.target, target_name=model.labels[ctx.target], params={"cells": 7}, seed=s,
                       model_id=model.id, timings={"seconds": 0.0})


def evaluate_map(model, image, ctx, method: str, exp, config: EvalConfig, boxes: dict,
                 cancel=None) -> list[dict[str, Any]]:
    """Every metric of ``config.metrics`` that applies to one explanation, as CSV rows, through the metric
    registry (in its order); ``boxes``: the pointing game's, as ``inputs.load_boxes`` read them."""
    from explorer.evaluation import registry

    name = Path(image.path).name if image.path else "(array)"
    base = {"image": name, "method": method, "target": ctx.target}
    metrics = config.metrics
    rows: list[dict[str, Any]] = []

    def add(metric: str, quantity: str, value: Any, fraction: Any = "") -> None:
        rows.append({**base, "metric": metric, "quantity": quantity, "value": value, "fraction": fraction})

    add("run", "seconds", exp.timings.get("seconds", 0.0))
    add("run", "images", exp.timings.get("images", 0))  # the forwards the method needed (benchmarks/bench_cold.py)
    add("run", "grad_images", exp.timings.get("grad_images", 0))
    add("run", "target_name", model.labels[ctx.target])
    # the random baseline names no method: the metrics that re-run one skip it (registry.applies)
    call = registry.MetricCall(model, image.rgb, exp.raw[exp.main], context=ctx,
                               method=None if method == RANDOM else method, params=dict(exp.params or {}),
                               options=config.options, maps=dict(exp.raw), image_map=exp.maps[exp.main],
                               cancel=cancel, protocol=config.protocol)
    needs = {n for m in metrics for n in registry.spec(m).needs}
    if "boxes" in needs and name in boxes:
        _region(call, boxes[name], config)
    if "reference" in needs:
        call.reference_map = load_reference(config.reference, name)
    for row in registry.compute_rows(metrics, call):
        add(*row)
    return rows


def _region(call, spec: Any, config: EvalConfig) -> None:
    """The pointing game's object: a mask image (its path relative to the boxes file) or a box."""
    if isinstance(spec, str):
        from explorer.io.images import read_image

        mpath = Path(spec) if Path(spec).is_absolute() else Path(config.boxes).parent / spec
        call.mask = read_image(mpath).rgb.max(axis=2) > 0
    else:
        call.box = tuple(int(v) for v in spec)


def agreement_rows(image_name: str, target: int, maps: dict[str, np.ndarray], k: float) -> list[dict[str, Any]]:
    from explorer.evaluation.agreement import agreement_table

    rows = []
    for (a, b), vals in agreement_table(maps, k).items():
        for q, v in vals.items():
            rows.append({"image": image_name, "method": f"{a} vs {b}", "target": target, "metric": "agreement",
                         "quantity": q, "value": v, "fraction": ""})
    return rows

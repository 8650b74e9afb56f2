"""The rows one explanation scores in ``explorer evaluate``: every metric asked for on its headline map, as
(image, method, target, metric, quantity, value, fraction) dicts for the per-image CSVs; the agreement
rows between the methods of one photo; and the seeded random baseline map."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from explorer.evaluation.config import RANDOM, REGISTRY_ONLY, RERUNS_METHOD, EvalConfig
from explorer.evaluation.inputs import load_reference
from explorer.models.engine import quiet_torch


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


def _flatten(prefix: str, obj: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(obj, (list, tuple)) and len(obj) <= 64 and all(isinstance(v, (int, float, np.number)) for v in obj):
        for i, v in enumerate(obj):
            out.append((f"{prefix}[{i}]", v))
    elif isinstance(obj, (bool, np.bool_)):
        out.append((prefix, int(obj)))
    elif isinstance(obj, (int, float, np.number, str)):
        out.append((prefix, obj))
    elif isinstance(obj, np.ndarray) and obj.size <= 64:
        _flatten(prefix, obj.tolist(), out)


def evaluate_map(model, image, ctx, method: str, exp, config: EvalConfig, boxes: dict,
                 cancel=None) -> list[dict[str, Any]]:
    """All per-(image, method) metrics of ``config.metrics`` on one explanation, as CSV rows; ``boxes``: the
    pointing game's, as ``inputs.load_boxes`` read them."""
    from explorer.evaluation import agreement
    from explorer.evaluation.metrics import sanity_check

    name = Path(image.path).name if image.path else "(array)"
    base = {"image": name, "method": method, "target": ctx.target}
    metrics, o = config.metrics, config.options
    rows: list[dict[str, Any]] = []

    def add(metric: str, quantity: str, value: Any, fraction: Any = "") -> None:
        rows.append({**base, "metric": metric, "quantity": quantity, "value": value, "fraction": fraction})

    add("run", "seconds", exp.timings.get("seconds", 0.0))
    add("run", "images", exp.timings.get("images", 0))  # the forwards the method needed (benchmarks/bench_cold.py)
    add("run", "grad_images", exp.timings.get("grad_images", 0))
    add("run", "target_name", model.labels[ctx.target])
    sal = exp.raw[exp.main]
    with quiet_torch(model):  # score-only curves: ORT's threads get the cores (explorer/models/engine.py)
        _causal_rows(model, image, ctx, sal, config, cancel, add)
    img_map = exp.maps[exp.main]
    if "pointing" in metrics and name in boxes:
        spec = boxes[name]
        if isinstance(spec, str):
            from explorer.io.images import read_image

            mpath = Path(spec) if Path(spec).is_absolute() else Path(config.boxes).parent / spec
            mask = read_image(mpath).rgb.max(axis=2) > 0
            r = agreement.pointing_game(img_map, mask=mask, tolerance=o.tolerance)
        else:
            r = agreement.pointing_game(img_map, box=tuple(int(v) for v in spec), tolerance=o.tolerance)
        add("pointing", "hit", r["hit"])
        add("pointing", "distance", r["distance"])
    if "reference" in metrics:
        ref = load_reference(config.reference, name)
        if ref is not None:
            add("reference", "pcc", agreement.pcc(img_map, ref))
            add("reference", "sim", agreement.sim(img_map, ref))
    if "sanity" in metrics and method != RANDOM:
        r = sanity_check(model, image.rgb, method, ctx.target, params=exp.params, n_stages=o.sanity_stages,
                         seed=o.seed, topk=o.topk, reference=sal, cancel=cancel)
        for st in r["stages"]:
            add("sanity", f"spearman@stage{st['stage']}", st["spearman"])
            add("sanity", f"spearman_abs@stage{st['stage']}", st["spearman_abs"])
        if r["stages"]:
            add("sanity", "spearman_final", r["stages"][-1]["spearman"])
            add("sanity", "topk_iou_final", r["stages"][-1]["topk_iou"])
    extra = [m for m in metrics if m in REGISTRY_ONLY and not (m in RERUNS_METHOD and method == RANDOM)]
    if extra:
        from explorer.evaluation import registry

        for mname in extra:
            call = registry.MetricCall(model, image.rgb, sal, context=ctx, method=method, params=dict(exp.params or {}),
                                       options=o, maps=dict(exp.raw), cancel=cancel)
            # ROAD and the flipping curves are score-only; the randomisation tests re-run the method on torch
            with quiet_torch(model) if mname not in RERUNS_METHOD else contextlib.nullcontext():
                result = registry.compute(mname, call)
            for metric, q, v, f in registry.rows(mname, result):
                add(metric, q, v, f)
    if "removal_gain" in metrics:
        from explorer.evaluation.removal_gain import removal_gain

        with quiet_torch(model):
            r = removal_gain(model, image.rgb, dict(exp.raw), ctx.target, seed=o.seed)
        flat: list[tuple[str, Any]] = []
        _flatten("", r, flat)
        for q, v in flat:
            add("removal_gain", q, v)
    return rows



def _causal_rows(model, image, ctx, sal, config: EvalConfig, cancel, add) -> None:
    """Deletion, insertion and confidence rows: the score-only curves of one map."""
    from explorer.evaluation.causal import causal_curve, protocol_step
    from explorer.evaluation.metrics import confidence

    metrics, o = config.metrics, config.options
    aucs = {}
    for mode in ("deletion", "insertion"):
        if mode not in metrics:
            continue
        sub = o.deletion_substrate if mode == "deletion" else o.insertion_substrate
        step = o.step or protocol_step(config.protocol, ctx.x.shape[-2:])
        c = causal_curve(model, image.rgb, sal, mode=mode, step=step, substrate=sub, context=ctx, cancel=cancel)
        aucs[mode] = c.auc
        add(mode, "auc", c.auc)
        add(mode, "step", c.step)
        add(mode, "protocol", config.protocol if not o.step else f"step {o.step} px")
        add(mode, "substrate", c.substrate)
        for f, s in zip(c.fractions, c.scores):
            add(mode, "score", float(s), float(f))
    if len(aucs) == 2:
        add("causal", "ins_minus_del", aucs["insertion"] - aucs["deletion"])
    if "confidence" in metrics:
        r = confidence(model, image.rgb, sal, context=ctx, substrate=o.confidence_substrate, cancel=cancel)
        add("confidence", "drop", r["drop"])
        add("confidence", "increase", r["increase"])
        add("confidence", "p_image", r["p_image"])
        add("confidence", "p_masked", r["p_masked"])
        add("confidence", "substrate", r["substrate"])


def agreement_rows(image_name: str, target: int, maps: dict[str, np.ndarray], k: float) -> list[dict[str, Any]]:
    from explorer.evaluation.agreement import agreement_table

    rows = []
    for (a, b), vals in agreement_table(maps, k).items():
        for q, v in vals.items():
            rows.append({"image": image_name, "method": f"{a} vs {b}", "target": target, "metric": "agreement",
                         "quantity": q, "value": v, "fraction": ""})
    return rows

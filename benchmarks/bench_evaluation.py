"""Deletion + insertion curves: ours (steps batched through the model's batch policy) against the reference
implementation's way (one forward per step, as the RISE authors' CausalMetric does), same model, same map.

    .venv/bin/python benchmarks/bench_evaluation.py [--step 896] [--image resources/samples/chelsea.png]

Prints a table and writes benchmarks/results/bench_evaluation.json (with cpu count and torch threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from explorer.evaluation.causal import causal_curve, fixed_gaussian_blur, rank_map
from explorer.io.images import read_image
from explorer.methods.base import prepare_context
from explorer.models import load_model


def naive(model, ctx, sal, mode, step):
    """One forward per step (batch of 1), the reference protocol's loop."""
    x = ctx.x
    _, _, H, W = x.shape
    base = torch.zeros_like(x) if mode == "deletion" else fixed_gaussian_blur(x)
    order = torch.from_numpy(rank_map(sal).ravel())
    n = H * W
    scores = []
    with torch.inference_mode():
        for i in range(int(np.ceil(n / step)) + 1):
            changed = (order < min(i * step, n)).view(1, 1, H, W).float()
            keep = 1 - changed if mode == "deletion" else changed
            scores.append(model(torch.lerp(base, x, keep)).softmax(1)[0, ctx.target].item())
    return np.array(scores)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step", type=int, default=896)
    ap.add_argument("--image", default="resources/samples/chelsea.png")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    model = load_model(device=os.environ.get("EXPLORER_DEVICE"))
    img = read_image(a.image).rgb
    ctx = prepare_context(model, img)
    sal = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    rows = []
    for mode in ("deletion", "insertion"):
        ours_t, ref_t = [], []
        for _ in range(a.repeat):
            t = time.perf_counter()
            c = causal_curve(model, img, sal, mode=mode, step=a.step, context=ctx)
            ours_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            s = naive(model, ctx, sal, mode, a.step)
            ref_t.append(time.perf_counter() - t)
        rows.append({"mode": mode, "points": len(c.scores), "ours_s": min(ours_t), "one_per_step_s": min(ref_t),
                     "max_abs_diff": float(np.abs(c.scores - s).max()), "batch": model.batch.size})
    print(f"{'mode':10s} {'points':>6s} {'ours s':>8s} {'1/step s':>9s} {'speed-up':>8s} {'max|diff|':>10s}")
    for r in rows:
        print(f"{r['mode']:10s} {r['points']:6d} {r['ours_s']:8.2f} {r['one_per_step_s']:9.2f} "
              f"{r['one_per_step_s'] / r['ours_s']:8.2f} {r['max_abs_diff']:10.2e}")
    out = {"rows": rows, "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                     "device": str(model.device), "platform": platform.platform()},
           "step": a.step, "note": "shared machine: numbers are noisy"}
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/bench_evaluation.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

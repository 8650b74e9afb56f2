"""FIDO speed on the CPU: optimisation steps per second, against the bare model's forward+backward bound.

Side by side in one process, on the default model (EfficientNet-Lite0) and the chelsea photo:

1. the bound: forward + backward (gradient w.r.t. the input) of ``samples`` images through the bare model,
   the work one FIDO step cannot avoid;
2. ours (``fido``, SSR) for a few in-fillers (blur, local mean, OpenCV Telea: CPU per mask), at the model's
   full input size and at ``scale=0.5``: seconds per step, steps/s, overhead over the bound.

There is no installable peer (the official FIDO code targets PyTorch 0.3). Steps/s of a full run (300 steps)
extrapolate linearly: the cost per step is constant. Prints a table and writes
benchmarks/results/bench_fido.json with the machine description. ``--quick``: fewer steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _machine import machine  # benchmarks/ is on sys.path when run as a script

from explorer.io.images import read_image
from explorer.methods import explain
from explorer.models import load_model


def bound(model, samples: int, hw: tuple[int, int], reps: int) -> float:
    """Seconds for one forward+backward of ``samples`` images (best of ``reps``)."""
    x = torch.randn(samples, 3, *hw)
    best = float("inf")
    for _ in range(reps + 1):  # first is a warm-up
        t0 = time.perf_counter()
        xx = x.clone().requires_grad_(True)
        model(xx)[:, 0].sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    steps = 2 if args.quick else args.steps
    model = load_model(device=args.device)
    img = read_image(ROOT / "resources" / "samples" / "chelsea.png").rgb
    H, W = model.preprocess.input_size
    rows = []
    for scale in (1.0, 0.5):
        hw = (round(H * scale), round(W * scale))
        b = bound(model, args.samples, hw, 1 if args.quick else 2)
        for infill in ("blur", "local_mean", "telea"):
            params = {"steps": steps, "samples": args.samples, "scale": scale, "infill": infill, "every": steps}
            explain("fido", model, img, params={**params, "steps": 1, "every": 1})  # warm-up
            t0 = time.perf_counter()
            exp = explain("fido", model, img, params=params, seed=0)
            sec = time.perf_counter() - t0
            per = sec / steps
            rows.append({"input": f"{hw[0]}x{hw[1]}", "infill": infill, "samples": args.samples, "steps": steps,
                         "seconds": sec, "sec_per_step": per, "steps_per_s": 1 / per,
                         "bound_sec_per_step": b, "overhead_x": per / b,
                         "full_run_300_steps_s": 300 * per, "forwards": exp.info["forwards"]})
    print(f"{'input':>8} {'infill':>11} {'s/step':>8} {'steps/s':>8} {'bound s':>8} {'x bound':>8} {'300 steps s':>11}")
    for r in rows:
        print(f"{r['input']:>8} {r['infill']:>11} {r['sec_per_step']:8.3f} {r['steps_per_s']:8.2f} "
              f"{r['bound_sec_per_step']:8.3f} {r['overhead_x']:8.2f} {r['full_run_300_steps_s']:11.1f}")
    out = {"machine": {**machine(), "loadavg_end": os.getloadavg()}, "device": str(model.device),
           "model": model.id, "quick": bool(args.quick), "rows": rows,
           "note": "bound = bare forward+backward of `samples` images at the same input size"}
    path = ROOT / "benchmarks" / "results" / "bench_fido.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Undesirable pixels against RISE at equal N: the same forwards, three layers for the price of one.

Side by side in one process, on the default model (EfficientNet-Lite0) and the chelsea photo: ``rise`` and
``undesirable`` with the same N, cells, density, in-fill and batch; the model's forward is wrapped to count
images. Reports seconds, forwards and the ratio undesirable / rise (goal: same forwards, time ratio ~1).
Prints a table and writes benchmarks/results/bench_undesirable.json with the machine description.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_fido import machine
from explorer.io.images import read_image
from explorer.methods import explain
from explorer.models import load_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    n = 64 if args.quick else args.n
    base = load_model(device=args.device)
    img = read_image(ROOT / "resources" / "samples" / "chelsea.png").rgb
    rows = []
    explain("rise", base, img, params={"n": 16})  # warm-up
    for name in ("rise", "undesirable", "rise", "undesirable"):  # interleaved, twice: the machine is shared
        seen = []

        def fwd(x, _f=base.forward, _s=seen):
            _s.append(int(x.shape[0]))
            return _f(x)

        model = dataclasses.replace(base, forward=fwd, _batch=None)
        t0 = time.perf_counter()
        exp = explain(name, model, img, params={"n": n}, seed=0)
        sec = time.perf_counter() - t0
        rows.append({"method": name, "n": n, "seconds": sec, "forwards": sum(seen) - 1,  # minus the top-1 query
                     "layers": list(exp.raw), "images_per_s": n / sec})
    best = {m: min(r["seconds"] for r in rows if r["method"] == m) for m in ("rise", "undesirable")}
    print(f"{'method':>12} {'N':>6} {'seconds':>8} {'forwards':>8} {'img/s':>7}  layers")
    for r in rows:
        print(f"{r['method']:>12} {r['n']:>6} {r['seconds']:8.2f} {r['forwards']:>8} {r['images_per_s']:7.1f}  "
              f"{', '.join(r['layers'])}")
    ratio = best["undesirable"] / best["rise"]
    print(f"undesirable / rise time (best of 2): {ratio:.2f}")
    out = {"machine": {**machine(), "loadavg_end": os.getloadavg()}, "device": str(base.device), "model": base.id,
           "quick": bool(args.quick), "rows": rows, "best_seconds": best, "time_ratio": ratio}
    path = ROOT / "benchmarks" / "results" / "bench_undesirable.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

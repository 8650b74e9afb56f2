"""Explainer network vs RISE: milliseconds per image on the CPU, on the same photo.

- ``explainer`` (uncached): one classifier forward with hooks + the head, giving the logit maps of all
  1000 classes at stride 8, then the target's and the non-target masks at the input size. This is the
  cost of a new image.
- ``explainer`` (cached class switch): another target on the same image (maps cached in the method
  instance): an upsample and a sigmoid.
- ``explainer`` all 1000 class masks upsampled to the input size (what "every class at once" costs when
  all are actually shown; normally only the shown classes are upsampled).
- explainer throughput at batch 16 (logit maps only).
- ``rise`` at N = 1000 masks (the project's default on the CPU), same image, same model.

Times are the median of ``--repeats`` runs after one warm-up. Writes benchmarks/results/bench_explainer.json
with the machine description (cpu count, torch threads, load average: the machine is shared, numbers noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.io.images import read_image  # noqa: E402
from explorer.methods import explain  # noqa: E402
from explorer.methods.base import prepare  # noqa: E402
from explorer.methods.explainer_net.method import ExplainerNet  # noqa: E402
from explorer.models import load_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_explainer.json"


from _machine import machine  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def median_ms(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "chelsea.png"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rise-repeats", type=int, default=2)
    ap.add_argument("--n", type=int, default=1000, help="RISE masks")
    args = ap.parse_args()

    model = load_model(device="cpu")
    image = read_image(args.image).rgb
    ctx = prepare(model, image, seed=0)
    method = ExplainerNet(model)
    other = model.predict(ctx.x, 2)[1].index

    def uncached():
        method._cache.clear()
        return explain(method, model, image, context=ctx)

    def switch():
        return explain(method, model, image, target=other)

    def all_masks():
        return method.masks(ctx.x, list(range(model.num_classes)))

    batch = ctx.x.expand(16, -1, -1, -1).contiguous()

    def batch16():
        with torch.inference_mode():
            return method.explainer.logit_maps(batch)

    def rise():
        return explain("rise", model, image, params={"n": args.n}, seed=0, context=ctx)

    def forward_only():
        return model.scores(ctx.x)

    rows = {}
    rows["classifier forward (reference)"] = median_ms(forward_only, args.repeats)
    rows["explainer: new image (all class logit maps + 2 masks)"] = median_ms(uncached, args.repeats)
    uncached()
    rows["explainer: other class, cached maps"] = median_ms(switch, args.repeats)
    rows["explainer: all 1000 class masks upsampled"] = median_ms(all_masks, max(2, args.repeats // 2))
    b_ms, b_times = median_ms(batch16, max(2, args.repeats // 2))
    rows["explainer: batch of 16, per image"] = (b_ms / 16, [t / 16 for t in b_times])
    rows[f"rise N={args.n}"] = median_ms(rise, args.rise_repeats)

    mach = machine()
    print(f"\nExplainer network vs RISE on {Path(args.image).name} ({model.id}, input "
          f"{model.preprocess.input_size[0]}x{model.preprocess.input_size[1]}), CPU; "
          f"{mach['cpu_count']} cpus, {mach['torch_threads']} torch threads, load {mach['loadavg_start']}")
    print(f"{'':58s}{'ms/image':>10}{'vs rise':>10}")
    rise_ms = rows[f"rise N={args.n}"][0]
    for name, (ms, _) in rows.items():
        print(f"{name:58s}{ms:>10.1f}{rise_ms / ms:>9.0f}x")
    out = {
        "machine": mach, "image": Path(args.image).name, "model": model.id,
        "checkpoint": method.checkpoint_path, "rise_n": args.n,
        "results_ms": {k: {"median": v[0], "runs": v[1]} for k, v in rows.items()},
        "speedup_new_image_vs_rise": rise_ms / rows["explainer: new image (all class logit maps + 2 masks)"][0],
        "note": "shared machine: numbers are noisy; the lead re-runs on an idle machine",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Why the start-up allocator tuning (explorer/core/allocator.py), measured: fresh processes, same forwards.

Each variant is a fresh Python process that loads the default model and times ``--images`` forwards at batch 4,
channels_last (the CPU default), from its first forward, as a user's process would run them:

- ``glibc defaults``: EXPLORER_MALLOC=default, nothing tuned;
- ``mallopt``: what explorer does (M_MMAP_THRESHOLD 256 MiB, M_TRIM_THRESHOLD 1 GiB through ctypes at start);
- ``environment``: the same thresholds given as MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ before start;
- ``warm-up``: glibc defaults, but 64 images at batch 32 first (a large block allocated and freed raises
  glibc's dynamic mmap threshold), then the timed forwards.

Variants are interleaved ``--rounds`` times (the machine is shared); the table gives each one's median img/s
and its ratio to ``mallopt``. Writes benchmarks/results/bench_allocator.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine

CHILD = r"""
import json, sys, time, torch
sys.path.insert(0, {root!r})
from explorer.models import load_model
m = load_model(device="cpu")
x = torch.randn(4, 3, 224, 224).contiguous(memory_format=torch.channels_last)
with torch.inference_mode():
    if {warm}:
        big = torch.randn(32, 3, 224, 224).contiguous(memory_format=torch.channels_last)
        for _ in range(2):
            m.module(big)
    t0 = time.perf_counter()
    for _ in range({reps}):
        m.module(x)
    dt = time.perf_counter() - t0
print(json.dumps({{"images_per_s": 4 * {reps} / dt, "allocator": m.describe()["allocator"]}}))
"""

VARIANTS = {
    "glibc defaults": ({"EXPLORER_MALLOC": "default"}, False),
    "mallopt": ({}, False),
    "environment": ({"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "1073741824"}, False),
    "warm-up": ({"EXPLORER_MALLOC": "default"}, True),
}


def once(env_extra: dict, warm: bool, images: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "EXPLORER_MALLOC"}
    env.update(env_extra)
    code = CHILD.format(root=str(ROOT), warm=warm, reps=max(1, images // 4))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_allocator.json"))
    a = ap.parse_args()
    meta = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "images": a.images}
    runs = {k: [] for k in VARIANTS}
    for r in range(a.rounds):
        for name, (env, warm) in VARIANTS.items():
            res = once(env, warm, a.images)
            runs[name].append(res)
            print(f"round {r + 1} {name:15s} {res['images_per_s']:7.1f} img/s  ({res['allocator']})", flush=True)
    med = {k: statistics.median(x["images_per_s"] for x in v) for k, v in runs.items()}
    print(f"\n{'variant':15s} {'median img/s':>12s} {'vs mallopt':>10s}")
    for k, v in med.items():
        print(f"{k:15s} {v:12.1f} {v / med['mallopt']:10.2f}")
    meta["machine"]["loadavg_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps({**meta, "runs": runs, "median_images_per_s": med}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

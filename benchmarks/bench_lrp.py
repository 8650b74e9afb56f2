"""LRP composites on the default model (issue 30): conservation Σ R / z_c and deletion/insertion AUC (RISE).

    .venv/bin/python benchmarks/bench_lrp.py [--every 12] [--protocol rise|quick] [--limit N]

For every ``--every``-th photo of ../shared/data/imagenet-sample (target = its true class), each composite's
map is computed on the embedded EfficientNet-Lite0 and scored by the deletion and insertion curves of
``explorer.evaluation.causal`` (RISE protocol: HW/224 pixels a step; ``quick``: 32 steps). Rows: zennit's
composites as they ran before issue 30 (``epsilon_plus_flat`` was the default, ``epsilon_gamma_box``), the
conserving γ composite at two γ, and ``conserving_plus`` (the γ → ∞ limit) in both forms: relevance form with
the w² fallback, which ``auto`` picks on this model, and gradient form, which runs on SE/LayerNorm/attention
networks. One thread (torch.set_num_threads(1)).
Prints a table (means ± standard error, and insertion − deletion paired against today's default) and writes
benchmarks/results/bench_lrp.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "imagenet-sample"
OUT = ROOT / "benchmarks" / "results" / "bench_lrp.json"
# row -> (composite, conserving form or None, gamma)
ROWS = {
    "epsilon_plus_flat (before)": ("epsilon_plus_flat", None, 0.25),
    "epsilon_gamma_box": ("epsilon_gamma_box", None, 0.25),
    "conserving_gamma 0.25": ("conserving_gamma", "relevance", 0.25),
    "conserving_gamma 4": ("conserving_gamma", "relevance", 4.0),
    "conserving_plus (auto)": ("conserving_plus", "relevance", 0.25),
    "conserving_plus, gradient form": ("conserving_plus", "gradient", 0.25),
}
BASELINE = "epsilon_plus_flat (before)"


def photos(every: int, limit: int | None) -> list[tuple[Path, int]]:
    files = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    chosen = [(p, 2 * i) for i, p in enumerate(files)][::every]
    return chosen[:limit] if limit else chosen


def _mse(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=12, help="every N-th photo (12: 42 photos)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many photos (a quick proof)")
    ap.add_argument("--protocol", default="rise", choices=("rise", "quick"))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from explorer.evaluation.causal import deletion_insertion, protocol_step
    from explorer.io.images import read_image
    from explorer.methods.base import prepare_context
    from explorer.methods.lrp import lrp_relevance
    from explorer.models import load_model

    model = load_model(device="cpu")
    records = []
    t_start = time.perf_counter()
    for path, target in photos(args.every, args.limit):
        rgb = read_image(path).rgb
        ctx = prepare_context(model, rgb, target, seed=0)
        step = protocol_step(args.protocol, tuple(ctx.x.shape[-2:]))
        for row, (composite, form, gamma) in ROWS.items():
            t0 = time.perf_counter()
            rel, z = lrp_relevance(model, ctx.x, ctx.target, composite, gamma=gamma, form=form)
            secs = time.perf_counter() - t0
            sal = rel[0].float().sum(0).numpy()
            cur = deletion_insertion(model, rgb, sal, ctx.target, context=ctx, step=step)
            rec = {"photo": path.name, "target": target, "row": row, "logit": z,
                   "conservation": float(rel.sum()) / z, "deletion": cur["deletion"].auc,
                   "insertion": cur["insertion"].auc, "seconds": secs}
            rec["ins_minus_del"] = rec["insertion"] - rec["deletion"]
            records.append(rec)
            print(f"{path.name[:30]:30s} {row:42s} cons {rec['conservation']:8.4f} del {rec['deletion']:.3f} "
                  f"ins {rec['insertion']:.3f}", flush=True)
    table = {}
    base = {r["photo"]: r for r in records if r["row"] == BASELINE}
    for row in ROWS:
        recs = [r for r in records if r["row"] == row]
        table[row] = {k: _mse([r[k] for r in recs]) for k in ("conservation", "deletion", "insertion",
                                                              "ins_minus_del", "seconds")}
        table[row]["in_0.8_1.2"] = sum(0.8 <= r["conservation"] <= 1.2 for r in recs) / len(recs)
        table[row]["paired_gain_vs_before"] = _mse([r["ins_minus_del"] - base[r["photo"]]["ins_minus_del"]
                                                    for r in recs])
    print(f"\n{len(base)} photos, protocol {args.protocol}, {time.perf_counter() - t_start:.0f} s")
    print(f"{'composite':42s} {'conservation':>16s} {'in [0.8,1.2]':>12s} {'deletion':>14s} {'insertion':>14s} "
          f"{'ins-del':>14s} {'vs before':>14s}")
    for row, t in table.items():
        def f(k):
            return f"{t[k][0]:.4f}±{t[k][1]:.4f}"
        print(f"{row:42s} {f('conservation'):>16s} {t['in_0.8_1.2']:>12.0%} {f('deletion'):>14s} "
              f"{f('insertion'):>14s} {f('ins_minus_del'):>14s} {f('paired_gain_vs_before'):>14s}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "protocol": args.protocol, "every": args.every,
                                    "photos": len(base), "table": table, "records": records}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

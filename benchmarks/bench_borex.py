"""BOREx paired study (issue 33): does the refinement improve low-quality maps on real photos, as the paper claims?

    python benchmarks/bench_borex.py --device cuda --workers 8            # the full study (50 photos, --every 10)
    python benchmarks/bench_borex.py --photos 0,10 --budgets 2,4 --low-n 20 --good-n 40 --protocol quick \\
        --out /tmp/borex_tiny                                              # a smoke run on the CPU
    python benchmarks/bench_borex.py --report-only                         # rebuild table, plot, JSON, docs page

Photos: ../shared/data/imagenet-sample (index = 2 · position in the sorted listing, see its README); the target
is each photo's true class. ``--every 10`` (default) takes every 10th photo: 50 photos, classes 0, 20, ..., 980.
Split (fixed before any result was seen): a photo whose position p has (p // 10) even is a *tuning* photo
(classes 0, 40, 80, ...), the others are *held out* (classes 20, 60, 100, ...). Settings were tuned on tuning
photos only; the headline table is the held-out half's.

Per photo and prior (RISE N = 100, s = 8, p = 0.3 and Grad-CAM: low quality; RISE N = 4000, s = 7, p = 0.5: a good
map), BOREx runs ``max(--budgets)`` iterations once; the refined map at each smaller budget is taken from the
same run's stream (iteration k of a longer run is exactly a k-iteration run: the probes are sequential and the
fit is deterministic). Every map is scored by insertion AUC − deletion AUC (docs/methods.md §7.1, RISE protocol:
deletion to zero, insertion from the blurred image, 224 px per step). A control, ``smoothed``, is the prior
box-averaged exactly as BOREx averages its posterior but without any probe: the part of a gain that smoothing
alone would give. Cost: model images per stage (``model.passes``).

Resumable: one JSON per photo under ``--out``/per_photo, one entry per prior, each with the settings it was run
with; a rerun computes only what is missing (or was run with other settings). ``--workers N`` spreads the photos
over N processes. Writes ``--out``/borex_study.{json,md,png} and docs/borex_study.md (unless ``--no-docs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "imagenet-sample"
OUT = ROOT / "benchmarks" / "results" / "borex_study"
DOC = ROOT / "docs" / "borex_study.md"
LOW = "rise100", "gradcam"
GOOD = "rise4000"


def prior_specs(args) -> dict[str, tuple[str, dict]]:
    return {"rise100": ("rise", {"n": args.low_n, "cells": 8, "p": 0.3}),
            "gradcam": ("gradcam", {}),
            "rise4000": ("rise", {"n": args.good_n, "cells": 7, "p": 0.5})}


def photos(data: Path) -> list[tuple[int, Path]]:
    return list(enumerate(sorted(p for p in data.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))))


def split_of(position: int) -> str:
    return "tune" if (position // 10) % 2 == 0 else "test"


def select(args) -> list[tuple[int, Path]]:
    allp = photos(Path(args.data))
    if args.photos:  # in the order given (held-out photos first, say, when the time is short)
        want: list[int] = []
        for tok in args.photos.split(","):
            tok = tok.strip()
            found = [int(tok)] if tok.isdigit() else [i for i, p in allp if p.stem == tok or p.name == tok]
            want += [i for i in found if i not in want]
        return [allp[i] for i in want if 0 <= i < len(allp)]
    chosen = allp[:: max(1, args.every)][: args.limit]
    if args.held_out_first:
        chosen = [c for c in chosen if split_of(c[0]) == "test"] + [c for c in chosen if split_of(c[0]) == "tune"]
    return chosen


def borex_params(args) -> dict:
    from explorer.core.params import parse_assignments

    return parse_assignments(v for v in str(args.borex).split(",") if v.strip())


def settings(args, prior: str) -> dict:
    method, params = prior_specs(args)[prior]
    return {"prior": [method, params], "budgets": sorted(args.budgets), "protocol": args.protocol,
            "borex": borex_params(args), "seed": 0}


# --------------------------------------------------------------------------- one photo
def score(model, rgb, ctx, sal, protocol: str) -> dict:
    from explorer.evaluation.causal import protocol_step
    from explorer.evaluation.registry import MetricCall, Options, compute

    o = Options(step=protocol_step(protocol, tuple(ctx.x.shape[-2:])))
    auc = {m: compute(m, MetricCall(model, rgb, sal, context=ctx, options=o))["auc"] for m in ("insertion", "deletion")}
    return {**auc, "ins_minus_del": auc["insertion"] - auc["deletion"]}


def study_prior(model, rgb, ctx, prior: str, args) -> dict:
    from explorer.methods import explain, run
    from explorer.methods.borex_search import smoothed

    method, params = prior_specs(args)[prior]
    images = lambda: model.passes["images"] + model.passes["grad_images"]  # noqa: E731
    t0, n0 = time.perf_counter(), images()
    prior_map = np.asarray(explain(method, model, rgb, params=params, context=ctx).raw["salient"], np.float32)
    cost = {"prior": images() - n0}
    seconds = {"prior": time.perf_counter() - t0}
    t0, n0 = time.perf_counter(), images()
    budgets = sorted(args.budgets)
    bx_params = {**borex_params(args), "prior": "given", "iterations": budgets[-1], "score_gain": "off"}
    snap = {}
    bx_ctx = dataclasses.replace(ctx, priors={"given": prior_map})
    for upd in run("borex", model, rgb, params=bx_params, context=bx_ctx):
        info = upd.explanation.info
        it = info.get("iteration")
        if it in budgets and str(it) not in snap:
            snap[str(it)] = {"map": np.asarray(upd.explanation.raw["refined"]), "gp": info["gp"],
                             "forwards": info["forwards"], "seconds": time.perf_counter() - t0}
    cost["borex"] = images() - n0
    seconds["borex"] = time.perf_counter() - t0
    # the control: the prior box-averaged as BOREx averages its posterior, without any probe
    import torch

    scales = tuple(float(s) for s in str(bx_params.get("scales", "30,45,60,75")).split(","))
    control = smoothed(torch.from_numpy(prior_map), scales).numpy()
    t0, n0 = time.perf_counter(), images()
    rec = {"prior": score(model, rgb, ctx, prior_map, args.protocol),
           "smoothed": score(model, rgb, ctx, control, args.protocol),
           "refined": {k: {**score(model, rgb, ctx, v["map"], args.protocol), "gp": v["gp"],
                           "forwards": v["forwards"], "seconds": v["seconds"]} for k, v in snap.items()}}
    cost["scoring"] = images() - n0
    seconds["scoring"] = time.perf_counter() - t0
    rec.update(cost=cost, seconds=seconds, settings=settings(args, prior))
    return rec


def record_path(out: Path, photo: Path) -> Path:
    return out / "per_photo" / f"{photo.stem}.json"


def study_photo(model, position: int, path: Path, args) -> None:
    from explorer.core.errors import ExplorerError
    from explorer.io.images import read_image
    from explorer.methods.base import prepare_context

    p = record_path(Path(args.out), path)
    rec = json.loads(p.read_text()) if p.exists() else {}
    priors = [k for k in args.priors.split(",") if k]
    todo = [k for k in priors if rec.get("priors", {}).get(k, {}).get("settings") != settings(args, k)]
    if not todo:
        return
    rgb = read_image(path).rgb
    target = 2 * position
    ctx = prepare_context(model, rgb, target, seed=0)
    top1 = model.predict(ctx.x, 1)[0].index
    rec.update(photo=path.name, position=position, target=target, top1=int(top1), split=split_of(position))
    rec.setdefault("priors", {})
    for k in todo:
        try:
            rec["priors"][k] = study_prior(model, rgb, ctx, k, args)
        except ExplorerError as exc:
            rec["priors"][k] = {"skipped": str(exc), "settings": settings(args, k)}
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, default=float))
        tmp.replace(p)
        r = rec["priors"][k]
        print(f"{path.name} {k}: " + (r.get("skipped") or f"prior {r['prior']['ins_minus_del']:+.3f} smoothed "
              f"{r['smoothed']['ins_minus_del']:+.3f} " + " ".join(
                  f"refined@{b} {v['ins_minus_del']:+.3f}" for b, v in r["refined"].items())
              + f" ({sum(r['cost'].values())} images, {sum(r['seconds'].values()):.0f} s)"), flush=True)


def worker(rank: int, args) -> None:
    import torch

    from explorer.models import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(device=args.device)
    items = select(args)
    for k, (position, path) in enumerate(items):
        if k % args.workers == rank:
            print(f"[worker {rank}] {k + 1}/{len(items)} {path.name} (class {2 * position})", flush=True)
            study_photo(model, position, path, args)


# --------------------------------------------------------------------------- the report
def paired(gains: list[float]) -> dict:
    from scipy import stats

    a = np.asarray(gains, dtype=np.float64)
    n = a.size
    if n == 0:
        return {"photos": 0}
    mean = float(a.mean())
    sem = float(a.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    t = float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    pos, neg = int((a > 0).sum()), int((a < 0).sum())
    p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else 1.0
    return {"photos": n, "mean": mean, "sem": sem, "ci95": [mean - t * sem, mean + t * sem], "better": pos,
            "worse": neg, "sign_p": p}


def collect(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "per_photo").glob("*.json"))]


def rows_of(recs: list[dict], split: str | None) -> list[dict]:
    rows = []
    use = [r for r in recs if split is None or r.get("split") == split]
    names = [k for k in (*LOW, GOOD) if any(k in r.get("priors", {}) for r in use)]
    for k in names:
        ok = [r["priors"][k] for r in use if k in r.get("priors", {}) and "skipped" not in r["priors"][k]]
        if not ok:
            continue
        budgets = sorted({b for v in ok for b in v["refined"]}, key=int)
        variants = [("smoothed", lambda v: v["smoothed"], lambda v: 0)]
        variants += [(f"BOREx {b}", lambda v, b=b: v["refined"][b], lambda v, b=b: v["refined"][b]["forwards"])
                     for b in budgets]
        for name, get, fw in variants:
            have = [v for v in ok if name == "smoothed" or name.split()[1] in v["refined"]]
            before = [v["prior"]["ins_minus_del"] for v in have]
            after = [get(v)["ins_minus_del"] for v in have]
            on_bound = sum(bool(get(v).get("gp", {}).get("on_bound")) for v in have) if name != "smoothed" else None
            rows.append({"prior": k, "refinement": name, "before": float(np.mean(before)),
                         "after": float(np.mean(after)), **paired([a - b for a, b in zip(after, before)]),
                         "prior_images": float(np.mean([v["cost"]["prior"] for v in have])),
                         "refine_images": float(np.mean([fw(v) for v in have])), "fits_on_bound": on_bound})
    return rows


def table(rows: list[dict]) -> list[str]:
    md = ["| prior | refinement | photos | prior I−D | refined I−D | gain (mean ± s.e.) | 95 % interval | better / "
          "worse | sign test p | images: prior + refinement | fits on a bound |", "|---" * 11 + "|"]
    for r in rows:
        if not r.get("photos"):
            continue
        lo, hi = r["ci95"]
        md.append(f"| {r['prior']} | {r['refinement']} | {r['photos']} | {r['before']:+.4f} | {r['after']:+.4f} | "
                  f"{r['mean']:+.4f} ± {r['sem']:.4f} | [{lo:+.4f}, {hi:+.4f}] | {r['better']} / {r['worse']} | "
                  f"{r['sign_p']:.3g} | {r['prior_images']:.0f} + {r['refine_images']:.0f} | "
                  f"{'' if r['fits_on_bound'] is None else r['fits_on_bound']} |")
    return md


def plot(path: Path, recs: list[dict], by_split: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    labels = []
    for i, (split, colour) in enumerate((("test", "tab:blue"), ("all", "tab:grey"))):
        rows = [r for r in by_split[split] if r.get("photos")]
        ys = np.arange(len(rows))
        for y, r in zip(ys, rows):
            lo, hi = r["ci95"]
            ax.errorbar(r["mean"], y + 0.2 * i, xerr=[[r["mean"] - lo], [hi - r["mean"]]], fmt="o", color=colour,
                        capsize=3, label=("held-out half" if split == "test" else "all photos") if y == 0 else None)
        labels = [f"{r['prior']} · {r['refinement']}" for r in rows] or labels
    ax.set_yticks(np.arange(len(labels)) + 0.1)
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("paired gain in insertion − deletion (mean, 95 % interval)")
    ax.legend(loc="lower right")
    ax = axes[1]
    budget = None
    for k, colour in zip((*LOW, GOOD), ("tab:red", "tab:orange", "tab:green")):
        pts = []
        for r in recs:
            v = r.get("priors", {}).get(k)
            if r.get("split") == "test" and v and "skipped" not in v:
                budget = max(v["refined"], key=int)
                pts.append((v["prior"]["ins_minus_del"], v["refined"][budget]["ins_minus_del"]))
        if pts:
            a = np.array(pts)
            ax.scatter(a[:, 0], a[:, 1], s=18, color=colour, label=k)
    lim = min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot(lim, lim, color="black", lw=0.8)
    ax.set_xlabel("prior: insertion − deletion")
    ax.set_ylabel(f"refined ({budget} iterations): insertion − deletion")
    ax.set_title("held-out photos: above the diagonal = refinement helped")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(args) -> dict:
    out = Path(args.out)
    recs = collect(out)
    by_split = {"test": rows_of(recs, "test"), "tune": rows_of(recs, "tune"), "all": rows_of(recs, None)}
    n = {s: sum(1 for r in recs if s == "all" or r.get("split") == s) for s in ("test", "tune", "all")}
    st = next((v["settings"] for r in recs for v in r.get("priors", {}).values() if "settings" in v), {})
    head = (f"BOREx on ImageNet photos (EfficientNet-Lite0, target = true class; insertion − deletion AUC, "
            f"{st.get('protocol', '?')} protocol; BOREx settings {st.get('borex') or 'defaults'}). Gain = refined − "
            "prior, per photo; better / worse: photos with a positive / negative gain; sign test: two-sided "
            "binomial on those counts; images: model forwards per photo.")
    md = [head, ""]
    for s, title in (("test", "Held-out half"), ("tune", "Tuning half"), ("all", "All photos")):
        md += [f"**{title}** ({n[s]} photos)", "", *table(by_split[s]), ""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "borex_study.md").write_text("\n".join(md))
    if recs:
        plot(out / "borex_study.png", recs, by_split)
    result = {"photos": n, "rows": by_split, "settings": st, "machine": machine(), "command": " ".join(sys.argv)}
    (out / "borex_study.json").write_text(json.dumps(result, indent=1, default=float))
    if not args.no_docs:
        write_doc(md, out)
    print("\n".join(md))
    return result


def write_doc(md: list[str], out: Path) -> None:
    png = out / "borex_study.png"
    rel = Path("..") / png.relative_to(ROOT) if png.is_relative_to(ROOT) else png
    intro = DOC.read_text().split("<!-- table -->")[0] if DOC.exists() else "# BOREx study\n\n"
    DOC.write_text(intro + "<!-- table -->\n\n" + "\n".join(md) + f"\n![BOREx study]({rel.as_posix()})\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--every", type=int, default=10, help="every K-th photo of the sorted folder (default 10: 50)")
    ap.add_argument("--limit", type=int, default=None, help="at most N photos of the selection")
    ap.add_argument("--photos", default="", help="positions in the sorted folder or file stems, comma-separated")
    ap.add_argument("--held-out-first", action="store_true",
                    help="compute the held-out photos before the tuning photos (the table needs them first)")
    ap.add_argument("--priors", default=",".join((*LOW, GOOD)))
    ap.add_argument("--budgets", default="25,100", type=lambda s: [int(v) for v in s.split(",")],
                    help="iteration counts (one run of the largest; the others are snapshots of it)")
    ap.add_argument("--low-n", type=int, default=100, help="masks of the low-quality RISE prior")
    ap.add_argument("--good-n", type=int, default=4000, help="masks of the good RISE prior")
    ap.add_argument("--protocol", default="rise", choices=("rise", "quick"), help="deletion/insertion step")
    ap.add_argument("--borex", default="", help="BOREx parameters, e.g. 'kappa=5,nu=2.5' (default: its defaults)")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: explorer's choice)")
    ap.add_argument("--workers", type=int, default=1, help="photos in parallel processes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/borex_study.md")
    args = ap.parse_args()
    if not args.report_only:
        if args.workers <= 1:
            worker(0, args)
        else:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")  # CUDA cannot be forked
            procs = [ctx.Process(target=worker, args=(r, args)) for r in range(args.workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            bad = [p.exitcode for p in procs if p.exitcode]
            if bad:
                print(f"{len(bad)} worker(s) failed (exit codes {bad}); the report covers what was written")
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

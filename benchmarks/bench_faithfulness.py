"""Faithfulness study over real ImageNet photos (issue 19, part 1): deletion and insertion AUC (RISE protocol)
of every method that has a salient map, with baselines; removal gain of the target-hindering and non-target
layers; and FIDO's in-filling claim.

    .venv/bin/python benchmarks/bench_faithfulness.py                       # the full study: 500 photos, hours on a CPU
    .venv/bin/python benchmarks/bench_faithfulness.py --limit 10 --methods gradient,gradcam,random,centre
    .venv/bin/python benchmarks/bench_faithfulness.py --every 20 --no-fido          # 25 photos spread over the classes
    .venv/bin/python benchmarks/bench_faithfulness.py --report-only         # rebuild table, plot and JSON
    .venv/bin/python benchmarks/bench_faithfulness.py --held-out --methods random --no-removal-gain \
        --fido-steps 100 --out benchmarks/results/faithfulness_infill     # FIDO's in-fillers, held-out photos

Photos: ../shared/data/imagenet-sample (index = 2 · position in the sorted listing, its README); the target
is each photo's true class. Protocol (docs/methods.md §7.1, RISE §4.1): deletion substrate zero in normalised
space, insertion substrate the image blurred (kernel 11, σ = 5), 224 pixels per step, trapezoid AUC.
Rows besides the methods (every one at its defaults; ``rise_paper`` is RISE at the paper's N = 4000,
s = 7, p = 0.5):

- ``random``: a seeded random 7×7 grid, upsampled (the distance from it is what a method earns);
- ``centre``: a centred Gaussian (σ = a quarter of the side), model-free: the photographer's bias;
- ``inverted_rise``: −1 × the ``rise_paper`` map, the oracle-free sanity row: it must come out *worse*
  than random on both curves, whatever the model, or the protocol itself is broken.

Resumable: one JSON per (photo, row) under ``--out``/per_photo; rerunning computes only what is missing.
Writes ``--out``/faithfulness.json, faithfulness.md (the table, with its photo count) and faithfulness.png;
docs/faithfulness_study.md quotes those tables and links the plot (the README did until issue 32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "imagenet-sample"
OUT = ROOT / "benchmarks" / "results" / "faithfulness"
PAPER = {  # RISE paper, Table 2 (ResNet50, ImageNet val): deletion, insertion
    "rise": (0.1076, 0.7267), "gradcam": (0.1232, 0.6766), "occlusion": (0.1421, 0.6618), "lime": (0.1217, 0.6940)}
SKIP = {"attention_rollout", "chefer"}  # transformer-only: the default model is a CNN
BASELINES = ("random", "centre", "inverted_rise")
# telea: OpenCV's in-painting; learned: the project's in-painter (explorer train-inpainter). exemplar (OpenCV
# contrib's shift-map) is offered by --fido-infills but not run by default: on FIDO's fine Bernoulli masks one
# 224x224 fill took 95 s (21 s at 10 % drop; 17 s at FIDO's scale 0.5) on the loaded 2-core machine, and a FIDO
# run pays it samples x steps (2400) times per objective.
FIDO_INFILLS = ("blur", "zero", "noise", "telea", "learned")
FILL_HOLES = 4  # FIDO-style random holes per photo for the confidence figure
MAPLESS = ("removal_gain", "fido_infills")  # per-photo records without a salient map of their own
FIDO_DEFAULT_STEPS = 300  # FIDO's own default (methods/counterfactual.py)
FIDO_FIGURES = ("ssr_area", "ssr_insertion", "sdr_area", "sdr_deletion", "fill_ptrue")
GRID = np.linspace(0.0, 1.0, 101)
PAIRS = (("rise_paper", "lime"), ("lime", "gradcam"), ("gradcam", "occlusion"), ("rise_paper", "occlusion"),
         ("rise_paper", "rise"), ("centre", "gradcam"), ("integrated_gradients", "rise_paper"))


def photos(data: Path) -> list[tuple[Path, int]]:
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    return [(p, 2 * i) for i, p in enumerate(files)]


def salient_methods() -> list[str]:
    from explorer.methods import method_names

    return [m for m in method_names() if m not in SKIP and m not in ("fido", "borex")] + ["rise_paper"]


def run_map(model, rgb, ctx, name: str, layer: str = "salient") -> tuple[np.ndarray | None, float]:
    from explorer.methods import run

    method, params = ("rise", {"n": 4000, "cells": 7, "p": 0.5}) if name == "rise_paper" else (name, {})
    t0 = time.perf_counter()
    last = None
    for upd in run(method, model, rgb, params=params, context=ctx):
        last = upd.explanation
    return (last.raw.get(layer) if last is not None else None), time.perf_counter() - t0


def centre_map(hw) -> np.ndarray:
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    s = min(hw) / 4
    return np.exp(-(((yy - hw[0] / 2) ** 2 + (xx - hw[1] / 2) ** 2) / (2 * s * s))).astype(np.float32)


def curves(model, rgb, ctx, sal) -> dict:
    from explorer.evaluation import registry

    out = {}
    for mode in ("deletion", "insertion"):
        r = registry.compute(mode, registry.MetricCall(model, rgb, sal, context=ctx))
        out[mode] = {"auc": r["auc"], "substrate": r["substrate"], "step": r["step"],
                     "curve": np.interp(GRID, r["curve"]["fractions"], r["curve"]["scores"]).round(5).tolist()}
    return out


def study_photo(model, path: Path, target: int, rows: list[str], out: Path, args) -> None:
    from explorer.core.errors import ExplorerError
    from explorer.evaluation.base import random_map
    from explorer.io.images import read_image
    from explorer.methods.base import prepare_context

    todo = [r for r in rows if not _complete(_record(out, path, r), r, args)]
    if not todo:
        return
    rgb = read_image(path).rgb
    ctx = prepare_context(model, rgb, target, seed=0)
    top1 = model.predict(ctx.x, 1)[0].index
    hw = tuple(ctx.placement.input_hw)
    cache: dict[str, np.ndarray] = {}
    for row in todo:
        rec = {"photo": path.name, "row": row, "target": target, "top1": int(top1), "top1_is_target": top1 == target}
        try:
            if row == "random":
                sal, secs = random_map(hw, 7, seed=target), 0.0
            elif row == "centre":
                sal, secs = centre_map(hw), 0.0
            elif row == "inverted_rise":
                base = cache.get("rise_paper")
                if base is None:
                    base, _ = run_map(model, rgb, ctx, "rise_paper")
                sal, secs = -np.asarray(base), 0.0
            elif row == "removal_gain":
                rec.update(removal_gain_photo(model, rgb, ctx))
                sal, secs = None, 0.0
            elif row == "fido_infills":
                rec.update(fido_photo(model, rgb, ctx, args, _fido_done(_record(out, path, row), args)))
                sal, secs = None, 0.0
            else:
                sal, secs = run_map(model, rgb, ctx, row)
                if sal is None:
                    rec["skipped"] = "no salient layer"
                else:
                    cache[row] = sal
            if sal is not None:
                rec.update(curves(model, rgb, ctx, sal))
            rec["seconds"] = secs
        except ExplorerError as exc:
            rec["skipped"] = str(exc)
        p = _record(out, path, row)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        tmp.replace(p)
        print(f"{path.name} {row}: " + (rec.get("skipped") or " ".join(
            f"{k} {rec[k]['auc']:.3f}" for k in ("deletion", "insertion") if k in rec) or "done"), flush=True)


def _record(out: Path, photo: Path, row: str) -> Path:
    return out / "per_photo" / f"{photo.stem}__{row}.json"


def _fido_done(path: Path, args) -> dict:
    """The in-fillers a photo's earlier FIDO record already holds at the same step budget (kept, not rerun)."""
    if not path.exists():
        return {}
    rec = json.loads(path.read_text())
    if rec.get("fido_steps", FIDO_DEFAULT_STEPS) != (args.fido_steps or FIDO_DEFAULT_STEPS):
        return {}
    return {k: v for k, v in rec.get("fido", {}).items()
            if all(o in v and "skipped" not in v[o] for o in ("ssr", "sdr"))}


def _complete(path: Path, row: str, args) -> bool:
    if not path.exists():
        return False
    if row != "fido_infills":
        return True
    return set(args.fido_infills.split(",")) <= set(_fido_done(path, args))


def removal_gain_photo(model, rgb, ctx) -> dict:
    """ΔP after in-filling the top pixels of undesirable's target_hindering / non_target and FIDO's
    target_hindering (objective 'hindering'), against random pixels of the same area."""
    from explorer.evaluation.removal_gain import removal_gain
    from explorer.methods import run

    maps = {}
    for name, params, layers in (("undesirable", {}, ("target_hindering", "non_target")),
                                 ("fido", {"objective": "hindering"}, ("target_hindering",))):
        last = None
        for upd in run(name, model, rgb, params=params, context=ctx):
            last = upd.explanation
        for layer in layers:
            if layer in last.raw:
                maps[f"{name}.{layer}"] = last.raw[layer]
    r = removal_gain(model, rgb, maps, ctx.target)
    return {"removal_gain": {"base": r["base"], "random": r["random"], "layers": r["layers"]}}


def fill_confidence(model, ctx, infill: str, args) -> float:
    """The true class's probability, averaged over ``FILL_HOLES`` FIDO-style random holes (the same holes for
    every in-filler, seeded by the target) in-filled by ``infill``: a plausible in-fill keeps the class."""
    import torch

    from explorer.methods.inpainting.masks import hole_batch
    from explorer.perturb.infill import make_infill

    x = ctx.x
    holes = hole_batch(FILL_HOLES, x.shape[-1], torch.Generator().manual_seed(ctx.target)).to(x.device)
    kw = {"path": args.inpainter} if infill == "learned" and args.inpainter else {}
    fill = make_infill(infill, x, model.preprocess, generator=torch.Generator().manual_seed(ctx.target), **kw)
    with torch.no_grad():
        return float(model(fill.apply(x, 1 - holes)).float().softmax(1)[:, ctx.target].mean())


def fido_photo(model, rgb, ctx, args, done: dict | None = None) -> dict:
    """FIDO's claim: per in-filler, compactness (mean keep / drop probability: the fraction of the image
    the region takes), faithfulness (insertion AUC of the SSR keep map, deletion AUC of the SDR drop map,
    both on the common RISE substrates so in-fillers are compared on equal terms) and the classifier's
    confidence on images in-filled by it (``fill_confidence``)."""
    from explorer.core.errors import ExplorerError
    from explorer.methods import run

    out = dict(done or {})
    for infill in args.fido_infills.split(","):
        if infill in out:
            continue
        rec: dict = {}
        extra = {"inpainter": args.inpainter} if infill == "learned" and args.inpainter else {}
        try:
            rec["fill"] = {"ptrue": fill_confidence(model, ctx, infill, args)}
        except ExplorerError as exc:
            rec["fill"] = {"skipped": str(exc)}
        for objective, layer in (("ssr", "ssr_keep"), ("sdr", "sdr_drop")):
            last = None
            try:
                for upd in run("fido", model, rgb, params={"objective": objective, "infill": infill, **extra,
                                                          **({"steps": args.fido_steps} if args.fido_steps else {})},
                               context=ctx):
                    last = upd.explanation
            except ExplorerError as exc:
                rec[objective] = {"skipped": str(exc)}
                continue
            m = np.asarray(last.raw[layer], dtype=np.float64)
            c = curves(model, rgb, ctx, m)
            key = "insertion" if objective == "ssr" else "deletion"
            rec[objective] = {"area": float(np.clip(m, 0, 1).mean()), key: c[key]["auc"]}
        out[infill] = rec
    return {"fido": out, "fido_steps": args.fido_steps or FIDO_DEFAULT_STEPS}


# --------------------------------------------------------------------------- report
def collect(out: Path, common: bool = False) -> dict:
    """The per-photo records, gathered per row. ``common``: the map rows only on the photos every map row has
    (a run stopped mid-photo, or a row added later, would otherwise average each row over other photos)."""
    recs = [json.loads(p.read_text()) for p in sorted((out / "per_photo").glob("*.json"))]
    by_row: dict[str, set] = {}
    for r in recs:
        if not r.get("skipped") and r["row"] not in MAPLESS:
            by_row.setdefault(r["row"], set()).add(r["photo"])
    keep = set.intersection(*by_row.values()) if common and by_row else None
    table, curves_, rg, fido = {}, {}, [], []
    for r in recs:
        if r.get("skipped"):
            continue
        if keep is not None and r["row"] not in MAPLESS and r["photo"] not in keep:
            continue
        if r["row"] == "removal_gain":
            rg.append(r["removal_gain"])
            continue
        if r["row"] == "fido_infills":
            fido.append(dict(r["fido"], _steps=r.get("fido_steps", FIDO_DEFAULT_STEPS)))
            continue
        t = table.setdefault(r["row"], {"deletion": [], "insertion": [], "seconds": [], "photos": set(), "gap": {}})
        t["photos"].add(r["photo"])
        t["gap"][r["photo"]] = r["insertion"]["auc"] - r["deletion"]["auc"]
        t["seconds"].append(r.get("seconds", 0.0))
        for mode in ("deletion", "insertion"):
            t[mode].append(r[mode]["auc"])
            curves_.setdefault(r["row"], {}).setdefault(mode, []).append(r[mode]["curve"])
    return {"table": table, "curves": curves_, "removal_gain": rg, "fido": fido}


def _ms(v) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0


def report(out: Path, args) -> dict:
    from explorer.evaluation.report import plot_curves

    c = collect(out, common=True)
    rows = []
    for row, t in c["table"].items():
        (d, ds), (i, is_) = _ms(t["deletion"]), _ms(t["insertion"])
        rows.append({"row": row, "photos": len(t["photos"]), "deletion": d, "deletion_sem": ds, "insertion": i,
                     "insertion_sem": is_, "seconds": float(np.mean(t["seconds"])),
                     "paper": PAPER.get("rise" if row == "rise_paper" else row)})
    rows.sort(key=lambda r: r["insertion"] - r["deletion"], reverse=True)
    n = max([r["photos"] for r in rows] + [0])
    rnd = next((r for r in rows if r["row"] == "random"), None)
    md = [f"Faithfulness on {n} ImageNet photos (of 500; target = true class; EfficientNet-Lite0; RISE protocol: "
          "deletion to zero, insertion from blur 11/σ5, 224 px per step). Mean ± standard error over photos.", "",
          "| row | photos | deletion AUC ↓ | insertion AUC ↑ | ins − del | vs random (del / ins) | s / photo | RISE "
          "paper (del / ins) |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = f"{r['deletion'] - rnd['deletion']:+.3f} / {r['insertion'] - rnd['insertion']:+.3f}" if rnd else ""
        paper = f"{r['paper'][0]:.4f} / {r['paper'][1]:.4f}" if r["paper"] else ""
        md.append(f"| {r['row']} | {r['photos']} | {r['deletion']:.4f} ± {r['deletion_sem']:.3f} | "
                  f"{r['insertion']:.4f} ± {r['insertion_sem']:.3f} | {r['insertion'] - r['deletion']:+.4f} | {vs} | "
                  f"{r['seconds']:.2f} | {paper} |")
    pairs = paired_gaps(c["table"])
    if pairs:
        md += ["", "Paired differences of ins − del (per photo, on the photos both rows have; mean ± standard error): "
               "the paper's order is RISE > LIME > Grad-CAM > sliding window.", "",
               "| rows | photos | difference |", "|---|---|---|"]
        md += [f"| {p['a']} − {p['b']} | {p['photos']} | {p['mean']:+.4f} ± {p['sem']:.4f} |" for p in pairs]
    rg = summarise_removal_gain(c["removal_gain"])
    fido = summarise_fido(c["fido"])
    if rg:
        md += ["", f"Removal gain over {rg['photos']} photos (changes after blurring the layer's top 10 % of pixels; "
               "random: the same area at random; target_hindering should raise ΔP_target, non_target should lower "
               "ΔP_other and raise Δmargin):", "",
               "| layer | ΔP_target | ΔP_other | Δmargin | ΔP_target vs random | Δmargin vs random |",
               "|---|---|---|---|---|---|"]
        md += [f"| {k} | {v['delta_p_target']:+.4f} | {v['delta_p_other']:+.4f} | {v['delta_margin']:+.4f} | "
               f"{v['gain_vs_random']:+.4f} | {v['margin_vs_random']:+.4f} |" for k, v in rg["layers"].items()]
        ra = rg["random_all"]
        md.append(f"| random | {ra['delta_p_target']:+.4f} | {ra['delta_p_other']:+.4f} | {ra['delta_margin']:+.4f} "
                  "| | |")
    if fido:
        md += ["", f"FIDO in-fillers over {fido['photos']} photos ({'/'.join(map(str, fido['steps']))} optimisation "
               "steps; area: mean keep/drop probability, smaller is more compact; SSR insertion AUC ↑, SDR deletion "
               "AUC ↓):", "",
               "| in-fill | SSR area | SSR insertion | SDR area | SDR deletion | P(true) in-filled ↑ |",
               "|---|---|---|---|---|---|"]
        md += [f"| {k} | " + " | ".join(_pm(fido, k, q) for q in FIDO_FIGURES) + " |" for k in fido["infills"]]
        ref = fido["reference"]
        md += ["", f"Paired differences from {ref} (per photo, on the photos both in-fillers have; mean ± standard "
               "error; compact and faithful: negative area, positive insertion, negative deletion; plausible: positive "
               f"P(true) on {FILL_HOLES} random FIDO-style holes in-filled):", "",
               "| in-fill | photos | SSR area | SSR insertion | SDR area | SDR deletion | P(true) in-filled |",
               "|---|---|---|---|---|---|---|"]
        # the generative in-fillers also against telea, the best classical one on compactness (FIDO's claim is
        # that generative in-fill beats every classical in-fill, not only blur)
        vs_telea = summarise_fido(c["fido"], reference="telea").get("vs_reference", {})
        rows_ = [(k, ref, per) for k, per in fido["vs_reference"].items()]
        rows_ += [(k, "telea", vs_telea[k]) for k in ("exemplar", "learned") if k in vs_telea]
        for k, against, per in rows_:
            cells = [f"{per[q]['mean']:+.4f} ± {per[q]['sem']:.4f}" if q in per else "" for q in FIDO_FIGURES]
            md.append(f"| {k} − {against} | {max(v['photos'] for v in per.values())} | " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "faithfulness.md").write_text("\n".join(md) + "\n")
    mean_curves = {row: {m: np.mean(v, axis=0) for m, v in cv.items()} for row, cv in c["curves"].items()}
    counts = {row: {m: len(v) for m, v in cv.items()} for row, cv in c["curves"].items()}
    if mean_curves:
        plot_curves(out / "faithfulness.png", mean_curves, counts, size=(1400, 560))
    result = {"photos": n, "rows": rows, "paired": pairs, "removal_gain": rg, "fido": fido, "machine": machine(),
              "command": " ".join(sys.argv)}
    (out / "faithfulness.json").write_text(json.dumps(result, indent=1))
    print("\n".join(md))
    return result


def _pm(fido: dict, infill: str, q: str) -> str:
    v = fido["infills"][infill].get(q)
    return "" if v is None else f"{v:.4f} ± {fido['sem'][infill][q]:.4f}"


def paired_gaps(table: dict) -> list[dict]:
    """ins − del of row a minus that of row b, photo by photo (``PAIRS``): a photo's difficulty moves every row
    alike, so the paired error is far smaller than the rows' own standard errors suggest."""
    out = []
    for a, b in PAIRS:
        if a not in table or b not in table:
            continue
        common = sorted(set(table[a]["gap"]) & set(table[b]["gap"]))
        if len(common) < 2:
            continue
        mean, sem = _ms([table[a]["gap"][p] - table[b]["gap"][p] for p in common])
        out.append({"a": a, "b": b, "photos": len(common), "mean": mean, "sem": sem})
    return out


def summarise_removal_gain(recs: list[dict], key: str = "10%") -> dict:
    if not recs:
        return {}
    layers: dict[str, dict[str, list]] = {}
    for r in recs:
        for name, per in r["layers"].items():
            for q in ("delta_p_target", "delta_p_other", "delta_margin", "gain_vs_random"):
                layers.setdefault(name, {}).setdefault(q, []).append(per[key][q])
            # the margin's gain: what removing non-target pixels should raise (docs/methods.md §7.6)
            layers[name].setdefault("margin_vs_random", []).append(per[key]["delta_margin"]
                                                                   - r["random"][key]["delta_margin"])
    rand = {q: float(np.mean([r["random"][key][q] for r in recs]))
            for q in ("delta_p_target", "delta_p_other", "delta_margin")}
    return {"photos": len(recs), "fraction": key,
            "layers": {k: {q: float(np.mean(v)) for q, v in d.items()} for k, d in layers.items()},
            "random": rand["delta_p_target"], "random_all": rand}


def summarise_fido(recs: list[dict], reference: str = "blur") -> dict:
    """Per in-filler: the mean of each figure, its standard error over photos, and its paired difference from
    the ``reference`` in-filler on the photos both have (as in the maps' paired table)."""
    if not recs:
        return {}
    acc: dict[str, dict[str, list]] = {}
    diff: dict[str, dict[str, list]] = {}
    steps = sorted({r["_steps"] for r in recs})
    for r in recs:
        figures = {infill: {f: rec[f.split("_")[0]][f.split("_")[1]] for f in FIDO_FIGURES
                            if f.split("_")[1] in rec.get(f.split("_")[0], {})}
                   for infill, rec in r.items() if infill != "_steps"}
        for infill, fig in figures.items():
            for q, v in fig.items():
                acc.setdefault(infill, {}).setdefault(q, []).append(v)
                if infill != reference and q in figures.get(reference, {}):
                    diff.setdefault(infill, {}).setdefault(q, []).append(v - figures[reference][q])
    stats = {k: {q: _ms(v) for q, v in d.items()} for k, d in acc.items()}
    return {"photos": len(recs), "steps": steps, "reference": reference,
            "infills": {k: {q: m for q, (m, _) in d.items()} for k, d in stats.items()},
            "sem": {k: {q: e for q, (_, e) in d.items()} for k, d in stats.items()},
            "vs_reference": {k: {q: dict(zip(("photos", "mean", "sem"), (len(v), *_ms(v)))) for q, v in d.items()}
                             for k, d in diff.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=None, help="first N photos (sorted)")
    ap.add_argument("--offset", type=int, default=0,
                    help="skip the first N photos of the subset (a second process on another part of it)")
    ap.add_argument("--every", type=int, default=1,
                    help="every K-th photo of the sorted folder (a subset spread over the classes; resumes into --out)")
    ap.add_argument("--methods", default=None, help="rows to compute (default: every method with a salient map, "
                                                    "rise_paper and the baselines)")
    ap.add_argument("--no-removal-gain", action="store_true")
    ap.add_argument("--no-fido", action="store_true")
    ap.add_argument("--fido-infills", default=",".join(FIDO_INFILLS))
    ap.add_argument("--fido-steps", type=int, default=None, help="FIDO optimisation steps (default: FIDO's)")
    ap.add_argument("--inpainter", default=None, help="in-painter for infill=learned (default: the shipped one)")
    ap.add_argument("--held-out", action="store_true",
                    help="only the photos the in-painter and explainer never trained on (every 5th of the sorted "
                         "folder, positions 4, 9, ...: their --hold-out-every 5 split); --every/--offset/--limit "
                         "then apply to those")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.report_only:
        from explorer.models import load_model

        rows = args.methods.split(",") if args.methods else salient_methods() + list(BASELINES)
        rows += [] if args.no_removal_gain else ["removal_gain"]
        rows += [] if args.no_fido else ["fido_infills"]
        model = load_model(device=args.device)
        items = photos(Path(args.data))
        if args.held_out:
            items = [it for i, it in enumerate(items) if i % 5 == 4]
        items = items[:: max(1, args.every)][args.offset:][: args.limit]
        for k, (path, target) in enumerate(items):
            print(f"[{k + 1}/{len(items)}] {path.name} (class {target})", flush=True)
            study_photo(model, path, target, rows, out, args)
    report(out, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Explainer network vs Grad-CAM, RISE and the first demonstration checkpoint, on photos it never trained on.

The photos are the held-out part of ../shared/data/imagenet-sample that the checkpoint records
(``meta.trained_on.held_out``: every 5th photo of the sorted folder for the shipped checkpoint); a photo's
class is ``2 * its position in the sorted folder`` (the folder's README).

- class-specificity: composites A | B of two held-out photos, each as the model sees it (224x224), side by
  side (one 224x448 input); the target is the class of one half; the figure is the share of the map's
  positive mass (sum of max(map, 0)) inside the target's half, mean over composites and both halves.
- insertion − deletion: AUCs of explorer.evaluation's deletion (zero substrate) and insertion (blur
  substrate) curves of the softmax of the classifier's top-1 class on single held-out photos.
- time per image: each method's map on a new 224x224 photo (the explainer uncached: one classifier forward
  and the head; Grad-CAM: a forward and a backward; RISE: N masked forwards), median over the photos.

Every method gets the same inputs and targets. RISE is expensive (N forwards per map, per target), so
``--rise-composites`` / ``--rise-photos`` can run it on the first few only: the table says on how many.
Writes benchmarks/results/bench_explainer.json with the machine description; docs/explainer.md quotes its
figures (the README did until issue 32).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _machine import machine  # benchmarks/ is on sys.path when run as a script

from explorer.core.types import Placement
from explorer.evaluation.causal import deletion_insertion
from explorer.io.images import read_image
from explorer.methods.base import Context, get_method, prepare_context
from explorer.methods.explainer_net.method import ExplainerNet, shipped_checkpoint
from explorer.methods.explainer_net.model import read_checkpoint
from explorer.models import load_model

RESULTS = ROOT / "benchmarks" / "results" / "bench_explainer.json"
SHARED = ROOT.parent / "shared" / "data" / "imagenet-sample"


def held_out_photos(folder: Path, checkpoint: Path) -> list[tuple[Path, int]]:
    """(path, ImageNet class) of the photos the checkpoint did not train on."""
    listing = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    cls = {p.name: 2 * i for i, p in enumerate(listing)}
    held = (read_checkpoint(checkpoint).get("meta") or {}).get("trained_on", {}).get("held_out")
    if not held:
        raise SystemExit(f"{checkpoint} records no held-out photos: train it with --hold-out-every")
    missing = [n for n in held if n not in cls]
    if missing:
        raise SystemExit(f"{folder} lacks held-out photo(s) {', '.join(missing[:3])}")
    return [(folder / n, cls[n]) for n in held]


def untrained_checkpoint(model, trained: Path) -> Path:
    """A checkpoint of a freshly initialised head (seed 0) with the trained one's taps and width."""
    import tempfile

    from explorer.methods.explainer_net.heads import HEADS
    from explorer.methods.explainer_net.model import Explainer

    ckpt = read_checkpoint(trained)
    kind = HEADS[int(ckpt["version"])].kind
    fresh = Explainer.new(model, taps=ckpt["taps"], width=int(ckpt["width"]), seed=0, kind=kind)
    return fresh.save(Path(tempfile.mkdtemp(prefix="explainer-untrained-")) / "untrained.pt")


def final_map(method, ctx: Context) -> np.ndarray:
    """The method's last 'salient' map for ``ctx`` (input space, float64)."""
    last = None
    for step in method.steps(ctx):
        last = step
    m = last.maps["salient"]
    m = m.detach().float().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    return m.astype(np.float64)


def context(model, x: torch.Tensor, rgb: np.ndarray, target: int) -> Context:
    hw = tuple(x.shape[-2:])
    return Context(model, x, rgb, rgb, Placement.whole(hw, hw), int(target), 0)


def share_in(m: np.ndarray, half: int) -> float:
    pos = np.maximum(m, 0.0)
    total = pos.sum()
    if total <= 0:
        return 0.5  # an all-zero map says nothing about either half
    w = m.shape[1] // 2
    part = pos[:, :w] if half == 0 else pos[:, w:]
    return float(part.sum() / total)


def summarise(rows: dict, rise_name: str) -> dict:
    rise_ms = statistics.median(rows[rise_name]["ms"]) if rows[rise_name]["ms"] else float("nan")
    summary = {}
    for name, r in rows.items():
        ms = statistics.median(r["ms"]) if r["ms"] else float("nan")
        summary[name] = {
            "class_specificity": float(np.mean(r["shares"])) if r["shares"] else None,
            "composite_targets": len(r["shares"]),
            "insertion_minus_deletion": float(np.mean(r["ins_minus_del"])) if r["ins_minus_del"] else None,
            "insertion": float(np.mean(r["insertion"])) if r["insertion"] else None,
            "deletion": float(np.mean(r["deletion"])) if r["deletion"] else None,
            "photos": len(r["ins_minus_del"]),
            "ms_per_image": ms, "speedup_vs_rise": rise_ms / ms if r["ms"] else None,
        }
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default=str(SHARED))
    ap.add_argument("--checkpoint", default=str(shipped_checkpoint()), help="the explainer under test")
    ap.add_argument("--demo", default="", help="the first demonstration checkpoint (version 1), for comparison")
    ap.add_argument("--untrained", action="store_true",
                    help="also an untrained head of the same design (seed 0): what the training adds")
    ap.add_argument("--composites", type=int, default=50, help="A | B composites (pairs of held-out photos)")
    ap.add_argument("--photos", type=int, default=20, help="single held-out photos for insertion − deletion")
    ap.add_argument("--rise-n", type=int, default=1000)
    ap.add_argument("--rise-composites", type=int, default=None, help="RISE on the first N composites only")
    ap.add_argument("--rise-photos", type=int, default=None, help="RISE on the first N photos only")
    ap.add_argument("--step", type=int, default=1024, help="pixels per deletion/insertion step (224 = every 224th)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS), help="the JSON to write (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0 = torch's default); 1 on a shared machine, where spinning threads that "
                         "wait for a core cost far more than they add")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(device="cpu")
    pre = model.preprocess
    photos = held_out_photos(Path(args.folder), Path(args.checkpoint))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(photos))
    pairs = [(photos[order[2 * k]], photos[order[2 * k + 1]]) for k in range(min(args.composites, len(photos) // 2))]
    singles = [photos[i] for i in order[: args.photos]]

    methods = {"explainer": lambda: ExplainerNet(model, checkpoint=args.checkpoint),
               "gradcam": lambda: get_method("gradcam")(model),
               f"rise N={args.rise_n}": lambda: get_method("rise")(model, n=args.rise_n)}
    if args.demo:
        methods["explainer (demo v1)"] = lambda: ExplainerNet(model, checkpoint=args.demo)
    if args.untrained:
        methods["explainer, untrained head"] = lambda: ExplainerNet(model, checkpoint=untrained_checkpoint(
            model, Path(args.checkpoint)))
    limits = {f"rise N={args.rise_n}": (args.rise_composites, args.rise_photos)}
    inst = {name: make() for name, make in methods.items()}

    def fresh(name):  # a new image for the explainer: no cached logit maps
        if isinstance(inst[name], ExplainerNet):
            ExplainerNet.clear_cache()
        return inst[name]

    inputs = {}
    for path, _ in {p for pair in pairs for p in pair} | set(singles):
        rgb, _ = pre.input_rgb(read_image(path).rgb)
        inputs[path] = rgb
    rows = {name: {"shares": [], "ins_minus_del": [], "insertion": [], "deletion": [], "ms": []} for name in inst}

    def record(done: bool) -> dict:
        """The results so far, written after every composite and photo: a stopped run keeps what it measured."""
        out = {"machine": machine(), "model": model.id, "checkpoint": str(args.checkpoint), "demo": args.demo or None,
               "folder": str(args.folder), "held_out": len(photos), "composites": len(pairs),
               "photos": len(singles), "rise_n": args.rise_n, "deletion_insertion_step": args.step,
               "seed": args.seed, "complete": done, "summary": summarise(rows, f"rise N={args.rise_n}"),
               "raw": rows, "note": "shared machine: times are noisy"}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        return out
    t_start = time.perf_counter()
    for k, ((pa, ca), (pb, cb)) in enumerate(pairs):
        rgb = np.concatenate([inputs[pa], inputs[pb]], axis=1)
        x = pre.normalise(rgb, model.device)
        for name in inst:
            lim = limits.get(name, (None, None))[0]
            if lim is not None and k >= lim:
                continue
            for half, target in ((0, ca), (1, cb)):
                m = final_map(fresh(name), context(model, x, rgb, target))
                rows[name]["shares"].append(share_in(m, half))
        record(False)
        print(f"composite {k + 1}/{len(pairs)}: " + ", ".join(
            f"{n} {np.mean(r['shares']):.3f}" for n, r in rows.items() if r["shares"]), flush=True)
    for k, (path, _) in enumerate(singles):
        rgb = inputs[path]
        ctx = prepare_context(model, rgb)  # target: the classifier's top-1
        for name in inst:
            lim = limits.get(name, (None, None))[1]
            if lim is not None and k >= lim:
                continue
            t0 = time.perf_counter()
            m = final_map(fresh(name), ctx)
            rows[name]["ms"].append((time.perf_counter() - t0) * 1000)
            curves = deletion_insertion(model, rgb, m, ctx.target, step=args.step, context=ctx)
            rows[name]["insertion"].append(curves["insertion"].auc)
            rows[name]["deletion"].append(curves["deletion"].auc)
            rows[name]["ins_minus_del"].append(curves["insertion"].auc - curves["deletion"].auc)
        record(False)
        print(f"photo {k + 1}/{len(singles)}: " + ", ".join(
            f"{n} {np.mean(r['ins_minus_del']):+.3f}" for n, r in rows.items() if r["ins_minus_del"]), flush=True)

    mach = machine()
    rise_name = f"rise N={args.rise_n}"
    summary = summarise(rows, rise_name)
    print(f"\n{len(pairs)} composites of 2 and {len(singles)} single photos held out from {args.folder} "
          f"({model.id}); {mach['cpu_count']} cpus, load {mach['loadavg_start']}; "
          f"{time.perf_counter() - t_start:.0f} s")
    print(f"{'method':22s}{'class-spec.':>12}{'(targets)':>10}{'ins-del':>9}{'(photos)':>9}{'ms/image':>10}"
          f"{'vs rise':>9}")
    for name, s in summary.items():
        cs = f"{s['class_specificity']:.3f}" if s["class_specificity"] is not None else "-"
        idl = f"{s['insertion_minus_deletion']:+.3f}" if s["insertion_minus_deletion"] is not None else "-"
        sp = f"{s['speedup_vs_rise']:.0f}x" if s["speedup_vs_rise"] else "-"
        print(f"{name:22s}{cs:>12}{s['composite_targets']:>10}{idl:>9}{s['photos']:>9}{s['ms_per_image']:>10.1f}{sp:>9}")
    record(True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

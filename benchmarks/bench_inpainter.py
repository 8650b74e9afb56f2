"""How well the in-fillers fill, on the photos the learned in-painter never saw (issue 31).

    .venv/bin/python benchmarks/bench_inpainter.py                                  # the 100 held-out photos
    .venv/bin/python benchmarks/bench_inpainter.py --limit 2 --holes 1 --infills blur,telea,learned   # a smoke run
    .venv/bin/python benchmarks/bench_inpainter.py --report-only

Photos: the held-out split of ../shared/data/imagenet-sample that ``explorer train-inpainter`` and
``train-explainer`` use (every 5th photo of the sorted folder, positions 4, 9, ...; class = 2 x position). Each
photo goes to EfficientNet-Lite0's input (224x224); ``--holes`` FIDO-style holes per photo (the training
distribution, ``explorer.methods.inpainting.masks``, seeded by the photo's position) are filled by each
in-filler. Figures, on the removed pixels only:

- ``l1``: mean absolute error in RGB [0, 1] units;
- ``perceptual``: a perceptual proxy, the relative L1 distance between the classifier's own early features
  (blocks 1 and 2: strides 4 and 8) of the filled and the original image, over the feature cells the hole
  covers (LPIPS-like, without learned weights);
- ``p_true``: the classifier's probability of the true class on the filled image (a plausible fill keeps it;
  ``p_true_original`` is the unfilled photo's).

Mean ± standard error over photos, and paired differences from ``blur`` photo by photo. Resumable: one JSON
per photo under ``--out``/per_photo. Writes ``--out``/inpainter.json and inpainter.md.
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
OUT = ROOT / "benchmarks" / "results" / "inpainter"
INFILLS = ("blur", "telea", "exemplar", "learned")
FIGURES = ("l1", "perceptual", "p_true")
FEATURES = ("blocks.1", "blocks.2")
HOLD_OUT_EVERY = 5


def held_out(data: Path, every: int = HOLD_OUT_EVERY) -> list[tuple[Path, int, int]]:
    """(path, true class, position) of the held-out photos: the explainer's split (``split_holdout``)."""
    from explorer.methods.explainer_net.data import scan_folder, split_holdout

    images = scan_folder(data, short_side=16)  # decoded tiny: only the listing matters here
    order = {p: i for i, p in enumerate(images.paths)}
    _, held = split_holdout(images, every)
    return [(p, 2 * order[p], order[p]) for p in held]


def features(model, x):
    import torch

    from explorer.models.layers import recording

    mods = {n: model.module.get_submodule(n) for n in FEATURES}
    with torch.no_grad(), recording(mods) as store:
        logits = model(x)
    return logits.float().softmax(1), {n: store[n].float() for n in FEATURES}


def photo_figures(model, path: Path, target: int, pos: int, args) -> dict:
    import torch
    import torch.nn.functional as F

    from explorer.io.images import read_image
    from explorer.methods.base import prepare_context
    from explorer.methods.inpainting.masks import hole_batch
    from explorer.perturb.infill import make_infill

    rgb = read_image(path).rgb
    ctx = prepare_context(model, rgb, target, seed=pos)
    x = ctx.x
    pre = model.preprocess
    holes = hole_batch(args.holes, x.shape[-1], torch.Generator().manual_seed(pos)).to(x.device)
    keep = 1 - holes
    p0, f0 = features(model, x)
    rec = {"photo": path.name, "target": target, "p_true_original": float(p0[0, target]),
           "hole_area": float(holes.mean()), "infills": {}}
    orig = pre.denormalise(x).clamp(0, 1)
    for kind in args.infills.split(","):
        t0 = time.perf_counter()
        try:
            kw = {"path": args.checkpoint} if kind == "learned" and args.checkpoint else {}
            filled = make_infill(kind, x, pre, sigma=10.0, generator=torch.Generator().manual_seed(pos), **kw
                                 ).apply(x, keep)
        except Exception as exc:  # noqa: BLE001 - an in-filler that cannot run here is reported, not fatal
            rec["infills"][kind] = {"skipped": f"{type(exc).__name__}: {exc}"}
            continue
        p, f = features(model, filled)
        rgbf = pre.denormalise(filled).clamp(0, 1)
        l1 = ((rgbf - orig).abs() * holes).sum((1, 2, 3)) / (3 * holes.sum((1, 2, 3)).clamp_min(1))
        perc = []
        for n in FEATURES:
            cover = (F.adaptive_avg_pool2d(holes, f[n].shape[-2:]) > 0.5).float()
            num = ((f[n] - f0[n]).abs() * cover).sum((1, 2, 3))
            den = (f0[n].abs() * cover).sum((1, 2, 3)).clamp_min(1e-6)
            perc.append(num / den)
        rec["infills"][kind] = {"l1": float(l1.mean()), "perceptual": float(torch.stack(perc).mean()),
                                "p_true": float(p[:, target].mean()), "seconds": time.perf_counter() - t0}
    return rec


def report(out: Path, reference: str = "blur") -> dict:
    recs = [json.loads(p.read_text()) for p in sorted((out / "per_photo").glob("*.json"))]
    acc: dict[str, dict[str, list]] = {}
    diff: dict[str, dict[str, list]] = {}
    for r in recs:
        ok = {k: v for k, v in r["infills"].items() if "skipped" not in v}
        for k, v in ok.items():
            for q in FIGURES:
                acc.setdefault(k, {}).setdefault(q, []).append(v[q])
                if k != reference and reference in ok:
                    diff.setdefault(k, {}).setdefault(q, []).append(v[q] - ok[reference][q])
    ms = _ms
    p_orig = ms([r["p_true_original"] for r in recs]) if recs else (0.0, 0.0)
    md = [f"In-fillers on {len(recs)} held-out photos (never trained on), FIDO-style holes (mean area "
          f"{np.mean([r['hole_area'] for r in recs]) if recs else 0:.2f}); EfficientNet-Lite0 at 224 px. "
          "Mean ± standard error over photos. L1 and perceptual on the removed pixels (lower is better); "
          f"p_true: the true class's probability on the filled image (higher is better; unfilled photos "
          f"{p_orig[0]:.3f} ± {p_orig[1]:.3f}).", "",
          "| in-fill | photos | L1 ↓ | perceptual ↓ | p_true ↑ |", "|---|---|---|---|---|"]
    for k, d in acc.items():
        md.append(f"| {k} | {len(d['l1'])} | " + " | ".join(f"{ms(d[q])[0]:.4f} ± {ms(d[q])[1]:.4f}" for q in FIGURES)
                  + " |")
    if diff:
        md += ["", f"Paired differences from {reference} (photo by photo):", "",
               "| in-fill | photos | L1 | perceptual | p_true |", "|---|---|---|---|---|"]
        for k, d in diff.items():
            md.append(f"| {k} − {reference} | {len(d['l1'])} | "
                      + " | ".join(f"{ms(d[q])[0]:+.4f} ± {ms(d[q])[1]:.4f}" for q in FIGURES) + " |")
    result = {"photos": len(recs), "p_true_original": p_orig,
              "infills": {k: {q: ms(v) for q, v in d.items()} for k, d in acc.items()},
              "vs_reference": {k: {q: ms(v) for q, v in d.items()} for k, d in diff.items()},
              "reference": reference, "machine": machine(), "command": " ".join(sys.argv)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "inpainter.md").write_text("\n".join(md) + "\n")
    (out / "inpainter.json").write_text(json.dumps(result, indent=1))
    print("\n".join(md))
    return result


def _ms(v) -> tuple[float, float]:
    a = np.asarray(v, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1) / np.sqrt(a.size)) if a.size > 1 else 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--limit", type=int, default=None, help="first N held-out photos")
    ap.add_argument("--holes", type=int, default=4, help="FIDO-style holes per photo")
    ap.add_argument("--infills", default=",".join(INFILLS))
    ap.add_argument("--checkpoint", default=None, help="in-painter for 'learned' (default: the shipped one)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if not args.report_only:
        from explorer.models import load_model

        model = load_model(device=args.device)
        items = held_out(Path(args.data))[: args.limit]
        for k, (path, target, pos) in enumerate(items):
            rec_path = out / "per_photo" / f"{path.stem}.json"
            if rec_path.exists():
                continue
            rec = photo_figures(model, path, target, pos, args)
            rec_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = rec_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(rec))
            tmp.replace(rec_path)
            print(f"[{k + 1}/{len(items)}] {path.name}: " + " ".join(
                f"{n} {v['l1']:.3f}/{v['p_true']:.3f}" if "l1" in v else f"{n} skipped"
                for n, v in rec["infills"].items()), flush=True)
    report(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""BOREx: does the refinement improve low-quality maps (the paper's claim), and what does an iteration cost?

1. Quality, on the 4 sample photos (resources/samples/*) and a few seeds: the prior is a low-quality RISE
   map (N = 100, s = 8, p = 0.3, as in the paper's demo); BOREx refines it with its defaults (50
   iterations). Both maps are scored with the RISE-protocol deletion and insertion curves of
   ``explorer.evaluation.causal`` (deletion: substrate zeros; insertion: blurred image, Gaussian kernel 11,
   σ = 5; 224 pixels per step at 224²; trapezoid AUC in [0, 1]). The figure of merit is
   insertion AUC − deletion AUC (higher is better). Claim reproduced when the refined map beats the prior
   on most photos.
2. Speed: BOREx's own cost per iteration beside its two forwards (hyper-parameter refit + posterior and
   UCB over the whole candidate grid + the two box-averaged maps), on the CPU, at 224² and at 1024²
   (``load_model(input_size=1024)``), as a function of the number of probes n. Side by side, the peer
   scikit-learn GaussianProcessRegressor (same kernel, same noise; its L-BFGS-B refit, then
   ``predict(return_std=True)`` on the whole grid) at 224² — it builds the dense n×N matrix, which is why
   it is not run at 1024² (4M candidates). The posterior means are compared too (parity).

Prints tables and writes benchmarks/results/bench_borex.json with the machine description.
``--quick`` runs one photo, one seed and small iteration counts (a smoke run; numbers not meaningful).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.io.images import read_image
from explorer.methods import borex as bx
from explorer.methods import explain
from explorer.methods.base import prepare
from explorer.models import load_model

SAMPLES = ROOT / "resources" / "samples"
RESULTS = ROOT / "benchmarks" / "results" / "bench_borex.json"
LOW_RISE = {"n": 100, "cells": 8, "p": 0.3}


from _machine import machine  # benchmarks/ is on sys.path when run as a script


def photos() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def ins_del(model, image, saliency, ctx):
    """(insertion AUC, deletion AUC, substrates, step) from the shared evaluation module."""
    from explorer.evaluation.causal import causal_curve

    d = causal_curve(model, image, saliency, mode="deletion", context=ctx)
    i = causal_curve(model, image, saliency, mode="insertion", context=ctx)
    return i.auc, d.auc, {"deletion": d.substrate, "insertion": i.substrate}, d.step


# --------------------------------------------------------------------------- 1. quality
def quality(model, seeds: list[int], iterations: int, files: list[Path]) -> dict:
    rows = []
    print(f"\n1. Quality: RISE prior (N=100, s=8, p=0.3) vs BOREx-refined ({iterations} iterations), "
          "insertion AUC - deletion AUC (higher is better)")
    print(f"{'photo':<16}{'seed':>5}{'class':>22}{'prior ins':>10}{'del':>7}{'I-D':>8}"
          f"{'refined ins':>12}{'del':>7}{'I-D':>8}{'gain':>8}{'s':>7}")
    substrates, step = None, None
    for path in files:
        image = read_image(path).rgb
        for seed in seeds:
            ctx = prepare(model, image, seed=seed)
            prior = explain("rise", model, image, params=LOW_RISE, seed=seed, context=ctx).raw["salient"]
            t0 = time.perf_counter()
            ref = explain("borex", model, image, params={"prior": "rise", "iterations": iterations},
                          context=dataclasses.replace(ctx, priors={"rise": prior}))
            secs = time.perf_counter() - t0
            pi, pd, substrates, step = ins_del(model, image, prior, ctx)
            ri, rd, _, _ = ins_del(model, image, ref.raw["refined"], ctx)
            row = {"photo": path.name, "seed": seed, "target": ctx.target, "class": model.labels[ctx.target],
                   "prior": {"insertion": pi, "deletion": pd, "ins_minus_del": pi - pd},
                   "refined": {"insertion": ri, "deletion": rd, "ins_minus_del": ri - rd},
                   "gain": (ri - rd) - (pi - pd), "borex_seconds": secs,
                   "final_length_scales": ref.info["length_scales"]}
            rows.append(row)
            print(f"{path.name:<16}{seed:>5}{model.labels[ctx.target][:21]:>22}{pi:>10.4f}{pd:>7.4f}{pi - pd:>8.4f}"
                  f"{ri:>12.4f}{rd:>7.4f}{ri - rd:>8.4f}{row['gain']:>+8.4f}{secs:>7.1f}", flush=True)
    per_photo = {}
    for path in files:
        g = [r["gain"] for r in rows if r["photo"] == path.name]
        per_photo[path.name] = {"mean_gain": float(np.mean(g)), "runs_improved": int(sum(v > 0 for v in g)),
                                "runs": len(g)}
    improved_photos = sum(v["mean_gain"] > 0 for v in per_photo.values())
    all_gain = [r["gain"] for r in rows]
    print(f"photos whose mean gain > 0: {improved_photos}/{len(files)}; runs improved: "
          f"{sum(g > 0 for g in all_gain)}/{len(all_gain)}; mean gain {np.mean(all_gain):+.4f}")
    return {"rows": rows, "per_photo": per_photo, "photos_improved": improved_photos, "photos": len(files),
            "runs_improved": int(sum(g > 0 for g in all_gain)), "runs": len(all_gain),
            "mean_gain": float(np.mean(all_gain)), "iterations": iterations, "prior": {"method": "rise", **LOW_RISE},
            "substrates": substrates, "step": step,
            "claim_reproduced": improved_photos > len(files) / 2}


# --------------------------------------------------------------------------- 2. speed
def speed(model, image, iterations: int, label: str) -> dict:
    """Per-iteration GP cost (refit, grid) and forward cost, from the method's own timings."""
    from explorer.methods import run

    ctx = prepare(model, image, seed=0)
    H, W = ctx.x.shape[-2:]
    yy, xx = np.mgrid[0:H, 0:W]
    prior = np.exp(-((yy - H * 0.45) ** 2 + (xx - W * 0.55) ** 2) / (2 * (0.15 * H) ** 2)).astype(np.float32)
    per = []
    last = {"refit_seconds": 0.0, "grid_seconds": 0.0, "forward_seconds": 0.0}
    t_start = time.perf_counter()
    for u in run("borex", model, image, params={"prior": "given", "iterations": iterations},
                 context=dataclasses.replace(ctx, priors={"given": prior})):
        info = u.explanation.info
        if u.done or "iteration" not in info:
            continue
        per.append({"n": info["iteration"],
                    "refit": info["refit_seconds"] - last["refit_seconds"],
                    "grid": info["grid_seconds"] - last["grid_seconds"],
                    "forwards": info["forward_seconds"] - last["forward_seconds"]})
        last = {k: info[k] for k in last}
    total = time.perf_counter() - t_start
    candidates = H * W * 4
    print(f"\n2. Speed at {label} ({H}x{W}, {candidates:,} candidates), seconds per iteration")
    print(f"{'n probes':>9}{'refit':>9}{'grid+maps':>11}{'GP total':>10}{'2 forwards':>12}")
    marks = sorted({1, min(5, iterations), min(10, iterations), iterations // 2 or 1, iterations})
    for r in per:
        if r["n"] in marks:
            print(f"{r['n']:>9}{r['refit']:>9.3f}{r['grid']:>11.3f}{r['refit'] + r['grid']:>10.3f}"
                  f"{r['forwards']:>12.3f}")
    gp = [r["refit"] + r["grid"] for r in per]
    fw = [r["forwards"] for r in per]
    print(f"{'mean':>9}{np.mean([r['refit'] for r in per]):>9.3f}{np.mean([r['grid'] for r in per]):>11.3f}"
          f"{np.mean(gp):>10.3f}{np.mean(fw):>12.3f}   (run total {total:.1f} s)")
    return {"input": [int(H), int(W)], "candidates": candidates, "iterations": iterations, "per_iteration": per,
            "mean_gp_seconds": float(np.mean(gp)), "mean_forward_seconds": float(np.mean(fw)),
            "total_seconds": total}


def sklearn_peer(n_values: list[int], hw=(224, 224)) -> list[dict]:
    """The same GP step with scikit-learn at 224²: refit + predict(mean, std) on the whole grid; ours alike."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    H, W = hw
    f = bx.REFERENCE_SIDE / min(H, W)
    scales = (30.0, 45.0, 60.0, 75.0)
    rng = np.random.default_rng(0)
    out = []
    print(f"\n3. Peer: one GP step (refit + posterior mean/std over all {H * W * 4:,} candidates) at {H}x{W}")
    print(f"{'n probes':>9}{'ours s':>9}{'sklearn s':>11}{'ratio':>8}{'max|dmu|':>10}{'max|dsd|':>10}")
    ys, xs = np.mgrid[0:H, 0:W]
    grid = np.concatenate([np.stack([ys.ravel() * f, xs.ravel() * f, np.full(H * W, s)], 1) for s in scales])
    for n in n_values:
        X = np.stack([rng.integers(0, H, n) * f, rng.integers(0, W, n) * f, rng.choice(scales, n)], 1).astype(float)
        r = 0.3 * np.sin(X[:, 0] / 15) - 0.4 + 0.05 * rng.normal(size=n)
        # ours: refit from (12, 12, 10), then the chunked grid evaluation as in the method
        t0 = time.perf_counter()
        Xt, rt = torch.tensor(X), torch.tensor(r)
        ls = bx.refit_length_scales(Xt, rt, torch.tensor([12.0, 12.0, 10.0], dtype=torch.float64), 1.5, 0.01)
        gp = bx.GP(Xt, rt, ls, 1.5, 0.01)
        mus, sds = [], []
        G = torch.from_numpy(grid).float()
        step = max(1, bx._CHUNK_ELEMENTS // n)
        Linv32, w32, Xf, lsf = gp.Linv.float(), gp.weights.float(), gp.X.float(), gp.ls.float()
        for i in range(0, G.shape[0], step):
            g = G[i:i + step]
            d = ((((Xf[:, None, :] - g[None]) / lsf) ** 2).sum(-1)).sqrt_()
            k = bx.matern_(d, 1.5)
            mus.append(w32 @ k)
            v = Linv32 @ k
            sds.append((1 - (v * v).sum(0)).clamp_min(0).sqrt())
        _mu, _sd = torch.cat(mus).numpy(), torch.cat(sds).numpy()  # built inside the timing, as the method does
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        sk = GaussianProcessRegressor(Matern(length_scale=[12.0, 12.0, 10.0], length_scale_bounds=(1, 20), nu=1.5),
                                      alpha=0.01).fit(X, r)
        mu_sk, sd_sk = sk.predict(grid, return_std=True)
        theirs = time.perf_counter() - t0
        # parity at sklearn's fitted length scales (the two optimisers may stop at slightly different points)
        gp2 = bx.GP(Xt, rt, torch.tensor(sk.kernel_.length_scale, dtype=torch.float64), 1.5, 0.01)
        sub = torch.from_numpy(grid[:: 97])
        k2 = gp2.kernel(gp2.X, sub, gp2.ls)
        mu2 = (gp2.weights @ k2).numpy()
        v2 = torch.linalg.solve_triangular(gp2.L, k2, upper=False)
        sd2 = (1 - (v2 * v2).sum(0)).clamp_min(0).sqrt().numpy()
        dmu = float(np.abs(mu2 - mu_sk[::97]).max())
        dsd = float(np.abs(sd2 - sd_sk[::97]).max())
        out.append({"n": n, "ours_seconds": ours, "sklearn_seconds": theirs, "ratio": ours / theirs,
                    "ours_length_scales": [float(v) for v in ls], "sklearn_length_scales":
                    [float(v) for v in sk.kernel_.length_scale], "max_abs_diff_mean": dmu, "max_abs_diff_std": dsd})
        print(f"{n:>9}{ours:>9.3f}{theirs:>11.3f}{ours / theirs:>8.2f}{dmu:>10.1e}{dsd:>10.1e}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds (RISE priors) per photo")
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--speed-iterations", type=int, default=50, help="iterations timed at 224x224")
    ap.add_argument("--speed-iterations-1024", type=int, default=20, help="iterations timed at 1024x1024")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.iterations, args.speed_iterations, args.speed_iterations_1024 = 1, 5, 5, 2
    mach = machine()
    print(f"machine: {mach}")
    model = load_model(device="cpu")
    files = photos()[:1] if args.quick else photos()
    result = {"machine": mach, "model": model.id, "device": "cpu", "quick": args.quick}
    if not args.skip_quality:
        result["quality"] = quality(model, list(range(args.seeds)), args.iterations, files)
    chelsea = read_image(SAMPLES / "chelsea.png").rgb
    result["speed_224"] = speed(model, chelsea, args.speed_iterations, "224x224")
    result["sklearn_peer_224"] = sklearn_peer([10, 50] if not args.quick else [5])
    big = load_model(device="cpu", input_size=1024)
    result["speed_1024"] = speed(big, chelsea, args.speed_iterations_1024, "1024x1024")
    result["machine"]["loadavg_end"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.quick:
        print("(quick run: results not written)")
        return
    RESULTS.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

"""Speed of the perturbation engine against the forward-pass bound, the RISE reference algorithm and Captum.

Everything runs side by side in one process on the default model (EfficientNet-Lite0) at 224², on the CPU
unless --device says otherwise:

1. the forward-pass bound: the best images/s of the bare model over batch sizes {1, 4, 8, 16, 32, 64} and
   memory formats {contiguous, channels_last};
2. ours (``rise``, N masks) against that bound: goal <= 1.10 x the bound's time for N images;
3. ours against the RISE reference algorithm (all N masks pre-generated on the CPU with
   ``skimage.transform.resize`` as the authors' code does, then scored in batches of 100, its batch size)
   and against Captum Occlusion / Lime / KernelShap at equal settings (same window/stride/baseline; same
   superpixels, sample count, kernel and ridge): goal ratio <= 0.6. Captum is timed with its default
   ``perturbations_per_eval=1`` and with the same batch as ours.

Prints a table and writes benchmarks/results/bench_perturbation.json with the machine description.
``--quick`` uses small N for a smoke run (its ratios are not meaningful).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _machine import machine  # benchmarks/ is on sys.path when run as a script

from explorer.io.images import read_image
from explorer.methods import explain
from explorer.methods.base import prepare_context
from explorer.models import load_model
from explorer.perturb.linear import lime_kernel
from explorer.perturb.superpixels import superpixels


class Timing(float):
    """Wall seconds (the float value) plus the process CPU seconds (``cpu``, all threads): on a shared,
    loaded machine CPU time is the steadier measure of the work done, so ratios are given on both."""

    cpu: float

    def __new__(cls, wall: float, cpu: float):
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj


def timed(fn) -> Timing:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return Timing(time.perf_counter() - t0, time.process_time() - c0)


# --------------------------------------------------------------------------- 1. forward-pass bound
def forward_bound(model, images: int, sizes=(1, 4, 8, 16, 32, 64)) -> tuple[list[dict], dict]:
    module = model.module
    rows = []
    x0 = torch.randn(1, 3, 224, 224)
    for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        module.to(memory_format=fmt)
        for bs in sizes:
            x = x0.expand(bs, -1, -1, -1).contiguous(memory_format=fmt)
            reps = max(1, math.ceil(images / bs))
            with torch.inference_mode():
                module(x)  # warm-up
                t = timed(lambda: [module(x) for _ in range(reps)])
            rows.append({"format": fmt_name, "batch": bs, "images": reps * bs, "seconds": t, "cpu_seconds": t.cpu,
                         "images_per_s": reps * bs / t, "images_per_cpu_s": reps * bs / t.cpu})
            print(f"  bound {fmt_name:13s} batch {bs:3d}: {reps * bs / t:7.1f} img/s "
                  f"{reps * bs / t.cpu:7.1f} img/cpu-s", flush=True)
    module.to(memory_format=torch.channels_last if model.channels_last else torch.contiguous_format)
    best = max(rows, key=lambda r: r["images_per_s"])
    return rows, best


# --------------------------------------------------------------------------- 3. RISE reference algorithm
def rise_reference(model, x: torch.Tensor, target: int, n: int, s: int = 7, p: float = 0.5, batch: int = 100,
                   seed: int = 0) -> tuple[np.ndarray, float, float]:
    """The authors' algorithm: generate all N masks on the CPU (skimage resize of the s×s grid to (s+1)·cell,
    random crop), keep them in memory, then score masked images in batches; returns (map, t_gen, t_score)."""
    from skimage.transform import resize

    H, W = x.shape[-2:]
    cell = np.ceil(np.array([H, W]) / s)
    up = ((s + 1) * cell).astype(int)
    rng = np.random.default_rng(seed)
    t0, c0 = time.perf_counter(), time.process_time()
    grid = (rng.random((n, s, s)) < p).astype("float32")
    masks = np.empty((n, H, W), dtype="float32")
    for i in range(n):
        dy, dx = rng.integers(0, cell[0]), rng.integers(0, cell[1])
        masks[i] = resize(grid[i], up, order=1, mode="reflect", anti_aliasing=False)[dy:dy + H, dx:dx + W]
    masks_t = torch.from_numpy(masks)[:, None]
    t_gen = Timing(time.perf_counter() - t0, time.process_time() - c0)
    t0, c0 = time.perf_counter(), time.process_time()
    scores = []
    with torch.inference_mode():
        for i in range(0, n, batch):
            scores.append(model(masks_t[i:i + batch] * x).float().softmax(1)[:, target])
    sal = (torch.cat(scores)[None] @ masks_t.view(n, H * W)).view(H, W) / n / p
    t_score = Timing(time.perf_counter() - t0, time.process_time() - c0)
    return sal.numpy(), t_gen, t_score


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N for a smoke run")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "chelsea.png"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_perturbation.json"))
    args = ap.parse_args(argv)

    n = 128 if args.quick else 1000
    samples = 128 if args.quick else 1000
    bound_images = 16 if args.quick else 128
    window, stride = (64, 32) if args.quick else (32, 16)
    segments = 50

    info = machine()
    print(f"machine: {info}", flush=True)
    model = load_model(device=args.device)
    rgb = read_image(args.image).rgb
    ctx = prepare_context(model, rgb, seed=0)
    x, target = ctx.x, ctx.target
    bs = model.batch.size

    print("forward-pass bound:", flush=True)
    bound_rows, best = forward_bound(model, bound_images)
    ips = best["images_per_s"]
    print(f"  best: {best['format']} batch {best['batch']}: {ips:.1f} img/s", flush=True)

    # oneDNN builds its kernels once per input shape: run every batch shape the timed runs will use once
    # beforehand, so that no run pays for shapes another run already warmed up (the order would bias them).
    shapes = set(range(1, bs + 1)) | {best["batch"], n % best["batch"], 100, n % 100}
    with torch.inference_mode():
        for b in sorted(shapes - {0}):
            model(x.expand(b, -1, -1, -1))

    rows = []
    out = {"machine": info, "quick": args.quick, "device": str(model.device), "model": model.id,
           "image": Path(args.image).name, "policy_batch": bs,
           "settings": {"rise_n": n, "cells": 7, "p": 0.5, "occlusion": [window, stride], "samples": samples,
                        "segments_asked": segments},
           "forward_bound": {"best": best, "sweep": bound_rows}, "rows": [], "complete": False}

    def save():  # after every row, so that an interrupted run still leaves its numbers
        out["rows"] = [{k: v for k, v in r.items() if k != "_t"} for r in rows]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))

    def add(name, t: Timing, images, vs=None, vs_t: Timing | None = None, goal=None, note=""):
        r = {"name": name, "seconds": round(t, 3), "cpu_seconds": round(t.cpu, 3), "images": images,
             "images_per_s": round(images / t, 1) if t > 0 else None, "note": note}
        if vs is not None:
            r["vs"], r["goal"] = vs, goal
            r["ratio"], r["ratio_cpu"] = round(t / vs_t, 3), round(t.cpu / vs_t.cpu, 3)
        rows.append(r)
        ratio = f"{r['ratio']:5.2f} {r['ratio_cpu']:5.2f}  x {vs} (goal <= {goal})" if vs else ""
        print(f"  {name:46s} {t:8.2f} {t.cpu:8.2f} {r['images_per_s'] or 0:7.1f}  {ratio}", flush=True)
        r["_t"] = t
        save()
        return r

    bound_t = Timing(n / ips, n / best["images_per_cpu_s"])
    print(f"  {'':46s} {'wall s':>8s} {'cpu s':>8s} {'img/s':>7s}  ratio: wall, cpu")
    add(f"forward bound, {n} images", bound_t, n, note=f"{best['format']} batch {best['batch']}")

    # 2. ours vs the bound
    explain("rise", model, rgb, params={"n": 16, "batch_size": bs})  # warm-up
    t = timed(lambda: explain("rise", model, rgb, params={"n": n}, seed=0))
    add(f"rise (ours, N={n}, batch {bs})", t, n, "forward bound", bound_t, 1.10)
    rise_ours = t
    if best["batch"] != bs:
        t = timed(lambda: explain("rise", model, rgb, params={"n": n, "batch_size": best["batch"]}, seed=0))
        add(f"rise (ours, N={n}, batch {best['batch']})", t, n, "forward bound", bound_t, 1.10)
        rise_ours = min(rise_ours, t, key=float)

    # 3a. the RISE reference algorithm
    _, t_gen, t_score = rise_reference(model, x, target, n)
    ref = add("rise reference (skimage masks, batch 100)", Timing(t_gen + t_score, t_gen.cpu + t_score.cpu), n,
              note=f"mask generation {t_gen:.2f} s + scoring {t_score:.2f} s; holds {n}x224x224 float32 masks")
    add("  ours / reference", rise_ours, n, "rise reference", ref["_t"], 0.6)

    # 3b. Captum at equal settings
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import KernelShap, Lime, Occlusion

    def probs(inp):
        return model(inp).softmax(1)

    ppes = sorted({1, bs})
    n_win = len(range(0, 224 - window + 1, stride)) ** 2
    t = timed(lambda: explain("occlusion", model, rgb, params={"window": window, "stride": stride}))
    ours_occ = add(f"occlusion (ours, {window}/{stride}, {n_win} windows)", t, n_win + 1)
    for ppe in ppes:
        with torch.inference_mode():
            t = timed(lambda: Occlusion(probs).attribute(x, sliding_window_shapes=(3, window, window),
                                                          strides=(3, stride, stride), baselines=0.0,
                                                          target=target, perturbations_per_eval=ppe))
        add(f"captum Occlusion (perturbations_per_eval={ppe})", t, n_win + 1)
        add("  ours / captum", ours_occ["_t"], n_win + 1, f"captum Occlusion ppe={ppe}", t, 0.6)

    labels, how = superpixels(ctx.input_rgb, segments, 10.0)
    mask = torch.from_numpy(labels)[None, None]

    def similarity(original, perturbed, z, **kw):
        return float(lime_kernel(z.float().reshape(1, -1), 0.25)[0])

    t = timed(lambda: explain("lime", model, rgb, params={"samples": samples, "segments": segments}))
    ours_lime = add(f"lime (ours, {samples} samples, {labels.max() + 1} segments)", t, samples)
    for ppe in ppes:
        torch.manual_seed(0)
        lime = Lime(probs, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity)
        t = timed(lambda: lime.attribute(x, target=target, feature_mask=mask, baselines=0.0, n_samples=samples,
                                         perturbations_per_eval=ppe))
        add(f"captum Lime (perturbations_per_eval={ppe})", t, samples)
        add("  ours / captum", ours_lime["_t"], samples, f"captum Lime ppe={ppe}", t, 0.6)

    t = timed(lambda: explain("kernelshap", model, rgb, params={"samples": samples, "segments": segments}))
    ours_shap = add(f"kernelshap (ours, {samples} samples)", t, samples)
    for ppe in ppes:
        torch.manual_seed(0)
        t = timed(lambda: KernelShap(probs).attribute(x, target=target, feature_mask=mask, baselines=0.0,
                                                       n_samples=samples, perturbations_per_eval=ppe))
        add(f"captum KernelShap (perturbations_per_eval={ppe})", t, samples)
        add("  ours / captum", ours_shap["_t"], samples, f"captum KernelShap ppe={ppe}", t, 0.6)

    try:
        info["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    out["settings"].update(segments=int(labels.max() + 1), segmentation=how)
    out["complete"] = True
    save()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

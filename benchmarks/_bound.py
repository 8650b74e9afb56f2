"""The sustained bound, measured in a fresh process as the user's would be: run by bench_cold.py.

Loads the model through explorer's own loader (so the process gets the same allocator set-up as the CLI),
finds the best batch size and memory format on a short probe, then times ``--images`` images at that best
setting. ``--mode forward``: inference-mode forwards (the bound of perturbation methods). ``--mode grad``: one
forward and one backward to the input per image (the bound of gradient methods). ``--engine onnxruntime``
(forward only): the same on the model's ONNX export run by ONNX Runtime with explorer's session settings
(explorer/models/engine.py; the export comes from, or goes to, the cache), memory format contiguous.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.models import load_model


def _pass(module, x: torch.Tensor, grad: bool, target: int = 0) -> None:
    if not grad:
        with torch.inference_mode():
            module(x)
        return
    x = x.detach().requires_grad_(True)
    out = module(x)
    torch.autograd.grad(out[:, target].sum(), x)


def _rate(module, x0, batch: int, fmt, grad: bool, images: int) -> float:
    x = x0.expand(batch, -1, -1, -1).contiguous(memory_format=fmt)
    reps = max(1, -(-images // batch))
    t0 = time.perf_counter()
    for _ in range(reps):
        _pass(module, x, grad)
    return reps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("forward", "grad"), default="forward")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch")
    a = ap.parse_args()
    t_start = time.perf_counter()
    ort = a.engine == "onnxruntime"
    if ort and a.mode == "grad":
        raise SystemExit("--engine onnxruntime bounds score-only forwards: use --mode forward")
    model = load_model(a.model, device="cpu", engine=a.engine)
    module, grad = (model.engine.forward(model, torch.zeros(1, 3, *model.preprocess.input_size)) if ort
                    else model.module), a.mode == "grad"
    h, w = model.preprocess.input_size
    x0 = torch.randn(1, 3, h, w)
    probe = []
    formats = (("contiguous", torch.contiguous_format),) if ort else (
        ("channels_last", torch.channels_last), ("contiguous", torch.contiguous_format))
    for fmt_name, fmt in formats:
        if not ort:
            module.to(memory_format=fmt)
        for b in (int(s) for s in a.batches.split(",")):
            probe.append((_rate(module, x0, b, fmt, grad, max(48, 3 * b)), fmt_name, b))
    best_rate, fmt_name, batch = max(probe)
    fmt = torch.channels_last if fmt_name == "channels_last" else torch.contiguous_format
    if not ort:
        module.to(memory_format=fmt)
    rate = _rate(module, x0, batch, fmt, grad, a.images)
    print(json.dumps({"mode": a.mode, "engine": a.engine, "images": a.images, "batch": batch, "format": fmt_name,
                      "images_per_s": rate, "probe_images_per_s": best_rate,
                      "probe": [{"format": f, "batch": b, "images_per_s": r} for r, f, b in probe],
                      "allocator": model.describe()["allocator"], "process_seconds": time.perf_counter() - t_start}))


if __name__ == "__main__":
    main()

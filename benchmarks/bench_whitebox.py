"""Time each white-box method beside its reference implementation, in one process, on the default model.

    .venv/bin/python benchmarks/bench_whitebox.py [--repeat 3] [--methods gradcam,scorecam] [--device cpu]

Ours runs through the method runner on a prepared context (preprocessing excluded on both sides); the peer
runs on the same module instance (channels_last) at equal settings. Peers: Captum (gradient,
gradient_x_input, integrated_gradients, smoothgrad, vargrad, guided_backprop, deconvnet), pytorch-grad-cam
(gradcam, gradcam_pp, layercam, scorecam), zennit used directly (lrp, with zennit's own
SequentialMergeBatchNorm canonizer). Methods without a peer (cam, guided_gradcam, fem, mlfem) are timed alone.
Each pair is run ``repeat`` times, alternating; the table shows the minimum (least disturbed) time. Writes
benchmarks/results/bench_whitebox.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("EXPLORER_OFFLINE", "1")

from explorer.io.images import read_image
from explorer.methods import explain
from explorer.methods.base import prepare_context
from explorer.models import load_model

SETTINGS = {
    "gradient": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 50, "rule": "gausslegendre", "baseline": "zero"},
    "smoothgrad": {"samples": 25, "noise": 0.15},
    "vargrad": {"samples": 25, "noise": 0.15},
    "guided_backprop": {},
    "deconvnet": {},
    "cam": {},
    "gradcam": {},
    "gradcam_pp": {},
    "layercam": {},
    "scorecam": {"score": "channel_softmax", "mask_upsample": "corners"},
    "guided_gradcam": {},
    "lrp": {"composite": "epsilon_plus_flat"},
    "fem": {},
    "mlfem": {},
}


class _ReLU6SeenAsReLU(nn.ReLU):
    def forward(self, x):
        return F.relu6(x)


@contextmanager
def relu6_as_relu(module):
    """Captum hooks nn.ReLU modules only; the model's ReLU6 modules are typed as ReLU for the peer run."""
    changed = [m for m in module.modules() if type(m) is nn.ReLU6]
    try:
        for m in changed:
            m.__class__ = _ReLU6SeenAsReLU
        yield
    finally:
        for m in changed:
            m.__class__ = nn.ReLU6


def peers(model, ctx, sigma: float):
    """name -> (description, zero-argument callable running the peer)."""
    out = {}
    module = model.module
    x = ctx.x.detach().clone().contiguous(memory_format=torch.channels_last)
    c = ctx.target
    try:
        import captum.attr as ca

        out["gradient"] = ("captum Saliency", lambda: ca.Saliency(module).attribute(x, target=c, abs=True))
        out["gradient_x_input"] = ("captum InputXGradient", lambda: ca.InputXGradient(module).attribute(x, target=c))
        out["integrated_gradients"] = (
            "captum IntegratedGradients n_steps=50 gausslegendre (internal_batch_size default: all at once)",
            lambda: ca.IntegratedGradients(module).attribute(x, baselines=0.0, target=c, n_steps=50,
                                                             method="gausslegendre"))
        out["smoothgrad"] = ("captum NoiseTunnel(Saliency) smoothgrad 25 samples",
                             lambda: ca.NoiseTunnel(ca.Saliency(module)).attribute(
                                 x, nt_type="smoothgrad", nt_samples=25, stdevs=sigma, target=c, abs=True))
        out["vargrad"] = ("captum NoiseTunnel(Saliency) vargrad 25 samples",
                          lambda: ca.NoiseTunnel(ca.Saliency(module)).attribute(
                              x, nt_type="vargrad", nt_samples=25, stdevs=sigma, target=c, abs=False))

        def guided():
            with relu6_as_relu(module):
                return ca.GuidedBackprop(module).attribute(x, target=c)

        def deconv():
            with relu6_as_relu(module):
                return ca.Deconvolution(module).attribute(x, target=c)

        out["guided_backprop"] = ("captum GuidedBackprop", guided)
        out["deconvnet"] = ("captum Deconvolution", deconv)
    except ImportError:
        pass
    try:
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        def cam_peer(cls):
            def run():
                with cls(model=module, target_layers=[module.bn2]) as cam:
                    return cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(c)])
            return run

        out["gradcam"] = ("pytorch-grad-cam GradCAM", cam_peer(pgc.GradCAM))
        out["gradcam_pp"] = ("pytorch-grad-cam GradCAMPlusPlus", cam_peer(pgc.GradCAMPlusPlus))
        out["layercam"] = ("pytorch-grad-cam LayerCAM", cam_peer(pgc.LayerCAM))
        out["scorecam"] = ("pytorch-grad-cam ScoreCAM (batch 16, all channels of bn2)", cam_peer(pgc.ScoreCAM))
    except ImportError:
        pass
    try:
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import EpsilonPlusFlat

        def lrp_peer():
            comp = EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])
            one_hot = torch.zeros(1, model.num_classes)
            one_hot[0, c] = 1.0
            with torch.enable_grad(), Gradient(model=module, composite=comp) as attributor:
                return attributor(x, one_hot)

        out["lrp"] = ("zennit EpsilonPlusFlat + SequentialMergeBatchNorm, used directly", lrp_peer)
    except ImportError:
        pass
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--methods", default=",".join(SETTINGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "chelsea.png"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_whitebox.json"))
    args = ap.parse_args(argv)
    from functools import partialmethod

    import tqdm  # pytorch-grad-cam's Score-CAM prints a progress bar; keep the table readable
    tqdm.tqdm.__init__ = partialmethod(tqdm.tqdm.__init__, disable=True)

    model = load_model(device=args.device)
    image = read_image(args.image).rgb
    ctx = prepare_context(model, image)
    sigma = 0.15 * float(ctx.x.max() - ctx.x.min())
    peer = peers(model, ctx, sigma)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    # warm-up (first-call allocations, layer discovery, LRP trace cache)
    explain("gradient", model, image, context=ctx)
    rows = []
    for name in names:
        params = SETTINGS.get(name, {})

        def ours():
            return explain(name, model, image, params=params, context=ctx)

        warm = timed(ours)  # warm this method once
        t_ours, t_peer = [], []
        desc, fn = peer.get(name, ("-", None))
        if fn is not None and warm < 2.0:  # first-call costs only matter for short runs
            fn()
        for _ in range(args.repeat):
            t_ours.append(timed(ours))
            if fn is not None:
                t_peer.append(timed(fn))
        # the minimum is the least disturbed run on a shared machine; medians are kept in the JSON too
        mo = min(t_ours)
        mp = min(t_peer) if t_peer else None
        row = {"method": name, "params": params, "ours_s": round(mo, 4), "peer": desc,
               "peer_s": round(mp, 4) if mp is not None else None,
               "ratio": round(mo / mp, 3) if mp else None,
               "median_ratio": round(statistics.median(t_ours) / statistics.median(t_peer), 3) if t_peer else None,
               "ours_all_s": [round(t, 4) for t in t_ours],
               "peer_all_s": [round(t, 4) for t in t_peer]}
        rows.append(row)
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "  - "
        peer_s = f"{mp:8.3f}" if mp is not None else "       -"
        print(f"{name:22s} ours {mo:8.3f} s   peer {peer_s} s   ratio {ratio}   ({desc})", flush=True)
    record = {
        "benchmark": "bench_whitebox",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "device": str(model.device),
                    "cuda": torch.cuda.get_device_name(0) if model.device.type == "cuda" else None},
        "model": model.id, "input": list(ctx.x.shape), "channels_last": model.channels_last,
        "image": Path(args.image).name, "target": ctx.target, "repeat": args.repeat, "rows": rows,
        "goal": "ratio <= 1.0 for every method; <= 0.7 for integrated_gradients and scorecam",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

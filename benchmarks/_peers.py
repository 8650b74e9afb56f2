"""One peer library's run of a score-only method, in a fresh process, for bench_cold.py's side-by-side rows.

Same model (the embedded EfficientNet-Lite0, torch eager, channels_last as explorer's loader sets it), same
photo, same number of forwards as explorer's default run of the method, the same batch (explorer's batch policy)
and the same score (softmax probability of the top-1 class):

- ``captum_occlusion``: Captum's Occlusion, window/stride as explorer's defaults, baseline 0;
- ``captum_lime`` / ``captum_kernelshap``: Captum's Lime (ridge, the exponential kernel of width 0.25 over the
  binary features, as explorer's LIME) and KernelShap on explorer's own SLIC superpixels;
- ``xaitk_rise``: xaitk-saliency's ``RISEStack`` (N masks, 7x7 cells, p = 0.5, not debiased: explorer's RISE),
  given the model-input image and a black box that scores the target class only (one map, as ours).

The model load and a small warm-up (every batch shape once) are outside the timing, as the model load is outside
explorer's own ``timings.seconds``. Prints one JSON object: peer, seconds, forwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.io.images import read_image
from explorer.methods.base import prepare_context
from explorer.models import load_model
from explorer.perturb.linear import lime_kernel
from explorer.perturb.superpixels import superpixels

PEERS = ("captum_occlusion", "captum_lime", "captum_kernelshap", "xaitk_rise")


def _captum(name: str, model, ctx, a) -> tuple[callable, int]:
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import KernelShap, Lime, Occlusion

    def probs(inp):
        return model(inp).float().softmax(1)

    x, target, ppe = ctx.x, ctx.target, a.batch
    if name == "captum_occlusion":
        h, w = x.shape[-2:]
        n_win = len(range(0, h - a.window + 1, a.stride)) * len(range(0, w - a.window + 1, a.stride))
        return (lambda: Occlusion(probs).attribute(x, sliding_window_shapes=(3, a.window, a.window),
                                                   strides=(3, a.stride, a.stride), baselines=0.0, target=target,
                                                   perturbations_per_eval=ppe)), n_win + 1
    labels, _ = superpixels(ctx.input_rgb, a.segments, 10.0)
    mask = torch.from_numpy(labels)[None, None].to(x.device)
    if name == "captum_lime":
        def similarity(original, perturbed, z, **kw):
            return float(lime_kernel(z.float().reshape(1, -1), 0.25)[0])

        lime = Lime(probs, interpretable_model=SkLearnRidge(alpha=1.0), similarity_func=similarity)
        return (lambda: lime.attribute(x, target=target, feature_mask=mask, baselines=0.0, n_samples=a.n,
                                       perturbations_per_eval=ppe)), a.n
    return (lambda: KernelShap(probs).attribute(x, target=target, feature_mask=mask, baselines=0.0, n_samples=a.n,
                                                perturbations_per_eval=ppe)), a.n


def _xaitk_rise(model, ctx, a) -> tuple[callable, int]:
    from smqtk_classifier.interfaces.classify_image import ClassifyImage
    from xaitk_saliency.impls.gen_image_classifier_blackbox_sal.rise import RISEStack

    pre, target, batch = model.preprocess, ctx.target, a.batch

    class Target(ClassifyImage):
        """The model as xaitk's black box: uint8 model-input images in, the target's probability out."""

        def get_labels(self):
            return [target]

        def classify_images(self, img_iter):
            chunk = []
            for img in img_iter:
                chunk.append(img)
                if len(chunk) == batch:
                    yield from self._score(chunk)
                    chunk = []
            if chunk:
                yield from self._score(chunk)

        def _score(self, images):
            x = torch.stack([pre.normalise(np.ascontiguousarray(im), model.device)[0] for im in images])
            p = model(x).float().softmax(1)[:, target].tolist()
            return [{target: v} for v in p]

        def get_config(self):
            return {}

    rise = RISEStack(n=a.n, s=7, p1=0.5, seed=0, threads=0, debiased=False)
    return (lambda: rise.generate(ctx.input_rgb, Target())), a.n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", choices=PEERS, required=True)
    ap.add_argument("--n", type=int, default=1000, help="masks / samples")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--segments", type=int, default=50)
    ap.add_argument("--batch", type=int, default=0, help="images per forward (0: explorer's batch policy)")
    ap.add_argument("--image", default=str(ROOT / "resources" / "samples" / "chelsea.png"))
    a = ap.parse_args()
    model = load_model("efficientnet_lite0", device="cpu", engine="torch")
    a.batch = a.batch or model.batch.size
    ctx = prepare_context(model, read_image(a.image).rgb, seed=0)
    run, forwards = (_xaitk_rise if a.peer == "xaitk_rise" else lambda m, c, x: _captum(a.peer, m, c, x))(model, ctx, a)
    with torch.inference_mode():
        for b in range(1, a.batch + 1):  # every batch shape once (oneDNN builds kernels per shape)
            model(ctx.x.expand(b, -1, -1, -1))
        t0 = time.perf_counter()
        run()
        seconds = time.perf_counter() - t0
    print(json.dumps({"peer": a.peer, "seconds": seconds, "forwards": forwards, "batch": a.batch,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

"""The explainer network: a light segmentation head on the frozen classifier's own features.

Stalder, Perraudin, Achanta, Perez-Cruz, Volpi, "What you see is what you classify: black box attributions",
NeurIPS 2022 (METHODS.md §6) train a second network that outputs one logit map S_c per class; the class mask is
sigmoid(S_c). Their explainer is a full DeepLabV3-ResNet50 trained from scratch. Ours (this project's design,
to keep it light enough for a desktop app and a CPU) reuses the classifier's frozen feature maps at a few
strides (8, 16, 32 for EfficientNet-Lite0: ``blocks.2``, ``blocks.4``, ``bn2``), recorded by forward hooks
during the one forward pass the classifier makes anyway, and fuses them top-down (FPN style: 1x1 lateral
projections, upsample-and-add, two 3x3 convolutions) into K class logit maps at stride 8 (28x28 for a
224x224 input). Only the head's weights are trained and stored; the backbone is the classifier itself.

The logit maps stay at the reduced resolution; ``class_masks`` upsamples (bilinear) and squashes only the
classes asked for.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.errors import ExplorerError, FileError, UnsupportedError
from explorer.core.types import Needs
from explorer.models.layers import recording
from explorer.models.loaded import LoadedModel

FORMAT = "explorer-explainer"
VERSION = 1
DEFAULT_WIDTH = 64
SHIPPED = "explainer_efficientnet_lite0.pt"


# --------------------------------------------------------------------------- the classifier's identity
def fingerprint(model: LoadedModel) -> str:
    """A short hash identifying the classifier's weights: the tensor count and a few tensors' bytes.

    Cheap (a handful of tensors, not the whole model) yet changes when any usual fine-tuning touches the
    first, middle or last layers. Memory format and device do not change it.
    """
    if model.module is None:
        raise UnsupportedError(f"model {model.id!r} has no torch module: the explainer network needs its feature maps")
    sd = model.module.state_dict()
    keys = [k for k, v in sd.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not keys:
        return "no-weights"
    mid = len(keys) // 2
    picked = list(dict.fromkeys(keys[:2] + keys[mid:mid + 1] + keys[-2:]))
    h = hashlib.sha256(f"{len(keys)}:{sum(sd[k].numel() for k in keys)}".encode())
    for k in picked:
        t = sd[k].detach().float().cpu().contiguous()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


# --------------------------------------------------------------------------- which feature maps to tap
def _depth(name: str) -> int:
    return name.count(".")


def pick_taps(model: LoadedModel, levels: int = 3, min_stride: int = 8) -> list[str]:
    """Auto-pick the feature maps the head reads: one per resolution, the ``levels`` coarsest ones.

    Per resolution (among the model's discovered 4-D feature maps with stride >= ``min_stride``) the
    shallowest-named module finishing last wins: a whole stage (``blocks.4``, ``layer3``) rather than a
    convolution inside the next stage that still runs at that resolution. Finest first.
    """
    model.check_supports(Needs.LAYER, "the explainer network")
    H, W = model.preprocess.input_size
    infos = model.layers()
    by_res: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for order, info in enumerate(infos):
        h, w = info.shape[-2:]
        if h * min_stride > H or w * min_stride > W:
            continue
        by_res.setdefault((h, w), []).append((_depth(info.name), -order, info.name))
    if not by_res:
        raise UnsupportedError(
            f"model {model.id!r} has no feature maps at stride >= {min_stride}: the explainer network cannot tap it")
    coarse = sorted(by_res, key=lambda hw: hw[0] * hw[1])[:levels]
    names = [min(by_res[hw])[2] for hw in coarse]
    return names[::-1]


def backbone(model: LoadedModel, x: torch.Tensor, taps: Sequence[str]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One classifier forward on ``x`` recording the tapped feature maps: (features finest first, logits).

    Runs under the caller's grad mode (the backbone is frozen; callers use ``inference_mode``/``no_grad``).
    Hooks are removed when this returns.
    """
    mods = {n: model.module.get_submodule(n) for n in taps}
    with recording(mods) as store:
        logits = model(x)
    missing = [n for n in taps if n not in store]
    if missing:
        raise ExplorerError(f"model {model.id!r} did not run the tapped layer(s) {', '.join(missing)}")
    feats = []
    for n in taps:
        f = store[n]
        if isinstance(f, (tuple, list)):
            f = f[0]
        feats.append(f.float())
    return feats, logits.float()


# --------------------------------------------------------------------------- the head
class ExplainerHead(nn.Module):
    """FPN-style fusion of the tapped features (finest first) into ``num_classes`` logit maps.

    GroupNorm, not BatchNorm: the head is trained on small batches from small folders and must behave
    the same in training and at explain time.
    """

    def __init__(self, channels: Sequence[int], num_classes: int, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.num_classes = int(num_classes)
        self.width = int(width)
        groups = math.gcd(8, self.width)
        self.lateral = nn.ModuleList(nn.Conv2d(c, self.width, 1) for c in self.channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(self.width, self.width, 3, padding=1, bias=False), nn.GroupNorm(groups, self.width), nn.ReLU(),
            nn.Conv2d(self.width, self.width, 3, padding=1, bias=False), nn.GroupNorm(groups, self.width), nn.ReLU(),
        )
        self.classify = nn.Conv2d(self.width, self.num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.lateral):
            raise ValueError(f"the head expects {len(self.lateral)} feature maps, got {len(feats)}")
        p = self.lateral[-1](feats[-1])
        for lat, f in zip(reversed(self.lateral[:-1]), reversed(feats[:-1])):
            p = F.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False) + lat(f)
        return self.classify(self.fuse(p))


class Explainer:
    """The head bound to the classifier it was trained for (taps, fingerprint, class count)."""

    def __init__(self, model: LoadedModel, head: ExplainerHead, taps: Sequence[str], meta: dict[str, Any] | None = None):
        self.model = model
        self.head = head.to(model.device).eval()
        self.taps = list(taps)
        self.meta = dict(meta or {})
        self.checkpoint_path: str | None = None

    @classmethod
    def new(cls, model: LoadedModel, taps: Sequence[str] | None = None, width: int = DEFAULT_WIDTH,
            seed: int = 0) -> "Explainer":
        """A freshly initialised head for ``model`` (seeded)."""
        taps = list(taps) if taps else pick_taps(model)
        valid = model.layer_names()
        bad = [t for t in taps if t not in valid]
        if bad:
            from explorer.core.errors import UnknownNameError

            raise UnknownNameError("layer", bad[0], valid)
        h, w = model.preprocess.input_size
        with torch.inference_mode():
            feats, logits = backbone(model, torch.zeros(1, 3, h, w, device=model.device), taps)
        g = torch.random.fork_rng(devices=[])
        with g:
            torch.manual_seed(int(seed))
            head = ExplainerHead([f.shape[1] for f in feats], logits.shape[1], width)
        return cls(model, head, taps)

    # ------------------------------------------------------------------ compute
    def logit_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, h, w) class logit maps at the head's resolution and the classifier's (B, K) logits.

        Gradients flow into the head (not the backbone) under grad mode.
        """
        with torch.no_grad():
            feats, logits = backbone(self.model, x, self.taps)
        return self.head(feats), logits

    @staticmethod
    def upsample(maps: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(maps, size=tuple(hw), mode="bilinear", align_corners=False)

    def class_masks(self, x: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
        """Masks sigmoid(S_c) at the input resolution for the given classes only: (B, len(classes), H, W)."""
        with torch.inference_mode():
            s, _ = self.logit_maps(x)
            return self.upsample(s[:, list(classes)], x.shape[-2:]).sigmoid()

    # ------------------------------------------------------------------ files
    def record(self) -> dict[str, Any]:
        h, w = self.model.preprocess.input_size
        return {
            "format": FORMAT, "version": VERSION, "model_id": self.model.id, "model_fingerprint": fingerprint(self.model),
            "num_classes": self.head.num_classes, "taps": list(self.taps), "channels": list(self.head.channels),
            "width": self.head.width, "input_size": [int(h), int(w)],
        }

    def save(self, path: str | Path, training: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write the head (float32 state dict) and its record; ``training`` (optimizer, epoch...) for resume."""
        path = Path(path)
        ckpt = self.record()
        ckpt["head"] = {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}
        ckpt["meta"] = dict(self.meta, **(extra or {}))
        if training is not None:
            ckpt["training"] = training
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            torch.save(ckpt, tmp)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise FileError(path, f"cannot write the checkpoint: {exc.strerror or exc}") from None
        return path

    @classmethod
    def load(cls, path: str | Path, model: LoadedModel) -> "Explainer":
        """Load a checkpoint for ``model``; refuse one trained for another classifier."""
        ckpt = read_checkpoint(path)
        check_compatible(ckpt, model, path)
        head = ExplainerHead(ckpt["channels"], ckpt["num_classes"], ckpt["width"])
        try:
            head.load_state_dict(ckpt["head"])
        except (RuntimeError, KeyError) as exc:
            raise FileError(path, f"the head's weights do not fit its own record ({str(exc).splitlines()[0]})") from None
        exp = cls(model, head, ckpt["taps"], ckpt.get("meta") or {})
        exp.checkpoint_path = str(path)
        return exp


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict (``weights_only=True``: tensors and plain values only), or a FileError."""
    p = Path(path)
    if not p.exists():
        raise FileError(p, "no such explainer checkpoint")
    if p.is_dir():
        raise FileError(p, "is a folder, not an explainer checkpoint")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's error
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise FileError(p, f"not a readable explainer checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FileError(p, "not an explainer checkpoint (train one with `explorer train-explainer`)")
    if int(ckpt.get("version", 0)) > VERSION:
        raise FileError(p, f"explainer checkpoint version {ckpt.get('version')} is newer than this explorer reads ({VERSION})")
    for key in ("model_id", "model_fingerprint", "num_classes", "taps", "channels", "width", "head"):
        if key not in ckpt:
            raise FileError(p, f"explainer checkpoint lacks {key!r}")
    return ckpt


def check_compatible(ckpt: dict[str, Any], model: LoadedModel, path: str | Path) -> None:
    """Refuse a checkpoint trained for another classifier, naming the file and both classifiers."""
    want_id, want_fp = str(ckpt["model_id"]), str(ckpt["model_fingerprint"])
    have_fp = fingerprint(model)
    if want_id != model.id:
        raise ExplorerError(
            f"{path}: this explainer was trained for classifier {want_id!r} (weights {want_fp}), but the loaded "
            f"classifier is {model.id!r} (weights {have_fp}); train one for it with "
            f"`explorer train-explainer DIR --model {model.id}`")
    if want_fp != have_fp:
        raise ExplorerError(
            f"{path}: this explainer was trained for classifier {want_id!r} with weights {want_fp}, but the loaded "
            f"{model.id!r} has different weights ({have_fp}); train one for these weights with `explorer train-explainer`")
    if int(ckpt["num_classes"]) != model.num_classes:
        raise ExplorerError(
            f"{path}: this explainer has {ckpt['num_classes']} classes, the classifier {model.id!r} {model.num_classes}")
    valid = set(model.layer_names())
    bad = [t for t in ckpt["taps"] if t not in valid]
    if bad:
        raise ExplorerError(f"{path}: the explainer reads layer(s) {', '.join(bad)}, which {model.id!r} does not have")


def export_head(src: str | Path, dst: str | Path, note: str | None = None) -> Path:
    """Copy a checkpoint without its training state (head + record only: what ships), adding ``note``."""
    ckpt = read_checkpoint(src)
    ckpt.pop("training", None)
    meta = dict(ckpt.get("meta") or {})
    if note:
        meta["note"] = note
    ckpt["meta"] = meta
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, dst)
    return dst

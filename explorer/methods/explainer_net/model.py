"""The explainer network: a light head on the frozen classifier's own features.

Stalder, Perraudin, Achanta, Perez-Cruz, Volpi, "What you see is what you classify: black box attributions",
NeurIPS 2022 (docs/methods.md §6) train a second network that outputs one logit map S_c per class; the class mask is
sigmoid(S_c). Their explainer is a full DeepLabV3-ResNet50 trained from scratch. Ours (this project's design,
to keep it light enough for a desktop app and a CPU) reuses the classifier's frozen feature maps at a few
strides (8, 16, 32 for EfficientNet-Lite0: ``blocks.2``, ``blocks.4``, ``bn2``), recorded by forward hooks
during the one forward pass the classifier makes anyway, and fuses them top-down (FPN style) at stride 8
(28x28 for a 224x224 input). Since checkpoint version 2 the head outputs a refined copy of the classifier's
pooled feature map and every class's logit map goes through the classifier's own final linear layer
(``heads.TiedHead``; version 3, ``heads.GuidedHead``, upsamples it with a learned guide): any of the K classes
has a mask, seen in training or not. Only the head's weights are
trained and stored; the backbone and the final layer are the classifier itself. Version-1 checkpoints (one
learned channel per class, ``heads.ClassHead``) are still read.

The logit maps stay at the reduced resolution; ``class_masks`` upsamples (bilinear) and squashes only the
classes asked for.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.errors import ExplorerError, FileError, UnsupportedError
from explorer.core.types import Needs
from explorer.methods.explainer_net.heads import DEFAULT_WIDTH, HEADS, KINDS, ClassHead, TiedHead
from explorer.models.layers import recording
from explorer.models.loaded import LoadedModel

FORMAT = "explorer-explainer"
VERSION = 3  # 3: GuidedHead; 2: TiedHead (class maps through the classifier's last layer); 1: ClassHead, read only
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


# --------------------------------------------------------------------------- the classifier's last layer
def final_linear(model: LoadedModel) -> tuple[str, nn.Linear]:
    """The classifier's final linear layer (name, module): the last ``nn.Linear`` with one output per class."""
    found = [(n, m) for n, m in model.module.named_modules()
             if isinstance(m, nn.Linear) and m.out_features == model.num_classes]
    if not found:
        raise UnsupportedError(
            f"model {model.id!r} has no final linear layer with {model.num_classes} outputs: the explainer maps "
            "classes through the classifier's own last layer")
    return found[-1]


def pooled_tap(model: LoadedModel, linear: nn.Linear) -> str:
    """The feature map whose spatial mean the final linear layer turns into the logits (checked on a probe).

    A head that computed class maps from a layer that is not the classifier's pooled input would give
    plausible-looking but wrong masks, so the relation logits = W . mean(F) + b is verified, not assumed.
    """
    cands = [i.name for i in model.layers() if i.shape[0] == linear.in_features]
    h, w = model.preprocess.input_size
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(1, 3, h, w, generator=g).to(model.device)
    for name in reversed(cands):
        with torch.inference_mode():
            (f,), logits = backbone(model, probe, [name])
            pooled = linear(f.mean((2, 3)).to(linear.weight.dtype)).float()
        if torch.allclose(pooled, logits, rtol=1e-3, atol=1e-3 * float(logits.abs().max()) + 1e-5):
            return name
    raise UnsupportedError(
        f"model {model.id!r}: no feature map averages into its logits through its final linear layer "
        f"({linear.in_features} -> {model.num_classes}); the explainer network needs a global-average-pooling head")


def _weights(model: LoadedModel) -> tuple[torch.Tensor, torch.Tensor | None]:
    _, linear = final_linear(model)
    return linear.weight, linear.bias


def tied_taps(model: LoadedModel, taps: Sequence[str] | None = None) -> list[str]:
    """Taps for a version-2 head: the finer levels of ``pick_taps`` (or ``taps``), ending in the pooled map."""
    _, linear = final_linear(model)
    last = pooled_tap(model, linear)
    finer = list(taps) if taps else pick_taps(model)
    return [t for t in finer if t != last][: max(0, len(finer) - 1)] + [last]


class Explainer:
    """The head bound to the classifier it was trained for (taps, fingerprint, class count)."""

    def __init__(self, model: LoadedModel, head: ClassHead | TiedHead, taps: Sequence[str],
                 meta: dict[str, Any] | None = None):
        self.model = model
        if isinstance(head, TiedHead):
            head.bind(*_weights(model))
        self.head = head.to(model.device).eval()
        self.taps = list(taps)
        self.meta = dict(meta or {})
        self.checkpoint_path: str | None = None

    @classmethod
    def new(cls, model: LoadedModel, taps: Sequence[str] | None = None, width: int = DEFAULT_WIDTH,
            seed: int = 0, kind: str = "tied") -> "Explainer":
        """A freshly initialised head of ``kind`` (``heads.KINDS``: one that maps classes through the
        classifier's last layer) for ``model`` (seeded)."""
        trainable = [k for k, v in KINDS.items() if v >= 2]
        if kind not in trainable:
            raise ValueError(f"unknown explainer head kind {kind!r} (one of {', '.join(trainable)})")
        taps = tied_taps(model, taps)
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
            head = HEADS[KINDS[kind]]([f.shape[1] for f in feats], logits.shape[1], width)
        return cls(model, head, taps)

    # ------------------------------------------------------------------ compute
    def logit_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K, h, w) class logit maps at the head's resolution and the classifier's (B, K) logits.

        Gradients flow into the head (not the backbone) under grad mode.
        """
        with torch.no_grad():
            feats, logits = backbone(self.model, x, self.taps)
        return self.head(feats), logits

    def evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training: the head's (class evidence z, scale, shift) with grad, and the classifier's logits; the
        class maps then come from ``head.maps`` for the few classes training needs."""
        if not isinstance(self.head, TiedHead):
            raise UnsupportedError("only explainer heads of version 2 or later can be trained (this is a version-1 "
                                   "checkpoint)")
        with torch.no_grad():
            feats, logits = backbone(self.model, x, self.taps)
        return (*self.head.evidence(feats), logits)

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
            "format": FORMAT, "version": KINDS[self.head.kind], "model_id": self.model.id,
            "model_fingerprint": fingerprint(self.model),
            "num_classes": self.head.num_classes, "taps": list(self.taps), "channels": list(self.head.channels),
            "width": self.head.width, "input_size": [int(h), int(w)],
            **({"final_layer": final_linear(self.model)[0]} if isinstance(self.head, TiedHead) else {}),
        }

    def save(self, path: str | Path, training: dict[str, Any] | None = None,
             extra: dict[str, Any] | None = None) -> Path:
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
        head = HEADS[int(ckpt["version"])](ckpt["channels"], ckpt["num_classes"], ckpt["width"])
        try:
            head.load_state_dict(ckpt["head"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise FileError(path,
                            f"the head's weights do not fit its own record ({str(exc).splitlines()[0]})") from None
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
    try:
        version = int(ckpt.get("version", 0))
    except (TypeError, ValueError):
        raise FileError(p, f"explainer checkpoint version {ckpt.get('version')!r} is not a number") from None
    if version < 1:
        raise FileError(p, "explainer checkpoint without a version (corrupt, or not written by explorer)")
    if version > VERSION:
        raise FileError(p, f"explainer checkpoint version {ckpt.get('version')} is newer than this explorer reads "
                           f"({VERSION})")
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
            f"{model.id!r} has different weights ({have_fp}); train one for these weights with `explorer "
            "train-explainer`")
    if int(ckpt["num_classes"]) != model.num_classes:
        raise ExplorerError(
            f"{path}: this explainer has {ckpt['num_classes']} classes, "
            f"the classifier {model.id!r} {model.num_classes}")
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

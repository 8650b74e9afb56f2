"""Training the explainer head for a frozen classifier over a folder of images (no annotations needed).

Losses follow Stalder et al. 2022 (METHODS.md §6, official code stevenstalder/NN-Explainer), with the
paper's weights: L = L_c + λ_e L_e + λ_a L_a + λ_tv L_tv + λ_m mean(m) + λ_nc mean(n), λ_e = λ_a = λ_tv = 1,
λ_m = 0.1, λ_nc = 0.3, area bounds a_min = 0.05, a_max = 0.3. Target mask m = σ(max_{c∈y} S_c), non-target
mask n = σ(max_{c∉y} S_c); masked images are m⊙x and (1−m)⊙x in the normalised space (zero = the dataset
mean colour), as in the official code.

Where this differs from the paper (this project's choices, because a user's folder has no labels and the
classifier here is a 1000-class softmax model):
- labels y are the classifier's own confident predictions on each augmented image: its top-k classes
  (k = 3) with probability >= a threshold (0.25), and always its top-1;
- L_c is the cross-entropy of f(m⊙x) against the classifier's own probabilities restricted to y and
  renormalised (with one label this is the paper's single-label cross-entropy);
- L_e is, as in the official code, minus the entropy of softmax f((1−m)⊙x) averaged over the batch *and the
  classes* (−H/K). For 1000 classes this makes the term small (at most log(1000)/1000 ≈ 0.007); an earlier
  version divided by log K instead and the masks collapsed to "keep everything" on small folders, because
  both L_c and a strong L_e are minimised by m = 1;
- the non-target max is taken over the class logit maps at the head's reduced resolution, then upsampled
  (the head outputs stride-8 maps; upsampling all 1000 maps first would cost 50 M values per image);
- total variation is the mean absolute horizontal plus vertical difference (the official code pads by
  reflection, which adds the border differences once more);
- the learning rate defaults to 1e-4 (the paper's 1e-5 was for a whole DeepLabV3; our head is small).
Augmentation (random resized crop, horizontal flip, colour jitter) lets a small folder train at all.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.errors import ExplorerError, FileError, ImageReadError, ParamError
from explorer.methods.explainer_net.model import Explainer, check_compatible, fingerprint, read_checkpoint
from explorer.models.loaded import LoadedModel

CACHE_LIMIT = 512  # folders up to this many images are decoded once and kept (downscaled) in memory


class SkippedImageWarning(UserWarning):
    """A file of the training folder that was skipped (not fatal)."""


# --------------------------------------------------------------------------- the folder
@dataclass
class ImageSet:
    """The usable images of a training folder; ``skipped`` lists (path, reason) of the others."""

    root: Path
    paths: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    short_side: int = 448
    cache: dict[Path, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, path: Path) -> np.ndarray | None:
        """The image (downscaled so its shorter side is at most ``short_side``), or None when unreadable."""
        if path in self.cache:
            return self.cache[path]
        try:
            rgb = _read_small(path, self.short_side)
        except ImageReadError as exc:
            self._skip(path, exc.reason)
            return None
        if len(self.paths) <= CACHE_LIMIT:
            self.cache[path] = rgb
        return rgb

    def _skip(self, path: Path, reason: str) -> None:
        warnings.warn(SkippedImageWarning(f"skipped {path}: {reason}"), stacklevel=3)
        self.skipped.append((str(path), reason))
        if path in self.paths:
            self.paths.remove(path)
        if not self.paths:
            raise FileError(self.root, "no usable training images: " + describe_skipped(self.skipped))


def _read_small(path: Path, short_side: int) -> np.ndarray:
    from PIL import Image

    from explorer.io.images import read_image

    rgb = read_image(path).rgb
    h, w = rgb.shape[:2]
    s = short_side / min(h, w)
    if s < 1:
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR))
    return np.ascontiguousarray(rgb)


def describe_skipped(skipped: list[tuple[str, str]], show: int = 3) -> str:
    """``"3 file(s) skipped: 2 not images by their suffix (a.txt, b.csv); 1 unreadable (x.png: corrupt ...)"``."""
    if not skipped:
        return "the folder holds no files"
    names = [Path(p).name for p, reason in skipped if reason.startswith("not an image file")]
    bad = [f"{Path(p).name}: {reason}" for p, reason in skipped if not reason.startswith("not an image file")]
    parts = []
    for items, what in ((names, "not images by their suffix"), (bad, "unreadable")):
        if items:
            more = f"; ... {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{len(items)} {what} ({'; '.join(items[:show])}{more})")
    return f"{len(skipped)} file(s) skipped: " + ", ".join(parts)


def scan_folder(folder: str | Path, short_side: int = 448) -> ImageSet:
    """Every image file under ``folder`` (recursively, sorted). Small folders are decoded at once; larger
    ones are checked by header now and decoded when used. Unreadable files are skipped with a warning;
    a folder without any usable image is refused with the count of what was skipped and why."""
    from explorer.io.images import SUFFIXES

    root = Path(folder)
    if not root.exists():
        raise FileError(root, "no such training folder")
    if not root.is_dir():
        raise FileError(root, "is not a folder: give a folder of training images")
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    except OSError as exc:
        raise FileError(root, f"cannot list the folder: {exc.strerror or exc}") from None
    images = [p for p in files if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")]
    wanted = set(images)
    skipped = [(str(p), f"not an image file (suffix {p.suffix or 'none'!r})") for p in files if p not in wanted]
    out = ImageSet(root, [], skipped, short_side)
    decode = len(images) <= CACHE_LIMIT
    for p in images:
        try:
            if decode:
                out.cache[p] = _read_small(p, short_side)
            else:
                _check_header(p)
        except ImageReadError as exc:
            warnings.warn(SkippedImageWarning(f"skipped {p}: {exc.reason}"), stacklevel=2)
            out.skipped.append((str(p), exc.reason))
            continue
        out.paths.append(p)
    if not out.paths:
        raise FileError(root, "no usable training images: " + describe_skipped(out.skipped))
    return out


def _check_header(p: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image, or a format that cannot be read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(p, f"cannot read: {exc}") from None
    if w <= 0 or h <= 0:
        raise ImageReadError(p, f"has an empty size {w}x{h}")


# --------------------------------------------------------------------------- augmentation
def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def augment(rgb: np.ndarray, size: int, g: torch.Generator, *, min_scale: float = 0.25, jitter: float = 0.4,
            hue: float = 0.05) -> torch.Tensor:
    """Random resized crop (area fraction in [min_scale, 1], aspect in [3/4, 4/3]) to ``size``², horizontal
    flip (p = 0.5) and colour jitter (brightness, contrast, saturation factors in [1 − jitter, 1 + jitter],
    hue rotation within ±hue of a turn). (3, size, size) float in [0, 1]; every draw from ``g``."""
    H, W = rgb.shape[:2]
    top, left, h, w = 0, 0, H, W
    for _ in range(10):
        area = H * W * _uniform(g, min_scale, 1.0)
        ratio = math.exp(_uniform(g, math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= W and 0 < ch <= H:
            top = int(torch.randint(0, H - ch + 1, (), generator=g))
            left = int(torch.randint(0, W - cw + 1, (), generator=g))
            h, w = ch, cw
            break
    t = torch.from_numpy(np.ascontiguousarray(rgb[top:top + h, left:left + w])).permute(2, 0, 1)[None].float() / 255.0
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    if float(torch.rand((), generator=g)) < 0.5:
        t = t.flip(-1)
    if jitter > 0:
        b, c, s = (_uniform(g, 1 - jitter, 1 + jitter) for _ in range(3))
        t = t * b
        gray = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2])
        t = (t - gray.mean()) * c + gray.mean()
        gray = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2])[None]
        t = (t - gray) * s + gray
    if hue > 0:  # rotate the chroma plane of YIQ
        a = 2 * math.pi * _uniform(g, -hue, hue)
        to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
        m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
        t = torch.einsum("ij,jhw->ihw", m, t)
    return t.clamp_(0, 1)


# --------------------------------------------------------------------------- losses
@dataclass
class TrainConfig:
    """Training settings; the loss weights and area bounds are the paper's defaults."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    size: int = 0  # training resolution (0 = the classifier's input size)
    topk: int = 3
    threshold: float = 0.25
    a_min: float = 0.05
    a_max: float = 0.3
    lambda_e: float = 1.0
    lambda_a: float = 1.0
    lambda_tv: float = 1.0
    lambda_m: float = 0.1
    lambda_nc: float = 0.3
    width: int = 64
    taps: tuple[str, ...] = ()
    seed: int = 0
    min_scale: float = 0.25
    jitter: float = 0.4

    def check(self) -> None:
        if self.epochs < 1:
            raise ParamError(f"--epochs = {self.epochs} must be >= 1")
        if self.batch_size < 1:
            raise ParamError(f"--batch-size = {self.batch_size} must be >= 1")
        if not 0 < self.lr < 1:
            raise ParamError(f"--lr = {self.lr} must be between 0 and 1")
        if self.size and not 32 <= self.size <= 1024:
            raise ParamError(f"--size = {self.size} must be between 32 and 1024 pixels (0 = the model's input size)")
        if self.topk < 1:
            raise ParamError(f"--topk = {self.topk} must be >= 1")
        if not 0 <= self.threshold <= 1:
            raise ParamError(f"--threshold = {self.threshold} must be between 0 and 1")
        if not 0 <= self.a_min <= self.a_max <= 1:
            raise ParamError(f"area bounds must satisfy 0 <= a_min ({self.a_min}) <= a_max ({self.a_max}) <= 1")
        if self.width < 8:
            raise ParamError(f"--width = {self.width} must be >= 8")

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        vals = {k: v for k, v in rec.items() if k in names}
        if "taps" in vals:
            vals["taps"] = tuple(vals["taps"])
        return cls(**vals)


def pseudo_labels(probs: torch.Tensor, topk: int, threshold: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The classifier's confident classes: (idx (B, k), valid (B, k), multi-hot y (B, K)); top-1 always valid."""
    v, idx = probs.topk(min(topk, probs.shape[1]), dim=1)
    valid = v >= threshold
    valid[:, 0] = True
    y = torch.zeros_like(probs, dtype=torch.bool).scatter_(1, idx, valid)
    return idx, valid, y


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of |horizontal difference| + |vertical difference|, averaged over the batch."""
    hw = m.shape[-1] * m.shape[-2]
    dx = (m[..., :, 1:] - m[..., :, :-1]).abs().flatten(1).sum(1)
    dy = (m[..., 1:, :] - m[..., :-1, :]).abs().flatten(1).sum(1)
    return ((dx + dy) / hw).mean()


def area_loss(masks: torch.Tensor, valid: torch.Tensor, a_min: float, a_max: float) -> torch.Tensor:
    """The paper's area constraint on each labelled class mask (B, k, H, W): the values sorted in decreasing
    order are pushed up to 1 on the first a_min·HW pixels and down to 0 after the first a_max·HW pixels;
    per mask the mean over pixels, summed over the image's labels, averaged over the batch."""
    flat = masks.flatten(2)
    n = flat.shape[-1]
    s = flat.sort(dim=-1, descending=True).values
    rank = torch.arange(n, device=s.device)
    lo = (rank < int(n * a_min)).to(s.dtype)
    hi = (rank < int(n * a_max)).to(s.dtype)
    per = F.relu(lo - s).mean(-1) + F.relu(s - hi).mean(-1)
    return (per * valid.to(per.dtype)).sum(1).mean()


def explainer_losses(explainer: Explainer, x: torch.Tensor, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """Every loss term for a normalised batch ``x`` (B, 3, H, W); ``loss`` is the weighted total."""
    model = explainer.model
    S, logits = explainer.logit_maps(x)  # (B, K, h, w) with grad; (B, K) without
    probs = logits.softmax(1)
    B, K, h, w = S.shape
    HW = tuple(x.shape[-2:])
    idx, valid, y = pseudo_labels(probs, cfg.topk, cfg.threshold)
    yb = y[:, :, None, None]
    t_low = S.masked_fill(~yb, float("-inf")).amax(1, keepdim=True)
    n_low = S.masked_fill(yb, float("-inf")).amax(1, keepdim=True)
    m = explainer.upsample(t_low, HW).sigmoid()
    n = explainer.upsample(n_low, HW).sigmoid()
    out = model(torch.cat([m * x, (1 - m) * x])).float()
    masked, inverted = out[:B], out[B:]
    q = probs * y
    q = q / q.sum(1, keepdim=True)
    l_c = -(q * masked.log_softmax(1)).sum(1).mean()
    p_inv = inverted.softmax(1)
    l_e = (p_inv * p_inv.clamp_min(1e-16).log()).mean()  # −(entropy elements).mean() over batch and classes
    class_maps = S.gather(1, idx[:, :, None, None].expand(-1, -1, h, w))
    l_a = area_loss(explainer.upsample(class_maps, HW).sigmoid(), valid, cfg.a_min, cfg.a_max)
    l_tv = total_variation(m) + total_variation(n)
    l_m, l_nc = m.mean(), n.mean()
    loss = l_c + cfg.lambda_e * l_e + cfg.lambda_a * l_a + cfg.lambda_tv * l_tv + cfg.lambda_m * l_m + cfg.lambda_nc * l_nc
    return {"loss": loss, "cls": l_c, "ent": l_e, "area": l_a, "tv": l_tv, "mask": l_m, "nontarget": l_nc,
            "labels": valid.sum(1).float().mean()}


# --------------------------------------------------------------------------- the trainer
@dataclass
class TrainProgress:
    """One optimisation step, as the training generator yields it."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based within the epoch
    steps: int
    global_step: int
    loss: float
    parts: dict[str, float]
    images_per_s: float
    saved: str | None = None  # the checkpoint written after this step, if any

    def line(self) -> str:
        names = ("cls", "ent", "area", "tv", "mask", "nontarget")
        parts = " ".join(f"{k} {self.parts[k]:+.4f}" for k in names if k in self.parts)
        return (f"epoch {self.epoch}/{self.epochs} step {self.step}/{self.steps}: loss {self.loss:.4f} ({parts}) "
                f"{self.images_per_s:.1f} img/s" + (f"; saved {self.saved}" if self.saved else ""))


class Trainer:
    """Trains an explainer head for ``model`` on an ``ImageSet``; resumable from its checkpoints."""

    def __init__(self, model: LoadedModel, images: ImageSet, config: TrainConfig | None = None,
                 explainer: Explainer | None = None, state: dict[str, Any] | None = None):
        self.cfg = config or TrainConfig()
        self.cfg.check()
        self.model = model
        self.images = images
        self.explainer = explainer or Explainer.new(model, self.cfg.taps or None, self.cfg.width, self.cfg.seed)
        self.cfg.taps = tuple(self.explainer.taps)
        self.head = self.explainer.head
        self.size = int(self.cfg.size or max(model.preprocess.input_size))
        self.opt = torch.optim.Adam(self.head.parameters(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(int(self.cfg.seed))
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self._queue: list[int] = []
        if state:
            self.opt.load_state_dict(state["optimizer"])
            for group in self.opt.param_groups:
                group["lr"] = self.cfg.lr
            self.gen.set_state(state["generator"])
            self.epoch = int(state["epoch"])
            self.global_step = int(state["global_step"])
            self.history = list(state.get("history", []))
            self._queue = [int(i) for i in state.get("queue", [])]

    @classmethod
    def resume(cls, path: str | Path, model: LoadedModel, images: ImageSet, **overrides: Any) -> "Trainer":
        """Continue from a checkpoint written by ``save`` (its settings, with ``overrides`` applied)."""
        ckpt = read_checkpoint(path)
        check_compatible(ckpt, model, path)
        state = ckpt.get("training")
        if not state:
            raise FileError(path, "holds the head only, no training state to resume from (a shipped/exported checkpoint)")
        cfg = TrainConfig.from_record(state["config"])
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cls(model, images, cfg, Explainer.load(path, model), state)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.images) / self.cfg.batch_size))

    def _next_index(self) -> int:
        if not self._queue:
            self._queue = torch.randperm(len(self.images), generator=self.gen).tolist()
        return self._queue.pop()

    def sample_batch(self, n: int | None = None) -> torch.Tensor:
        """A normalised batch of ``n`` (default batch size) augmented images on the model's device."""
        n = n or self.cfg.batch_size
        out = []
        while len(out) < n:
            i = self._next_index()
            if i >= len(self.images):  # the list shrank (an image turned out unreadable)
                self._queue = []
                continue
            rgb = self.images.load(self.images.paths[i])
            if rgb is None:
                self._queue = []
                continue
            out.append(augment(rgb, self.size, self.gen, min_scale=self.cfg.min_scale, jitter=self.cfg.jitter))
        return self.model.preprocess.normalise(torch.stack(out), self.model.device)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return explainer_losses(self.explainer, x, self.cfg)

    def evaluate(self, x: torch.Tensor) -> dict[str, float]:
        """Loss terms on ``x`` without updating (head in eval mode; GroupNorm makes it the same as training)."""
        with torch.no_grad():
            return {k: float(v) for k, v in self.losses(x).items()}

    def step(self, x: torch.Tensor) -> dict[str, float]:
        self.head.train()
        self.opt.zero_grad(set_to_none=True)
        terms = self.losses(x)
        if not torch.isfinite(terms["loss"]):
            raise ExplorerError("the training loss became NaN or infinite; lower --lr")
        terms["loss"].backward()
        self.opt.step()
        self.head.eval()
        self.global_step += 1
        return {k: float(v.detach()) for k, v in terms.items()}

    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "epoch": self.epoch, "global_step": self.global_step,
                "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(), "history": self.history,
                "queue": list(self._queue)}

    def save(self, path: str | Path, training_state: bool = True) -> Path:
        """A checkpoint: head + the classifier's id and fingerprint (+ optimizer etc. for resume)."""
        extra = {"trained_on": {"folder": str(self.images.root), "images": len(self.images)},
                 "epochs": self.epoch, "steps": self.global_step, "config": asdict(self.cfg),
                 "last_epoch_loss": self.history[-1] if self.history else None}
        return self.explainer.save(path, self.state() if training_state else None, extra)

    def run(self, epochs: int | None = None, out: str | Path | None = None,
            cancel: CancelToken = NEVER) -> Iterator[TrainProgress]:
        """Train until ``epochs`` epochs are done in total (resumed ones count), yielding every step and
        saving ``out`` after every epoch (and when cancelled)."""
        epochs = int(epochs or self.cfg.epochs)
        self.cfg.epochs = epochs
        try:
            while self.epoch < epochs:
                sums: dict[str, float] = {}
                steps = self.steps_per_epoch
                for s in range(1, steps + 1):
                    if cancel.cancelled:
                        if out:
                            self.save(out)
                        return
                    t0 = time.perf_counter()
                    x = self.sample_batch()
                    terms = self.step(x)
                    dt = time.perf_counter() - t0
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    saved = None
                    if s == steps:
                        self.epoch += 1
                        self.history.append({k: v / steps for k, v in sums.items()})
                        if out:
                            saved = str(self.save(out))
                    yield TrainProgress(self.epoch + (0 if s == steps else 1), epochs, s, steps, self.global_step,
                                        terms["loss"], {k: v for k, v in terms.items() if k != "loss"},
                                        x.shape[0] / max(dt, 1e-9), saved)
        except RuntimeError as exc:
            from explorer.models.device import is_oom

            if is_oom(exc):
                raise ExplorerError(f"out of memory at batch size {self.cfg.batch_size}; use a smaller --batch-size "
                                    "or --size") from None
            raise


def train_explainer(model: LoadedModel, folder: str | Path, config: TrainConfig | None = None, *,
                    out: str | Path | None = None, resume: str | Path | None = None,
                    cancel: CancelToken = NEVER, **overrides: Any) -> Iterator[TrainProgress]:
    """Scan ``folder`` and train (or resume), yielding a ``TrainProgress`` per step."""
    images = scan_folder(folder)
    if resume:
        trainer = Trainer.resume(resume, model, images, **overrides)
    else:
        trainer = Trainer(model, images, config)
    yield from trainer.run(out=out, cancel=cancel)


# --------------------------------------------------------------------------- command line
def add_parser(sub) -> None:
    """``explorer train-explainer DIR ...`` (registered through cli.EXTRA_COMMANDS)."""
    from explorer.cli import add_model_args
    from explorer.core import argtypes as T

    d = TrainConfig()
    p = sub.add_parser(
        "train-explainer", help="train an explainer network (class masks in one forward pass) on a folder of images",
        description="Train the explainer head of Stalder et al. 2022 for a classifier on a folder of images "
                    "(any layout, searched recursively; no labels needed: the classifier's own confident "
                    "predictions are the labels). Writes a checkpoint after every epoch; --resume continues one.")
    p.add_argument("folder", metavar="DIR", type=T.existing_dir("folder of training images"), help="folder of training images")
    p.add_argument("--epochs", type=T.integer(1), default=None, help=f"total epochs (default {d.epochs}; with --resume: the total to reach)")
    p.add_argument("--batch-size", type=T.integer(1), default=None, help=f"images per step (default {d.batch_size})")
    p.add_argument("--lr", type=T.number(0.0, 1.0, low_open=True), default=None, help=f"Adam learning rate (default {d.lr:g})")
    p.add_argument("--size", type=T.integer(0, 1024), default=None, help="training resolution in pixels (default: the model's input size)")
    p.add_argument("--topk", type=T.integer(1), default=None, help=f"at most this many pseudo-labels per image (default {d.topk})")
    p.add_argument("--threshold", type=T.number(0.0, 1.0), default=None,
                   help=f"probability a class needs to be a pseudo-label besides the top-1 (default {d.threshold:g})")
    p.add_argument("--width", type=T.integer(8), default=None, help=f"channels of the head (default {d.width})")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=None, help="seed of the initialisation, sampling and augmentation (default 0)")
    p.add_argument("--out", default=None, metavar="CKPT", type=T.output_file("checkpoint file"), help="checkpoint to write (default: explainer_<model>.pt; "
                                                               "with --resume: the resumed file)")
    p.add_argument("--resume", default=None, metavar="CKPT", type=T.existing_file("checkpoint"), help="continue training from this checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the summary, not every step")
    add_model_args(p)
    p.set_defaults(func=cmd_train_explainer)


def cmd_train_explainer(args) -> int:
    import re
    import sys

    from explorer.cli import model_from_args

    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "size": args.size,
             "topk": args.topk, "threshold": args.threshold, "width": args.width, "seed": args.seed}

    def show(message, category, filename, lineno, file=None, line=None):  # one plain line per skipped file
        print(f"explorer: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedImageWarning)
        warnings.showwarning = show
        model = model_from_args(args)
        images = scan_folder(args.folder)
        if args.resume:
            if args.width is not None:
                raise ParamError("--width cannot change when resuming (the head's shape is in the checkpoint)")
            trainer = Trainer.resume(args.resume, model, images, **{k: v for k, v in flags.items() if k != "width"})
            out = args.out or args.resume
        else:
            cfg = TrainConfig(**{k: v for k, v in flags.items() if v is not None})
            trainer = Trainer(model, images, cfg)
            out = args.out or f"explainer_{re.sub(r'[^A-Za-z0-9_.-]+', '_', model.id)}.pt"
        print(f"training an explainer for {model.id} ({fingerprint(model)}) on {len(images)} image(s) from "
              f"{args.folder}" + (f" ({describe_skipped(images.skipped)})" if images.skipped else "")
              + f"; taps {', '.join(trainer.explainer.taps)}; device {model.device}", file=sys.stderr)
        t0 = time.perf_counter()
        last = None
        for prog in trainer.run(out=out):
            last = prog
            if not args.quiet:
                print(prog.line(), flush=True)
    if last is None:
        print(f"nothing to do: {out} already has {trainer.epoch} epoch(s) (ask for more with --epochs)")
        return 0
    print(f"done: {trainer.epoch} epoch(s), {trainer.global_step} step(s) in {time.perf_counter() - t0:.1f} s; "
          f"last loss {last.loss:.4f}; wrote {out}")
    return 0

"""Training the explainer head for a frozen classifier over a folder of images (no annotations needed).

The objective (Stalder et al. 2022, the paper's losses and weights, with this project's label and candidate
choices) is in ``losses``; the folder and the held-out split in ``data``; crops, flips, colour jitter and the
2- and 4-photo composites in ``augment``. This module holds the settings, the resumable trainer and
``prepare_training``, what ``explorer train-explainer`` (``explorer/cli/train_explainer.py``) runs. Every
random draw (initialisation, sampling order, augmentation) comes from the seed, and a checkpoint holds the
optimizer, the generator state and the sampling queue, so a resumed run continues exactly where an
interrupted one stopped.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.errors import FileError, ParamError
from explorer.methods.explainer_net.augment import Sample, augment, compose, draw_count
from explorer.methods.explainer_net.data import (  # noqa: F401 - re-exported: the training API in one place
    ImageSet,
    SkippedImageWarning,
    describe_skipped,
    scan_folder,
    split_holdout,
)
from explorer.methods.explainer_net.losses import (  # noqa: F401 - re-exported: the training API in one place
    area_loss,
    explainer_losses,
    pseudo_labels,
    total_variation,
)
from explorer.methods.explainer_net.model import Explainer, check_compatible, read_checkpoint
from explorer.methods.training import EpochLoop, TrainingSettings
from explorer.models.loaded import LoadedModel


# --------------------------------------------------------------------------- settings
@dataclass
class TrainConfig(TrainingSettings):
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
    pair: float = 0.0  # probability that a frame is a composite of 2 photos (side by side or stacked)
    quad: float = 0.0  # ... of 4 photos in a 2x2 grid
    candidates: int = 32  # non-target mask: max over this many classes the classifier scores highest
    scalar_lr: float = 1.0  # learning-rate factor of the mask's global scale and threshold
    hold_out_every: int = 0  # every n-th image of the sorted folder is held out (never trained on); 0 = none
    head: str = "tied"  # the head design (heads.KINDS): "tied" (version 2, shipped) or "guided" (version 3)

    def check(self) -> None:
        self.check_common()
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
        if not (0 <= self.pair <= 1 and 0 <= self.quad <= 1 and self.pair + self.quad <= 1):
            raise ParamError(f"--pair ({self.pair}) and --quad ({self.quad}) are probabilities summing to at most 1")
        if self.candidates < 1:
            raise ParamError(f"candidates = {self.candidates} must be >= 1")


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


class Trainer(EpochLoop):
    """Trains an explainer head for ``model`` on an ``ImageSet``; resumable from its checkpoints."""

    progress = TrainProgress
    save_on_cancel = True
    eval_after_step = True

    def __init__(self, model: LoadedModel, images: ImageSet, config: TrainConfig | None = None,
                 explainer: Explainer | None = None, state: dict[str, Any] | None = None):
        self.cfg = config or TrainConfig()
        self.cfg.check()
        self.model = model
        self.folder = images
        self.images, self.held_out = split_holdout(images, self.cfg.hold_out_every)
        self.explainer = explainer or Explainer.new(model, self.cfg.taps or None, self.cfg.width, self.cfg.seed,
                                                           self.cfg.head)
        self.cfg.taps = tuple(self.explainer.taps)
        self.head = self.explainer.head
        self.trained = self.head
        self.size = int(self.cfg.size or max(model.preprocess.input_size))
        self.opt = torch.optim.Adam(self._groups(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(int(self.cfg.seed))
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.step_losses: list[float] = []  # every step's total loss: the training curve
        self._queue: list[int] = []
        if state:
            self.restore(state, [group["lr"] for group in self._groups()])

    def _groups(self) -> list[dict[str, Any]]:
        """Adam groups: the head, and the mask's global scale and threshold (two scalars) at ``scalar_lr``
        times the learning rate. A factor of 10 was tried on the shared photos: the threshold then ran
        towards "keep everything" (masks over half the frame within 15 steps), so the default is 1."""
        scalars = [p for n, p in self.head.named_parameters() if n in ("log_scale", "shift")]
        rest = [p for n, p in self.head.named_parameters() if n not in ("log_scale", "shift")]
        groups = [{"params": rest, "lr": self.cfg.lr}]
        if scalars:
            groups.append({"params": scalars, "lr": self.cfg.lr * self.cfg.scalar_lr})
        return groups

    @classmethod
    def resume(cls, path: str | Path, model: LoadedModel, images: ImageSet, **overrides: Any) -> "Trainer":
        """Continue from a checkpoint written by ``save`` (its settings, with ``overrides`` applied)."""
        ckpt = read_checkpoint(path)
        check_compatible(ckpt, model, path)
        state = ckpt.get("training")
        if not state:
            raise FileError(path,
                            "holds the head only, no training state to resume from (a shipped/exported checkpoint)")
        cfg = TrainConfig.resumed(state, path, overrides)
        explainer = Explainer.load(path, model)
        cfg.head = explainer.head.kind  # a checkpoint from before the field existed holds a version-2 head
        return cls(model, images, cfg, explainer, state)

    def _next_photo(self):
        return self.images.draw(self._queue, self.gen)

    def sample_batch(self, n: int | None = None) -> tuple[torch.Tensor, list[list[tuple[int, int, int, int]]]]:
        """A normalised batch of ``n`` (default batch size) augmented frames on the model's device, and the
        part boxes of each frame (composites of 2 or 4 photos with probabilities ``pair`` and ``quad``)."""
        n = n or self.cfg.batch_size
        frames, parts = [], []
        for _ in range(n):
            count, vertical = draw_count(self.gen, self.cfg.pair, self.cfg.quad)
            photos = [self._next_photo() for _ in range(count)]
            if count == 1:
                sample = Sample(augment(photos[0], self.size, self.gen, min_scale=self.cfg.min_scale,
                                        jitter=self.cfg.jitter), [(0, 0, self.size, self.size)])
            else:
                sample = compose(photos, self.size, self.gen, vertical=vertical, min_scale=self.cfg.min_scale,
                                 jitter=self.cfg.jitter)
            frames.append(sample.image)
            parts.append(sample.parts)
        return self.model.preprocess.normalise(torch.stack(frames), self.model.device), parts

    def losses(self, batch) -> dict[str, torch.Tensor]:
        x, parts = batch
        return explainer_losses(self.explainer, x, parts, self.cfg)

    def evaluate(self, batch) -> dict[str, float]:
        """Loss terms on a batch without updating (head in eval mode; GroupNorm makes it the same as training)."""
        with torch.no_grad():
            return {k: float(v) for k, v in self.losses(batch).items()}

    def save(self, path: str | Path, training_state: bool = True) -> Path:
        """A checkpoint: head + the classifier's id and fingerprint (+ optimizer etc. for resume)."""
        extra = {"trained_on": self.trained_on(),
                 "epochs": self.epoch, "steps": self.global_step, "config": asdict(self.cfg),
                 "last_epoch_loss": self.history[-1] if self.history else None}
        return self.explainer.save(path, self.state() if training_state else None, extra)


def check_softmax(model: LoadedModel) -> None:
    """The training loss (cross-entropy against the classifier's class distribution) needs a softmax model."""
    if model.activation != "softmax":
        raise ParamError(f"the explainer network learns from a softmax classifier's class distribution; model "
                         f"{model.id!r} scores with {model.activation}")


def train_explainer(model: LoadedModel, folder: str | Path, config: TrainConfig | None = None, *,
                    out: str | Path | None = None, resume: str | Path | None = None,
                    cancel: CancelToken = NEVER, **overrides: Any) -> Iterator[TrainProgress]:
    """Scan ``folder`` and train (or resume), yielding a ``TrainProgress`` per step."""
    check_softmax(model)
    images = scan_folder(folder)
    if resume:
        trainer = Trainer.resume(resume, model, images, **overrides)
    else:
        trainer = Trainer(model, images, config)
    yield from trainer.run(out=out, cancel=cancel)


def prepare_training(model: LoadedModel, folder: str | Path, settings: dict[str, Any], *,
                     resume: str | Path | None = None, out: str | Path | None = None) -> tuple[Trainer, str | Path]:
    """The trainer ``explorer train-explainer`` runs, and the checkpoint it writes (``out``; else the resumed
    file; else ``explainer_<model id>.pt``). ``settings``: ``TrainConfig`` fields, None for the default (with
    ``resume``: the checkpoint's; its ``width`` and ``hold_out_every`` cannot change). The photos are kept
    decoded at 1.5x the training size: enough for the crops, and quick to augment."""
    check_softmax(model)
    settings = {k: v for k, v in settings.items() if v is not None}
    size = settings.get("size") or max(model.preprocess.input_size)
    images = scan_folder(folder, short_side=max(256, round(1.5 * size)))
    if resume:
        for name in ("width", "hold_out_every", "head"):
            if name in settings:
                raise ParamError(f"--{name.replace('_', '-')} cannot change when resuming (it is in the checkpoint)")
        return Trainer.resume(resume, model, images, **settings), out or resume
    default_out = f"explainer_{re.sub(r'[^A-Za-z0-9_.-]+', '_', model.id)}.pt"
    return Trainer(model, images, TrainConfig(**settings)), out or default_out

"""Training the learned in-painter on a folder of photos (no labels): what ``explorer train-inpainter`` runs.

The photos and the held-out split are the explainer's (``explainer_net.data``: the same sorted listing, every
``hold_out_every``-th photo held out, never trained on), and so is the augmentation (random resized crops,
flips, colour jitter: ``explainer_net.augment``). Holes are the masks FIDO and RISE hand to an in-filler
(``masks``). Loss, on the hole pixels only (the kept ones are copied through): L1 + ``edge`` x L1 of the
horizontal and vertical differences (sharper fills than L1 alone). Every random draw comes from the seed; a
checkpoint holds the network, the optimizer, the generator state and the sampling queue, so a resumed run
continues exactly where an interrupted one stopped. Each epoch also scores a fixed set of held-out crops and
holes (its own generator, so it never moves the training draws): the validation curve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from explorer.core.errors import FileError, ParamError
from explorer.methods.explainer_net.augment import augment
from explorer.methods.explainer_net.data import ImageSet, scan_folder, split_holdout
from explorer.methods.inpainting.masks import hole_batch
from explorer.methods.training import EpochLoop, TrainingSettings
from explorer.perturb.inpainter import InpaintNet, build, read_checkpoint, record

VALIDATION_CROPS = 16


@dataclass
class InpaintConfig(TrainingSettings):
    epochs: int = 24
    batch_size: int = 8
    lr: float = 1e-3
    size: int = 128  # training crop side
    width: int = 24  # channels of the first level (the net has 24 x (1, 2, 4, 4))
    edge: float = 0.5  # weight of the L1 on image differences
    seed: int = 0
    min_scale: float = 0.15
    jitter: float = 0.4
    hold_out_every: int = 5  # the explainer's split of the 500 shared photos: 400 trained on, 100 held out

    def check(self) -> None:
        self.check_common()
        if not 32 <= self.size <= 1024:
            raise ParamError(f"--size = {self.size} must be between 32 and 1024 pixels")
        if not 4 <= self.width <= 512:
            raise ParamError(f"--width = {self.width} must be between 4 and 512")


def hole_losses(out: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, edge: float) -> dict[str, torch.Tensor]:
    """L1 over the hole pixels, and L1 of the image differences where either neighbour is a hole."""
    n = hole.sum().clamp_min(1.0) * out.shape[1]
    l1 = ((out - target).abs() * hole).sum() / n
    terms = {"l1": l1}
    grad = out.new_zeros(())
    for dim in (-1, -2):
        d_out, d_tgt = out.diff(dim=dim), target.diff(dim=dim)
        h = hole.narrow(dim, 0, hole.shape[dim] - 1).maximum(hole.narrow(dim, 1, hole.shape[dim] - 1))
        grad = grad + ((d_out - d_tgt).abs() * h).sum() / (h.sum().clamp_min(1.0) * out.shape[1])
    terms["edge"] = grad
    terms["loss"] = l1 + edge * grad
    return terms


@dataclass
class InpaintProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    global_step: int
    loss: float
    parts: dict[str, float]
    images_per_s: float
    saved: str | None = None

    def line(self) -> str:
        parts = " ".join(f"{k} {v:.4f}" for k, v in self.parts.items())
        return (f"epoch {self.epoch}/{self.epochs} step {self.step}/{self.steps}: loss {self.loss:.4f} ({parts}) "
                f"{self.images_per_s:.1f} img/s" + (f"; saved {self.saved}" if self.saved else ""))


class InpaintTrainer(EpochLoop):
    """Trains an ``InpaintNet`` on an ``ImageSet`` (the held-out photos split off first); resumable."""

    progress = InpaintProgress

    def __init__(self, images: ImageSet, config: InpaintConfig | None = None, device: str | torch.device = "cpu",
                 net: InpaintNet | None = None, state: dict[str, Any] | None = None):
        self.cfg = config or InpaintConfig()
        self.cfg.check()
        self.device = torch.device(device)
        self.folder = images
        self.images, self.held_out = split_holdout(images, self.cfg.hold_out_every)
        if net is None:
            torch.manual_seed(int(self.cfg.seed))  # the initialisation: seeded like every other draw
            net = InpaintNet(self.cfg.width)
        self.net = net.to(self.device)
        self.trained = self.net
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        self.gen = torch.Generator().manual_seed(int(self.cfg.seed))
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.step_losses: list[float] = []
        self._queue: list[int] = []
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None
        if state:
            self.restore(state, [self.cfg.lr] * len(self.opt.param_groups))

    @classmethod
    def resume(cls, path: str | Path, images: ImageSet, device: str | torch.device = "cpu",
               **overrides: Any) -> "InpaintTrainer":
        ckpt = read_checkpoint(path)
        state = ckpt.get("training")
        if not isinstance(state, dict):
            raise FileError(path, "holds the in-painter only, no training state to resume from (a shipped checkpoint)")
        cfg = InpaintConfig.resumed(state, path, overrides)
        try:
            return cls(images, cfg, device, build(ckpt, path), state)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise FileError(path, f"training state does not fit its network ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None

    def _next_photo(self):
        return self.images.draw(self._queue, self.gen)

    def sample_batch(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images (n, 3, S, S) in [0, 1], holes (n, 1, S, S)) on the training device; every draw from the seed."""
        n = n or self.cfg.batch_size
        s = self.cfg.size
        frames = [augment(self._next_photo(), s, self.gen, min_scale=self.cfg.min_scale, jitter=self.cfg.jitter)
                  for _ in range(n)]
        holes = hole_batch(n, s, self.gen)
        return torch.stack(frames).to(self.device), holes.to(self.device)

    def validation_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Fixed crops of the held-out photos (centre-ish, no jitter) and fixed holes, from their own seed."""
        if self._val is None and self.held_out:
            g = torch.Generator().manual_seed(int(self.cfg.seed) + 1)
            rgbs = [self.folder.load(p) for p in self.held_out[:VALIDATION_CROPS]]
            frames = [augment(r, self.cfg.size, g, min_scale=0.5, jitter=0.0, hue=0.0) for r in rgbs if r is not None]
            if frames:
                self._val = (torch.stack(frames).to(self.device), hole_batch(len(frames), self.cfg.size, g)
                             .to(self.device))
        return self._val

    def validate(self) -> dict[str, float]:
        batch = self.validation_batch()
        if batch is None:
            return {}
        x, hole = batch
        self.net.eval()
        with torch.no_grad():
            terms = hole_losses(self.net(x, hole), x, hole, self.cfg.edge)
        return {"val_" + k: float(v) for k, v in terms.items()}

    def losses(self, batch) -> dict[str, torch.Tensor]:
        x, hole = batch
        return hole_losses(self.net(x, hole), x, hole, self.cfg.edge)

    def epoch_extras(self) -> dict[str, float]:
        return self.validate()

    def save(self, path: str | Path, training_state: bool = True) -> Path:
        """The checkpoint (network + what it was trained on; + the trainer's state for resuming), written
        whole under a temporary name and renamed."""
        path = Path(path)
        rec = record(self.net, self.cfg.size, epochs=self.epoch, steps=self.global_step, config=asdict(self.cfg),
                     trained_on=self.trained_on(),
                     last_epoch=self.history[-1] if self.history else None)
        if training_state:
            rec["training"] = self.state()
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(rec, tmp)
            tmp.replace(path)
        except OSError as exc:
            raise FileError(path, f"cannot write the checkpoint: {exc.strerror or exc}") from None
        return path


def prepare_training(folder: str | Path, settings: dict[str, Any], *, device: str | torch.device = "cpu",
                     resume: str | Path | None = None, out: str | Path | None = None
                     ) -> tuple[InpaintTrainer, str | Path]:
    """The trainer ``explorer train-inpainter`` runs and the checkpoint it writes (``out``; else the resumed
    file; else ``inpainter.pt``). With ``resume`` the checkpoint's settings hold; ``width``, ``size`` and
    ``hold_out_every`` cannot change. Photos are kept decoded at 1.5x the crop side."""
    settings = {k: v for k, v in settings.items() if v is not None}
    if resume:
        for name in ("width", "size", "hold_out_every"):
            if name in settings:
                raise ParamError(f"--{name.replace('_', '-')} cannot change when resuming (it is in the checkpoint)")
        size = read_checkpoint(resume)["size"]
    else:
        size = settings.get("size") or InpaintConfig.size
    images = scan_folder(folder, short_side=max(64, round(1.5 * size)))
    if resume:
        return InpaintTrainer.resume(resume, images, device, **settings), out or resume
    return InpaintTrainer(images, InpaintConfig(**settings), device), out or "inpainter.pt"

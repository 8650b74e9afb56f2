"""The seeded, resumable epoch loop that explorer's two trainers share (the explainer head, the in-painter).

A trainer keeps its own model, data and checkpoint format; what this loop owns is the part that must behave the
same in both for ``--resume`` to continue exactly: one optimiser step per batch, the running state that a
checkpoint records (epoch, step, optimiser, generator, history, the photo queue), and the epoch loop that
yields a progress record per step and writes the checkpoint after every epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterator

import torch

from explorer.core.cancel import NEVER, CancelToken
from explorer.core.errors import ExplorerError, FileError, ParamError


class TrainingSettings:
    """Mixin of the two trainers' settings dataclasses (``epochs``, ``batch_size``, ``lr``, ``hold_out_every``
    and their own): the checks both share and the reading back from a checkpoint's record."""

    def check_common(self) -> None:
        if self.epochs < 1:
            raise ParamError(f"--epochs = {self.epochs} must be >= 1")
        if self.batch_size < 1:
            raise ParamError(f"--batch-size = {self.batch_size} must be >= 1")
        if not 0 < self.lr < 1:
            raise ParamError(f"--lr = {self.lr} must be between 0 and 1")
        if self.hold_out_every < 0 or self.hold_out_every == 1:
            raise ParamError(f"--hold-out-every = {self.hold_out_every} must be 0 (none) or >= 2")

    @classmethod
    def from_record(cls, rec: dict[str, Any]):
        """The settings a checkpoint recorded (keys this version does not know are left out; lists that were
        tuples become tuples again)."""
        kinds = {f.name: f.type for f in fields(cls)}
        vals = {k: v for k, v in rec.items() if k in kinds}
        vals.update({k: tuple(v) for k, v in vals.items() if isinstance(v, list) and "tuple" in str(kinds[k])})
        return cls(**vals)

    @classmethod
    def resumed(cls, state: dict, path, overrides: dict[str, Any]):
        """The settings of a checkpoint's training state, with the given non-None ``overrides`` applied (what a
        resumed run changes, e.g. more epochs); a damaged record is a one-line FileError naming ``path``."""
        try:
            cfg = cls.from_record(state["config"])
        except (KeyError, TypeError) as exc:
            raise FileError(path, f"training state is incomplete or damaged ({exc})") from None
        for k, v in overrides.items():
            if v is not None:
                setattr(cfg, k, v)
        return cfg


class EpochLoop:
    """Mixin. The subclass sets ``cfg`` (with ``epochs``, ``batch_size``), ``images``, ``opt``, ``gen``,
    ``epoch``, ``global_step``, ``history``, ``step_losses``, ``_queue`` and defines ``trained`` (the module
    being trained), ``sample_batch()``, ``losses(batch)`` and ``save(path)``; ``progress`` is the record type
    yielded per step."""

    progress: type
    save_on_cancel = False  # the explainer's trainer keeps a cancelled run's epoch so far; the in-painter's does not
    eval_after_step = False  # the explainer head is used between steps (evaluate) in eval mode

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.images) / self.cfg.batch_size))

    def restore(self, state: dict[str, Any], lrs: list[float]) -> None:
        """Put a checkpoint's training state back; ``lrs``: each parameter group's learning rate from the
        configuration, which a resume may change."""
        self.opt.load_state_dict(state["optimizer"])
        for group, lr in zip(self.opt.param_groups, lrs):
            group["lr"] = lr
        self.gen.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))
        self.step_losses = [float(v) for v in state.get("step_losses", [])]
        self._queue = [int(i) for i in state.get("queue", [])]

    def step(self, batch) -> dict[str, float]:
        self.trained.train()
        self.opt.zero_grad(set_to_none=True)
        terms = self.losses(batch)
        if not torch.isfinite(terms["loss"]):
            raise ExplorerError("the training loss became NaN or infinite; lower --lr")
        terms["loss"].backward()
        self.opt.step()
        if self.eval_after_step:
            self.trained.eval()
        self.global_step += 1
        out = {k: float(v.detach()) for k, v in terms.items()}
        self.step_losses.append(out["loss"])
        return out

    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "epoch": self.epoch, "global_step": self.global_step,
                "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(), "history": self.history,
                "step_losses": list(self.step_losses), "queue": list(self._queue)}

    def trained_on(self) -> dict[str, Any]:
        """What a checkpoint says it was trained on: the folder, how many images, the held-out split."""
        return {"folder": str(self.images.root), "images": len(self.images),
                "held_out": [p.name for p in self.held_out], "hold_out_every": self.cfg.hold_out_every}

    def epoch_extras(self) -> dict[str, float]:
        """Figures added to an epoch's history entry beside the mean loss terms (e.g. held-out losses)."""
        return {}

    def run(self, epochs: int | None = None, out: str | Path | None = None,
            cancel: CancelToken = NEVER) -> Iterator[Any]:
        """Train until ``epochs`` epochs are done in total (resumed ones count), yielding every step and saving
        ``out`` after every epoch."""
        epochs = int(epochs or self.cfg.epochs)
        self.cfg.epochs = epochs
        try:
            while self.epoch < epochs:
                sums: dict[str, float] = {}
                steps = self.steps_per_epoch
                for s in range(1, steps + 1):
                    if cancel.cancelled:
                        if out and self.save_on_cancel:
                            self.save(out)
                        return
                    t0 = time.perf_counter()
                    batch = self.sample_batch()
                    terms = self.step(batch)
                    dt = time.perf_counter() - t0
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    saved = None
                    if s == steps:
                        self.epoch += 1
                        self.history.append({**{k: v / steps for k, v in sums.items()}, **self.epoch_extras()})
                        if out:
                            saved = str(self.save(out))
                    yield self.progress(self.epoch + (0 if s == steps else 1), epochs, s, steps, self.global_step,
                                        terms["loss"], {k: v for k, v in terms.items() if k != "loss"},
                                        batch[0].shape[0] / max(dt, 1e-9), saved)
        except RuntimeError as exc:
            from explorer.models.device import is_oom

            if is_oom(exc):
                raise ExplorerError(f"out of memory at batch size {self.cfg.batch_size}; use a smaller --batch-size "
                                    "or --size") from None
            raise

"""What ``explorer train-explainer`` and ``explorer train-inpainter`` share: the folder and the options of the
epoch loop (``methods/training.py``), the help texts that name the trainer's defaults, skipped files as one
warning line each, and the loop that prints every step and the summary.

Cheap on purpose, like ``common``: the trainer's config class (which imports torch) is read only when the help
is formatted, through ``Parser(late=...)``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

from explorer.core import argtypes as T


def help_defaults(module: str, config: str) -> Callable:
    """A ``late`` hook that fills ``{d.NAME}`` in the help texts with the defaults of the config class
    ``module.config`` (imported only then: it imports torch)."""

    def fill(p) -> None:
        import importlib

        d = getattr(importlib.import_module(module), config)()
        for a in p._actions:
            if a.help:
                a.help = a.help.format(d=d)

    return fill


def add_loop_args(p, *, batch: str, curve: str, seed: str, out: str) -> None:
    """The folder and the options every trainer has (their help texts differ only in what a batch holds, what
    the curve shows, what the seed seeds and the default checkpoint name)."""
    p.add_argument("folder", metavar="DIR", type=T.existing_dir("folder of training images"),
                   help="folder of training images")
    p.add_argument("--epochs", type=T.integer(1), default=None,
                   help="total epochs (default {d.epochs}; with --resume: the total to reach)")
    p.add_argument("--batch-size", type=T.integer(1), default=None, help=f"{batch} per step (default {{d.batch_size}})")
    p.add_argument("--lr", type=T.number(0.0, 1.0, low_open=True), default=None,
                   help="Adam learning rate (default {d.lr:g})")
    p.add_argument("--curve", default=None, metavar="PNG", type=T.output_file("training curve"),
                   help=f"write the training curve ({curve}) to this PNG after every epoch")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=None, help=f"seed of {seed}")
    p.add_argument("--out", default=None, metavar="CKPT", type=T.output_file("checkpoint file"),
                   help=f"checkpoint to write (default: {out}; with --resume: the resumed file)")
    p.add_argument("--resume", default=None, metavar="CKPT", type=T.existing_file("checkpoint"),
                   help="continue training from this checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the summary, not every step")


@contextlib.contextmanager
def skipped_files_as_lines() -> Iterator[None]:
    """Every file the folder skips becomes one plain ``explorer: warning:`` line on stderr, each time."""
    import warnings

    from explorer.methods.explainer_net.data import SkippedImageWarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"explorer: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedImageWarning)
        warnings.showwarning = show
        yield


def run_loop(trainer, out, quiet: bool, on_epoch: Callable[[float], None]) -> int:
    """Runs ``trainer`` to its last epoch, printing each step unless ``quiet`` and calling ``on_epoch(t0)``
    after every saved epoch; then the summary line. Exit code 0."""
    t0 = time.perf_counter()
    last = None
    for prog in trainer.run(out=out):
        last = prog
        if not quiet:
            print(prog.line(), flush=True)
        if prog.saved:
            on_epoch(t0)
    if last is None:
        print(f"nothing to do: {out} already has {trainer.epoch} epoch(s) (ask for more with --epochs)")
        return 0
    print(f"done: {trainer.epoch} epoch(s), {trainer.global_step} step(s) in {time.perf_counter() - t0:.1f} s; "
          f"last loss {last.loss:.4f}; wrote {out}")
    return 0

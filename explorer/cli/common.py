"""What every subcommand shares: the parser class, ``--version``, the model options, the progress bar.

Cheap on purpose: argparse and ``explorer.core`` only. Whatever a command needs beyond that (torch, the
model loader, the method registry) is imported inside the function that uses it, so building the parser
for ``explorer`` (the GUI) never pays for it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from explorer.core import argtypes as T
from explorer.core import model_sources
from explorer.core.errors import ExplorerError

ACTIVATION_CHOICES = ("auto", "softmax", "sigmoid", "none")  # models/outputs.ACTIVATIONS, torch-free


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line (the option and the reason), exit code 2, like every user error.

    ``late``: called with the parser just before its help is formatted, for help texts that need a heavy
    import (the metric names, the trainer's defaults); parsing and its error lines never call it."""

    def __init__(self, *args: Any, late: Callable[["Parser"], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._late = late

    def error(self, message: str):  # argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if self._late is not None:
            self._late(self)
            self._late = None
        return super().format_help()


class VersionAction(argparse.Action):
    """``--version``: explorer's version, torch's, and the device a run would use."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from explorer import __version__

        try:
            import torch

            from explorer.models.device import pick_device

            try:
                dev = str(pick_device(None))
            except ExplorerError as exc:
                dev = f"none ({exc})"
            extra = f"torch {torch.__version__}, device {dev}"
        except ImportError as exc:
            extra = f"torch not importable ({exc})"
        print(f"explorer {__version__} ({extra})")
        parser.exit(0)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, type=T.model_spec(),
                   help=model_sources.cli_help())
    g.add_argument("--weights", default=None, type=T.existing_file("weights file"),
                   help=model_sources.weights_help())
    g.add_argument("--labels", default=None, type=T.existing_file("labels file"),
                   help="class names file (one per line, or JSON)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling Python objects from the --model/--weights files named here (they can run "
                        "code: only for files you trust); never applies to files a session names")
    g.add_argument("--device", default=None, type=T.device(), help="cpu, cuda, cuda:N (default: CUDA when present)")
    g.add_argument("--input-size", type=T.integer(8, 4096), default=None,
                   help="override the model's input size (pixels)")
    g.add_argument("--offline", action="store_true", help="never try to download weights")
    g.add_argument("--activation", default=None, choices=ACTIVATION_CHOICES,
                   help="how the model's logits become scores: softmax (one class), sigmoid (independent labels, or a "
                        "binary model's one logit), none (raw scores); default auto: sigmoid for one output, a "
                        "Hugging Face model's problem_type, else softmax")
    g.add_argument("--output", default=None, type=T.name("model output"),
                   help="which part of a tuple / dict model output holds the class scores (an index or a key; "
                        "default: element 0 of a tuple, 'logits' of a dict)")
    g.add_argument("--mean", default=None, type=T.numbers(), metavar="M[,G,B]",
                   help="the normalisation the model was trained with, on pixels in [0, 1]: one value for every "
                        "channel or three (R, G, B); default: what the model's source says, ImageNet's for a model "
                        "file (e.g. --mean 0.5 --std 0.5 for weights that expect [-1, 1])")
    g.add_argument("--std", default=None, type=T.numbers(0.0, low_open=True), metavar="S[,G,B]",
                   help="the normalisation's standard deviation, like --mean")
    g.add_argument("--engine", default=None, choices=("auto", "torch", "onnxruntime"),
                   help="what runs score-only forwards (black-box methods, Score-CAM's masked forwards, evaluation "
                        "curves): auto (default, or $EXPLORER_ENGINE) exports the model to ONNX once, checks it "
                        "against torch and uses the faster; gradients and layer hooks always run on torch")


def model_options(args) -> dict[str, Any]:
    """The model options as ``explorer.models.load_model``'s arguments (a plain dict: a Ray worker gets it)."""
    return {"spec": args.model, "weights": args.weights, "labels": args.labels, "device": args.device,
            "trust_pickle": args.trust_pickle, "allow_download": False if args.offline else None,
            "input_size": args.input_size, "activation": getattr(args, "activation", None),
            "output": _output(getattr(args, "output", None)),
            "engine": args.engine, "mean": getattr(args, "mean", None), "std": getattr(args, "std", None)}


def _output(value: str | None) -> str | int | None:
    """An index for a tuple output when the value is a number, else a key."""
    return int(value) if value is not None and value.isdigit() else value


def model_from_args(args):
    from explorer.models import load_model

    return load_model(**model_options(args))


def method_names() -> list[str]:
    from explorer.methods import method_names as names  # imports torch: only once a name is checked

    return names()


class Bar:
    """The command line's progress bar, on stderr: redrawn in place on a terminal. Elsewhere (a log, a pipe)
    it writes one line per update when ``log`` is set (evaluate: one per photo and method) and nothing
    otherwise (explain: its many steps would flood the log).

    With ``total`` the updates count units done (the line shows the count and an ETA); without, they are
    fractions in [0, 1]."""

    def __init__(self, total: int | None = None, *, log: bool = False, stream=None):
        self.total = None if total is None else max(1, total)
        self.log, self.t0 = log, time.perf_counter()
        self.stream = stream or sys.stderr  # looked up now: a captured or replaced stderr is honoured
        self.tty = self.stream.isatty()

    def update(self, done: float, msg: str) -> None:
        if not (self.tty or self.log):
            return
        if self.total is None:
            frac, count = min(1.0, float(done)), ""
        else:
            frac = min(1.0, done / self.total)
            el = time.perf_counter() - self.t0
            eta = el / done * (self.total - done) if done else 0.0
            count = f"{done}/{self.total} "
        line = f"[{'#' * int(frac * 30):<30}] {count}{frac * 100:5.1f}%"
        if self.total is not None:
            line += f" eta {eta:6.0f}s"
        line += f" {msg}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

"""What to load as the classifier: the GUI's and the session file's form of the CLI's model flags.

Kept apart from the document (session/document.py) because the CLI, the GUI's model panel and session files
all read it, while only the document holds runs and layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from explorer.core.normalisation import channel_values


@dataclass
class ModelChoice:
    """What to load: the same fields as the CLI's model flags, except trust.

    Trust to unpickle Python objects is never part of a choice: a choice is saved into session files, and a
    session is made to be shared, so a flag read back from one would let any file grant itself the right
    to run code. Trust is given per load by the person at the keyboard (``--trust-pickle`` or the GUI's
    checkbox with its confirmation) and travels beside the choice, never inside it.
    """

    spec: str | None = None
    weights: str | None = None
    labels: str | None = None
    device: str | None = None
    input_size: int | None = None
    offline: bool = False
    activation: str | None = None  # softmax | sigmoid | none; None: auto (models/outputs.py)
    output: str | None = None  # the key or index of a tuple/dict output holding the scores; None: the default
    engine: str | None = None  # what runs score-only forwards: auto (None), torch, onnxruntime (models/engine.py)
    mean: tuple[float, ...] | None = None  # the normalisation the model was trained with; None: the source's
    std: tuple[float, ...] | None = None

    @property
    def label(self) -> str:
        return self.spec or "efficientnet_lite0"

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, d: dict | None) -> "ModelChoice":
        d = dict(d or {}) if isinstance(d, dict) else {}
        d.pop("trust_pickle", None)  # ignored: a file never grants trust (older sessions stored the flag)
        out = cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        for k in ("spec", "weights", "labels", "device", "activation", "output", "engine"):  # damaged: fails here
            if getattr(out, k) is not None and not isinstance(getattr(out, k), str):
                raise TypeError(f"model {k} must be a string, not {type(getattr(out, k)).__name__}")
        if out.input_size is not None and (isinstance(out.input_size, bool) or not isinstance(out.input_size, int)
                                           or out.input_size < 1):
            raise ValueError(f"model input_size must be a positive integer, not {out.input_size!r}")
        out.offline = bool(out.offline)
        for k in ("mean", "std"):
            v = getattr(out, k)
            if v is not None:
                if not isinstance(v, (list, tuple)) or not all(
                        isinstance(a, (int, float)) and not isinstance(a, bool) for a in v):
                    raise TypeError(f"model {k} must be a list of numbers, not {v!r}")
                setattr(out, k, tuple(float(a) for a in v))
        if out.activation not in (None, "auto", "softmax", "sigmoid", "none"):
            raise ValueError(f"model activation must be auto, softmax, sigmoid or none, not {out.activation!r}")
        return out

    def load_options(self) -> dict[str, Any]:
        """The output and normalisation options as ``load_model``'s keywords (an index for a numeric output)."""
        out = self.output
        opts = {"activation": None if self.activation == "auto" else self.activation,
                "output": int(out) if out is not None and out.isdigit() else out}
        opts.update({k: v for k, v in (("mean", self.mean), ("std", self.std)) if v is not None})
        return opts

    @classmethod
    def from_args(cls, args: Any) -> "ModelChoice":
        def g(k, default=None):
            return getattr(args, k, default)

        return cls(g("model"), g("weights"), g("labels"), g("device"), g("input_size"), bool(g("offline", False)),
                   g("activation"), g("output"), g("engine"), g("mean"), g("std"))


def normalisation_text(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> str:
    """The model panel's form of a normalisation: ``MEAN / STD``, each one value or three (empty: the source's)."""
    if mean is None and std is None:
        return ""
    def one(v):
        return "" if v is None else ",".join(f"{a:g}" for a in v)
    return f"{one(mean)} / {one(std)}"


def parse_normalisation(text: str) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """``"0.5 / 0.5"`` or ``"0.485,0.456,0.406 / 0.229,0.224,0.225"`` as (mean, std); empty: (None, None). A
    ValueError says what is wrong (the panel shows it and loads nothing)."""
    text = (text or "").strip()
    if not text:
        return None, None
    parts = text.split("/")
    if len(parts) != 2:
        raise ValueError(f"normalisation {text!r}: write MEAN / STD, e.g. 0.5 / 0.5 (one value or three each)")
    out = []
    for what, part in zip(("mean", "std"), parts):
        try:
            vals = tuple(float(v) for v in part.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"normalisation {what} {part.strip()!r} is not a list of numbers") from None
        channel_values(vals, what)  # the loader's own check, so the panel refuses what the loader would
        out.append(vals)
    return out[0], out[1]

"""What to load as the classifier: the GUI's and the session file's form of the CLI's model flags.

Kept apart from the document (session/document.py) because the CLI, the GUI's model panel and session files
all read it, while only the document holds runs and layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
        if out.activation not in (None, "auto", "softmax", "sigmoid", "none"):
            raise ValueError(f"model activation must be auto, softmax, sigmoid or none, not {out.activation!r}")
        return out

    def load_options(self) -> dict[str, Any]:
        """The output options as ``load_model``'s keywords (an index for a numeric output)."""
        out = self.output
        return {"activation": None if self.activation == "auto" else self.activation,
                "output": int(out) if out is not None and out.isdigit() else out}

    @classmethod
    def from_args(cls, args: Any) -> "ModelChoice":
        def g(k, default=None):
            return getattr(args, k, default)

        return cls(g("model"), g("weights"), g("labels"), g("device"), g("input_size"), bool(g("offline", False)),
                   g("activation"), g("output"), g("engine"))

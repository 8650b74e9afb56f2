"""Parameter declarations: one source for the CLI flags, the GUI controls and session records.

A method declares its parameters once as a ``Params`` of ``Param`` entries (type, default, bounds,
step, help). ``Params.resolve`` turns user values (typed, or strings from the command line) into a
complete, checked dict, refusing unknown names and out-of-range values with the bounds in the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from explorer.core.errors import ParamError

_MISSING = object()

KINDS = ("int", "float", "bool", "choice", "str", "layer", "layers", "class", "floats")
PICKERS = ("", "prior", "npy", "substrate")


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    kind: ``int``, ``float``, ``bool``, ``choice`` (one of ``choices``), ``str``, ``layer`` (a model layer
    name, ``None`` = auto-pick), ``layers`` (comma-separated layer names, ``None`` = auto), ``class`` (a class
    index, ``None`` = not used), ``floats`` (a tuple of numbers, e.g. "0.1,0.5,0.9"; the bounds apply to each).
    ``low_open`` / ``high_open`` exclude the bound itself (a fraction in (0, 1]).
    ``gpu_default`` replaces ``default`` when the run is on a CUDA device.
    ``live`` marks a parameter the GUI offers as a live slider (re-runs on change).
    ``advanced`` marks an engineering knob (batch size, refresh rate) that changes the speed, not the map;
    the GUI folds these into a collapsed group so the scientific parameters come first.
    ``aliases`` maps an old name of a choice to the current one (``softmax`` -> ``prob``).
    ``picker`` names a richer editor for a ``str`` parameter: ``prior`` (a map of this session, a method to
    run first, or ``flat``), ``npy`` (a path to a .npy file) or ``substrate`` (what a metric's removed pixels
    become: zero, black, blur[:SIGMA[:KERNEL]] or an in-fill name). The value stays a plain string.
    """

    name: str
    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    step: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    gpu_default: Any = _MISSING
    log: bool = False
    live: bool = True
    advanced: bool = False
    picker: str = ""
    aliases: tuple[tuple[str, str], ...] = ()  # (old name, choice) read as the choice: a renamed choice

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown param kind {self.kind!r}")
        if self.kind == "choice" and self.default not in self.choices:
            raise ValueError(f"default {self.default!r} of {self.name} not in {self.choices}")
        if self.picker not in PICKERS:
            raise ValueError(f"unknown picker {self.picker!r} of {self.name}; valid: {PICKERS}")

    def default_for(self, device: str = "cpu") -> Any:
        if self.gpu_default is not _MISSING and str(device).startswith("cuda"):
            return self.gpu_default
        return self.default

    def bounds_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.low_open or self.high_open:
            lo = "(" if self.low_open else "["
            hi = ")" if self.high_open else "]"
            if self.low is not None and self.high is not None:
                return f"in {lo}{self.low:g}, {self.high:g}{hi}"
            if self.low is not None:
                return f"{'>' if self.low_open else '>='} {self.low:g}"
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        if self.low is not None and self.high is not None:
            return f"between {self.low:g} and {self.high:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        if self.high is not None:
            return f"<= {self.high:g}"
        return "any value"

    def coerce(self, value: Any) -> Any:
        """Convert (strings included) and check bounds; raise ParamError naming the bounds."""
        name = self.name
        if value is None:
            if self.kind in ("layer", "layers", "class", "str") or self.default is None:
                return None
            raise ParamError(f"parameter {name!r} needs a value ({self.bounds_text()})")
        try:
            if self.kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, str):
                    f = float(value)
                    if not f.is_integer():
                        raise ValueError
                    value = int(f)
                elif isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    value = int(value)
                else:
                    value = int(value)
            elif self.kind == "float":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if value != value:  # NaN
                    raise ValueError
            elif self.kind == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low in ("1", "true", "yes", "on"):
                        value = True
                    elif low in ("0", "false", "no", "off"):
                        value = False
                    else:
                        raise ValueError
                else:
                    value = bool(value)
            elif self.kind == "choice":
                value = dict(self.aliases).get(str(value), str(value))
                if value not in self.choices:
                    raise ParamError(f"parameter {name!r} = {value!r} is not {self.bounds_text()}")
            elif self.kind in ("str", "layer"):
                value = str(value)
                if self.kind == "layer" and value.lower() in ("", "auto", "none"):
                    return None
            elif self.kind == "layers":
                if isinstance(value, str):
                    if value.lower() in ("", "auto", "none"):
                        return None
                    value = tuple(v.strip() for v in value.split(",") if v.strip())
                else:
                    value = tuple(str(v) for v in value)
            elif self.kind == "floats":
                parts = value.split(",") if isinstance(value, str) else list(value)
                value = tuple(float(v) for v in parts if not (isinstance(v, str) and not v.strip()))
                if not value or any(v != v for v in value):  # empty or NaN
                    raise ValueError
            elif self.kind == "class":
                if isinstance(value, str) and value.lower() in ("", "auto", "none"):
                    return None
                value = value if isinstance(value, str) and not value.strip().lstrip("-").isdigit() else int(value)
        except ParamError:
            raise
        except (TypeError, ValueError):
            raise ParamError(
                f"parameter {name!r} = {value!r} is not a valid {self.kind} ({self.bounds_text()})"
            ) from None
        if self.kind in ("int", "float", "floats"):
            if not all(self.within(v) for v in (value if self.kind == "floats" else (value,))):
                raise ParamError(f"parameter {name!r} = {value!r} is out of range: must be {self.bounds_text()}")
        return value

    def within(self, v: float) -> bool:
        """Whether the number ``v`` is inside the bounds (open ones excluded)."""
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))

    def describe(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        for key in ("low", "high", "step"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        for key in ("low_open", "high_open"):
            if getattr(self, key):
                d[key] = True
        if self.choices:
            d["choices"] = list(self.choices)
        if self.gpu_default is not _MISSING:
            d["gpu_default"] = self.gpu_default
        if self.advanced:
            d["advanced"] = True
        if self.picker:
            d["picker"] = self.picker
        return d


@dataclass(frozen=True)
class Params:
    """An ordered declaration of a method's parameters."""

    items: tuple[Param, ...] = field(default_factory=tuple)

    def __init__(self, *items: Param):
        names = [p.name for p in items]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        object.__setattr__(self, "items", tuple(items))

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.items)

    def __getitem__(self, name: str) -> Param:
        for p in self.items:
            if p.name == name:
                return p
        raise KeyError(name)

    def names(self) -> list[str]:
        return [p.name for p in self.items]

    def extend(self, *items: Param, drop: Iterable[str] = ()) -> "Params":
        """A new declaration with ``items`` added (replacing same-named ones) and ``drop`` removed."""
        new = {p.name: p for p in self.items if p.name not in set(drop)}
        for p in items:
            new[p.name] = p
        return Params(*new.values())

    def defaults(self, device: str = "cpu") -> dict[str, Any]:
        return {p.name: p.default_for(device) for p in self.items}

    def resolve(self, values: Mapping[str, Any] | None = None, device: str = "cpu") -> dict[str, Any]:
        values = dict(values or {})
        unknown = [k for k in values if k not in self]
        if unknown:
            raise ParamError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))}; valid: {', '.join(self.names()) or '(none)'}"
            )
        out = {}
        for p in self.items:
            out[p.name] = p.coerce(values[p.name]) if p.name in values else p.default_for(device)
        return out

    def describe(self) -> list[dict]:
        return [p.describe() for p in self.items]


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings from the command line."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParamError(f"parameter {pair!r} is not of the form key=value")
        key, value = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise ParamError(f"parameter {pair!r} has an empty name")
        out[key] = value.strip()
    return out

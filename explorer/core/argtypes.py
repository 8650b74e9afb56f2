"""Typed command-line values: every option is checked when it is parsed, before anything heavy happens.

Each factory returns an argparse ``type=`` callable that raises ``argparse.ArgumentTypeError`` with the
reason, so a bad value ends as one line ``explorer explain: error: argument --seed: ...`` (exit 2) instead
of a traceback an hour into a run. Each callable carries ``kind`` (what it accepts), which the failure
sweep (tests/test_cli_sweep.py) reads to choose the bad values it tries, so an option added without a
type here is caught by that test. Only cheap checks happen here (no torch): names that need a model or the
method registry are checked by the command and fail with the same one-line form.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Callable

from explorer.core.model_sources import SourceKind, file_source, listing, model_after_prefix, source_of

Error = argparse.ArgumentTypeError


def _typed(kind: str, fn: Callable[[str], object], **info) -> Callable[[str], object]:
    fn.kind = kind  # type: ignore[attr-defined]
    for k, v in info.items():
        setattr(fn, k, v)
    fn.__name__ = kind  # argparse names the type in its own messages
    return fn


def _nonempty(text: str, what: str) -> str:
    if text is None or not str(text).strip():
        raise Error(f"an empty value is not a {what}")
    return str(text)


# --------------------------------------------------------------------------- numbers
def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        _nonempty(text, "number")
        try:
            v = int(text.strip())
        except ValueError:
            raise Error(f"{text!r} is not a whole number") from None
        if low is not None and v < low:
            raise Error(f"{v} is below the minimum {low}")
        if high is not None and v > high:
            raise Error(f"{v} is above the maximum {high}")
        return v
    return _typed("int", parse, low=low, high=high)


def number(low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        _nonempty(text, "number")
        try:
            v = float(text.strip())
        except ValueError:
            raise Error(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise Error(f"{text!r} is not a finite number")
        if low is not None and (v < low or (low_open and v == low)):
            raise Error(f"{v:g} must be {'>' if low_open else '>='} {low:g}")
        if high is not None and (v > high or (high_open and v == high)):
            raise Error(f"{v:g} must be {'<' if high_open else '<='} {high:g}" if high_open
                        else f"{v:g} is above the maximum {high:g}")
        return v
    return _typed("float", parse, low=low, high=high, low_open=low_open, high_open=high_open)


def numbers(low: float | None = None, high: float | None = None, low_open: bool = False,
            high_open: bool = False) -> Callable[[str], tuple[float, ...]]:
    """Comma-separated numbers, each checked like ``number``: ``0.1,0.5,0.9``."""
    one = number(low, high, low_open, high_open)

    def parse(text: str) -> tuple[float, ...]:
        _nonempty(text, "list of numbers")
        parts = [t for t in text.split(",") if t.strip()]
        if not parts:
            raise Error(f"{text!r} holds no number")
        return tuple(one(t) for t in parts)
    return _typed("floats", parse, low=low, high=high, low_open=low_open, high_open=high_open)


# --------------------------------------------------------------------------- paths
def existing_file(what: str = "file") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, what)
        p = Path(text).expanduser()
        if p.is_dir():
            raise Error(f"{text}: is a folder, not a {what}")
        if not p.exists():
            raise Error(f"{text}: no such file ({what} expected)")
        if not os.access(p, os.R_OK):
            raise Error(f"{text}: the {what} is not readable")
        return str(p)
    return _typed("file", parse, what=what)


def existing_dir(what: str = "folder") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, what)
        p = Path(text).expanduser()
        if p.exists() and not p.is_dir():
            raise Error(f"{text}: is a file, not a {what}")
        if not p.exists():
            raise Error(f"{text}: no such folder ({what} expected)")
        return str(p)
    return _typed("dir", parse, what=what)


def existing_path(what: str = "file or folder") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, what)
        p = Path(text).expanduser()
        if not p.exists():
            raise Error(f"{text}: no such file or folder ({what} expected)")
        return str(p)
    return _typed("path", parse, what=what)


def _creatable(p: Path, text: str, what: str) -> None:
    """The nearest existing ancestor must be a writable folder (nothing is created here)."""
    q = p
    while not q.exists():
        if q.parent == q:
            return
        q = q.parent
    if not q.is_dir():
        raise Error(f"{text}: cannot be created: {q} is a file")
    if not os.access(q, os.W_OK | os.X_OK):
        raise Error(f"{text}: cannot write the {what}: {q} is not writable")


def output_dir(what: str = "output folder") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, what)
        p = Path(text).expanduser()
        if p.exists() and not p.is_dir():
            raise Error(f"{text}: is a file, not an {what}")
        _creatable(p, text, what)
        return str(p)
    return _typed("out_dir", parse, what=what)


def output_file(what: str = "output file") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, what)
        p = Path(text).expanduser()
        if p.is_dir():
            raise Error(f"{text}: is a folder, not an {what}")
        _creatable(p.parent, text, what)
        return str(p)
    return _typed("out_file", parse, what=what)


# --------------------------------------------------------------------------- names and small languages
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def name(what: str, valid: Callable[[], list[str]] | None = None, extra: tuple[str, ...] = ()) -> Callable[[str], str]:
    """A name; with ``valid`` (a cheap listing) checked against it here, else by the command."""
    def parse(text: str) -> str:
        _nonempty(text, what)
        t = text.strip()
        if not _NAME.match(t):
            raise Error(f"{text!r} is not a {what} name")
        if valid is not None:
            names = list(valid()) + list(extra)
            if t not in names:
                raise Error(f"unknown {what} {t!r}; valid: {', '.join(names)}")
        return t
    return _typed("name", parse, what=what, valid=valid)


def name_list(what: str, valid: Callable[[], list[str]], extra: tuple[str, ...] = ()) -> Callable[[str], str]:
    """Comma-separated names, each checked against ``valid()`` (plus ``extra``)."""
    def parse(text: str) -> str:
        _nonempty(text, f"list of {what}s")
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise Error(f"no {what} in {text!r}")
        names = list(valid()) + list(extra)
        bad = [t for t in items if t not in names]
        if bad:
            raise Error(f"unknown {what} {bad[0]!r}; valid: {', '.join(names)}")
        return text
    return _typed("names", parse, what=what, valid=valid)


def assignment(what: str = "K=V") -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, f"{what} assignment")
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise Error(f"{text!r} is not {what} (a name, '=', a value)")
        return text
    return _typed("assign", parse, what=what)


def target() -> Callable[[str], str]:
    """A class index (>= 0) or a class name (checked against the model's labels by the command)."""
    def parse(text: str) -> str:
        _nonempty(text, "class index or name")
        t = text.strip()
        if re.fullmatch(r"[+-]?\d+", t) and int(t) < 0:
            raise Error(f"class index {t} is negative")
        if t.lower() in ("nan", "inf", "-inf", "+inf"):
            raise Error(f"{t!r} is neither a class index nor a class name")
        return t
    return _typed("target", parse)


def device() -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, "device")
        t = text.strip()
        if not re.fullmatch(r"cpu|cuda(:\d+)?", t):
            raise Error(f"unknown device {t!r}; valid: cpu, cuda, cuda:N")
        return t
    return _typed("device", parse)


_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # a Hugging Face hub repo id


def _architecture(spec: str) -> str:
    if not _NAME.match(model_after_prefix(spec)):
        raise Error(f"{spec!r}: expected {spec.partition(':')[0]}:NAME with an architecture name")
    return spec


def _hf_folder_or_repo(spec: str) -> str:
    rest = model_after_prefix(spec)
    folder = Path(rest).expanduser()
    if folder.is_dir():
        return f"hf:{folder}"
    if folder.exists():
        raise Error(f"{rest}: is a file; hf: takes a save_pretrained folder or a hub repo id (owner/name)")
    if not _REPO.match(rest):
        raise Error(f"{rest}: no such folder, and not a hub repo id (owner/name)")
    return spec


def _model_file(spec: str) -> str:
    p = Path(spec).expanduser()
    if p.is_dir():
        raise Error(f"{spec}: is a folder, not a model file")
    if p.is_file():
        return str(p)
    raise Error(f"{spec}: no such file (model file expected)")


# how a spec of each source of core/model_sources.py is checked (a new source without a check fails at import)
_CHECKS: dict[SourceKind, Callable[[str], str]] = {
    SourceKind.EMBEDDED: lambda spec: spec, SourceKind.TORCHVISION: _architecture, SourceKind.TIMM: _architecture,
    SourceKind.HF: _hf_folder_or_repo, SourceKind.TORCH_FILE: _model_file, SourceKind.ONNX: _model_file,
}
assert set(_CHECKS) == set(SourceKind), "every model source has its check"


def model_spec() -> Callable[[str], str]:
    """A spec of one of the model sources (core/model_sources.py): an embedded name, ``torchvision:NAME``,
    ``timm:NAME``, ``hf:FOLDER_OR_REPO_ID``, or an existing model file (any suffix case)."""
    def parse(text: str) -> str:
        _nonempty(text, "model")
        t = text.strip()
        source = source_of(t)
        if source is None and Path(t).expanduser().exists():  # a file or folder named without a model suffix
            source = file_source(t)
        if source is None:
            raise Error(f"unknown model {t!r}; valid: {', '.join(listing())}")
        return _CHECKS[source.kind](t)
    return _typed("model", parse)


def shard() -> Callable[[str], str]:
    def parse(text: str) -> str:
        _nonempty(text, "shard")
        t = text.strip()
        if t == "auto":
            return t
        m = re.fullmatch(r"(\d+)/(\d+)", t)
        if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            raise Error(f"{t!r} must be i/n with 0 <= i < n (e.g. 0/4), or auto")
        return t
    return _typed("shard", parse)


def substrate(valid: Callable[[], list[str]]) -> Callable[[str], str]:
    """zero, black, blur[:SIGMA[:KERNEL]] (SIGMA > 0, KERNEL odd >= 1), or an in-fill name from ``valid()``."""
    def parse(text: str) -> str:
        _nonempty(text, "substrate")
        t = text.strip().lower()
        if t.startswith("blur"):
            parts = t.split(":")
            if parts[0] != "blur" or len(parts) > 3:
                raise Error(f"{text!r}: use blur, blur:SIGMA or blur:SIGMA:KERNEL")
            if len(parts) > 1 and parts[1]:
                number(0.0, None, low_open=True)(parts[1])
            if len(parts) > 2 and parts[2]:
                k = integer(1)(parts[2])
                if k % 2 == 0:
                    raise Error(f"{text!r}: the blur kernel must be odd")
            return text
        names = ["zero", "black"] + [n for n in valid() if n not in ("zero", "blur")]
        if t not in names:
            raise Error(f"unknown substrate {text!r}; valid: blur, blur:SIGMA, blur:SIGMA:KERNEL, {', '.join(names)}")
        return text
    return _typed("substrate", parse)


def address() -> Callable[[str], str]:
    """A cluster address: local, auto, or HOST:PORT (PORT 1..65535)."""
    def parse(text: str) -> str:
        _nonempty(text, "address")
        t = text.strip()
        if t in ("local", "auto"):
            return t
        host, sep, port = t.rpartition(":")
        if (not sep or not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+", host)
                or not port.isdigit() or not 1 <= int(port) <= 65535):
            raise Error(f"{t!r} must be local, auto or HOST:PORT")
        return t
    return _typed("address", parse)

"""Session files: a JSON document plus an NPZ of arrays next to it, reopened without recomputing.

``save_session(path, session)`` writes ``path`` (JSON: image path, model choice, target, every run's request
and result record, every layer's display settings) and ``path`` with suffix ``.npz`` (the image pixels and
each run's maps as the method produced them, in model-input space). ``load_session(path)`` rebuilds a
``Session`` with the same image, runs, explanations and layer settings. Nothing here imports torch or Qt.

Sessions are made to be shared, so a session file is read as hostile input (docs/security.md): its size,
nesting, every field's type and range, and every array's header are checked before use; the arrays file
must be a plain name next to the JSON; a model entry never carries trust (see ``ModelChoice``), so a model
it names is loaded with ``weights_only``. Writing goes to temporary names renamed into place, arrays first,
so a failed save never leaves a JSON that points to missing or partial arrays.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from explorer.core.errors import FileError
from explorer.core.jsonable import jsonable, to_json
from explorer.core.types import MethodResult, Placement
from explorer.io.arrays import read_npz
from explorer.io.safe_files import atomic_write
from explorer.io.state_codec import decode_state, encode_state
from explorer.session import display_fields
from explorer.session.document import DisplayLayer, Run, RunStatus, Session
from explorer.session.model_choice import ModelChoice

FORMAT = "explorer-session"
VERSION = 1
MAX_JSON_BYTES = 64 << 20  # a session with hundreds of runs is well under 1 MB: the rest is an attack or an error


def arrays_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix(".npz") if p.suffix.lower() != ".npz" else p.with_suffix(".arrays.npz")


def _exp_record(exp: MethodResult) -> dict:
    pl = exp.placement
    return {
        "method": exp.method, "maps": list(exp.raw), "signed": {k: bool(v) for k, v in exp.signed.items()},
        "placement": {"image_hw": list(pl.image_hw), "input_hw": list(pl.input_hw), "box": list(pl.box)},
        "target": exp.target, "target_name": exp.target_name, "params": exp.params,
        "seed": exp.seed, "model_id": exp.model_id, "timings": exp.timings,
        "info": {k: v for k, v in exp.info.items() if k != "state"}, "progress": exp.progress,
        "complete": exp.complete, "cancelled": exp.cancelled,
    }


@dataclass
class Snapshot:
    """A session as it will be written: its JSON document (plain values, a copy) and its arrays."""

    path: Path
    npz: Path
    doc: dict
    arrays: dict[str, np.ndarray]


def snapshot(path: str | Path, session: Session, arrays_name: str | None = None, live: bool = False) -> Snapshot:
    """What ``save_session`` writes, taken now; ``write`` may then run on another thread (the autosave's): the
    document is a copy and the arrays are never changed in place (a new result replaces a run's maps).

    ``live`` (the autosave): a run still computing keeps its status (``running``, ``queued``: what it was
    doing when the save was taken); reading it back makes it cancelled as always."""
    if session.image is None:
        raise FileError(path, "nothing to save: no image is open")
    p = Path(path)
    npz = p.with_name(arrays_name) if arrays_name else arrays_path(p)
    arrays: dict[str, np.ndarray] = {"image": session.image}
    runs = []
    for run in session.runs.values():
        rec = run.record()
        exp = run.explanation
        if exp is not None:
            rec["explanation"] = _exp_record(exp)
            for i, (name, m) in enumerate(exp.raw.items()):
                key = f"run{run.id}_map{i}"
                arrays[key] = np.asarray(m, dtype=np.float32)
                rec["explanation"].setdefault("arrays", {})[name] = key
            if exp.info.get("state") is not None:  # what a stopped run needs to continue (methods/resume.py)
                try:
                    rec["explanation"]["state"] = encode_state(exp.info["state"], f"run{run.id}_state", arrays)
                except (TypeError, ValueError):
                    pass  # a state we cannot keep only costs the continuation: the run restarts instead
        if run.active and not live:
            rec["status"] = RunStatus.CANCELLED if exp is not None else RunStatus.ERROR
            rec["error"] = rec["error"] or ("interrupted by saving" if exp is None else "")
        runs.append(rec)
    doc = {
        "format": FORMAT, "version": VERSION, "saved": datetime.now().astimezone().isoformat(timespec="seconds"),
        "image": {"path": session.image_path, "shape": list(session.image.shape)},
        "model": session.model_choice.record(), "model_info": session.model_info,
        # the model's class names and the photo's top predictions: a reopened session names its classes at
        # once, before its model has loaded again (which can take half a minute)
        "labels": list(session.labels), "predictions": [list(p) for p in session.predictions],
        "target": session.target, "runs": runs, "layers": [l.record() for l in session.layers],
        "active_layer": session.active_layer_id, "views": session.views, "arrays": npz.name,
    }
    return Snapshot(p, npz, jsonable(doc), arrays)


def write(snap: Snapshot) -> Path:
    """Write a snapshot: the NPZ, then the JSON naming it with its SHA-256, each under a temporary name renamed
    when whole. FileError when it cannot be written."""
    p = snap.path
    if p.is_dir():
        raise FileError(p, "is a folder, not a session file")
    try:  # the arrays are compressed in memory first: a failure there (no memory, no space) leaves no file
        buf = io.BytesIO()
        np.savez_compressed(buf, **snap.arrays)
        data = buf.getvalue()
        doc = dict(snap.doc, arrays_sha256=hashlib.sha256(data).hexdigest())
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(snap.npz, "wb") as f:
            f.write(data)
        with atomic_write(p, "w", encoding="utf-8") as f:
            f.write(to_json(doc))
    except OSError as exc:
        raise FileError(p, f"cannot write the session: {exc.strerror or exc}") from None
    return p


def save_session(path: str | Path, session: Session, arrays_name: str | None = None) -> Path:
    """Write the session; returns the JSON path. Raises FileError when it cannot be written.

    ``arrays_name``: the NPZ's file name next to the JSON (default: the JSON's name with ``.npz``). The
    autosave gives every save a fresh one, so that the JSON is the one file replaced: a crash at any moment
    leaves either the previous pair or the new one, never a JSON with arrays of another save."""
    return write(snapshot(path, session, arrays_name))


# --------------------------------------------------------------------------- checks of what a file says
def _int(v, what: str, low: int | None = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
        raise ValueError(f"{what} must be an integer >= {low}, not {v!r}")
    return v


def _num(v, what: str, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{what} must be a number in [{low}, {high}], not {v!r}")
    return float(v)


def _str(v, what: str) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{what} must be a string, not {type(v).__name__}")
    return v


def _layer(rec) -> DisplayLayer:
    if not isinstance(rec, dict):
        raise TypeError(f"a layer record must be an object, not {type(rec).__name__}")
    fields = {k: rec[k] for k in DisplayLayer.__dataclass_fields__ if k in rec}
    layer = DisplayLayer(**fields)
    _int(layer.id, "layer id"), _int(layer.run_id, "layer run_id")
    _str(layer.name, "layer name"), _str(layer.label, "layer label")
    if not isinstance(layer.signed, bool):
        raise TypeError("layer signed must be true or false")
    for f in display_fields.FIELDS:  # each display field checked as it is declared
        value = getattr(layer, f.name)
        if f.kind == "bool" and not isinstance(value, bool):
            raise TypeError(f"layer {f.name} must be true or false")
        if f.kind == "float" and f.bounds is not None:
            _num(value, f"layer {f.name}", *f.bounds)
        if f.kind == "choice" and value not in f.choices:
            raise ValueError(f"layer {f.name} {value!r}; valid: {', '.join(f.choices)}")
    return layer


def _placement(pl, image_hw: tuple[int, int]) -> Placement:
    ihw = tuple(_int(v, "placement image_hw", 1) for v in pl["image_hw"])
    inhw = tuple(_int(v, "placement input_hw", 1) for v in pl["input_hw"])
    box = tuple(_int(v, "placement box") for v in pl["box"])
    if len(ihw) != 2 or len(inhw) != 2 or len(box) != 4:
        raise ValueError("placement needs image_hw [h, w], input_hw [h, w] and box [top, left, height, width]")
    if ihw != image_hw:
        raise ValueError(f"a map placed on a {ihw} image, but the session's image is {image_hw}")
    top, left, h, w = box
    if h < 1 or w < 1 or top + h > ihw[0] or left + w > ihw[1]:
        raise ValueError(f"placement box {box} is not inside the {ihw} image")
    return Placement(ihw, inhw, box)


def _map(arrays: dict, key, input_hw: tuple[int, int]) -> np.ndarray:
    a = arrays[_str(key, "array name")]
    if a.ndim != 2 or a.dtype.kind != "f":
        raise ValueError(f"array {key!r} must be a 2-D float map, not {a.dtype} {a.shape}")
    if tuple(a.shape) != tuple(input_hw):
        raise ValueError(f"array {key!r} has shape {a.shape}, but its placement says {tuple(input_hw)}")
    if np.isinf(a).any():
        raise ValueError(f"array {key!r} holds infinite values")
    return a


def _read_doc(p: Path) -> dict:
    """The JSON document of a session file, its format and version checked (FileError otherwise)."""
    if p.is_dir():
        raise FileError(p, "is a folder, not a session file")
    try:
        size = p.stat().st_size
        if size > MAX_JSON_BYTES:
            raise FileError(p, f"is {size / 1e6:.0f} MB, too large for a session file (limit "
                               f"{MAX_JSON_BYTES / 1e6:.0f} MB)")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(p, "no such session file") from None
    except RecursionError:
        raise FileError(p, "not a readable session file (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileError(p, f"not a readable session file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FileError(p, "not an explorer session file")
    version = doc.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FileError(p, f"damaged session file (version {version!r} is not an integer)")
    if version > VERSION:
        raise FileError(p, f"written by a newer explorer (session format {version}); update explorer")
    return doc


def summary(path: str | Path) -> dict:
    """What ``explorer sessions`` lists, from the JSON alone: path, saved (ISO time), image, model and each
    run's method, status and progress in [0, 1]. FileError when the JSON is not a readable session."""
    p = Path(path)
    doc = _read_doc(p)
    try:
        image = (doc.get("image") or {}).get("path")
        info, choice = doc.get("model_info") or {}, ModelChoice.from_record(doc.get("model"))
        runs = []
        for rec in _list(doc.get("runs", []), "runs"):
            exp = rec.get("explanation") or {}
            runs.append({"method": _str(rec["method"], "run method"), "status": _str(rec.get("status", "done"),
                                                                                       "run status"),
                         "progress": _num(rec.get("progress", 1.0), "run progress", 0.0, 1.0),
                         "resumable": exp.get("state") is not None and not exp.get("complete", True)})
        saved = doc.get("saved")
        return {"path": str(p), "saved": saved if isinstance(saved, str) else None,
                "image": None if image is None else _str(image, "image path"),
                "model": str(info.get("id") or choice.label), "runs": runs}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise FileError(p, f"damaged session file ({type(exc).__name__}: {exc})") from None


def load_session(path: str | Path) -> Session:
    """Rebuild a Session from ``save_session``'s files (FileError naming the file when it cannot)."""
    p = Path(path)
    doc = _read_doc(p)
    arrays = _read_arrays(p, doc)
    img = arrays["image"]
    try:
        s = Session()
        s.model_choice = ModelChoice.from_record(doc.get("model"))
        s.model_info = dict(doc.get("model_info") or {})
        image_rec = doc.get("image") or {}
        image_path = image_rec.get("path")
        s.set_image(img, None if image_path is None else _str(image_path, "image path"))
        s.target = doc.get("target")
        if s.target is not None:
            _int(s.target, "target")
        s.labels = [_str(v, "class name") for v in _list(doc.get("labels", []), "labels")]
        s.predictions = [(_int(i, "predicted class"), _str(n, "class name"),
                          _num(pr, "prediction score", -math.inf, math.inf))
                         for i, n, pr in _list(doc.get("predictions", []), "predictions")]
        layers_by_run: dict[int, list[DisplayLayer]] = {}
        for rec in _list(doc.get("layers", []), "layers"):
            layer = _layer(rec)
            layers_by_run.setdefault(layer.run_id, []).append(layer)
        for rec in _list(doc.get("runs", []), "runs"):
            run = _run(rec, arrays, tuple(img.shape[:2]))
            s.add_restored(run, layers_by_run.get(run.id, []))
        views = doc.get("views") or {}
        if not isinstance(views, dict):
            raise TypeError(f"views must be an object, not {type(views).__name__}")
        s.views = views
        active = doc.get("active_layer")
        s.active_layer_id = active if active in {l.id for l in s.layers} else None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise FileError(p, f"damaged session file ({type(exc).__name__}: {exc})") from None
    return s


def _read_arrays(p: Path, doc: dict) -> dict[str, np.ndarray]:
    """The session's arrays file, checked: a plain name next to the JSON, the digest it was saved with (when the
    file has one), and an H x W x 3 uint8 image."""
    name = doc.get("arrays", arrays_path(p).name)
    # the arrays file is a plain name next to the JSON: a shared session must not make us read other files
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise FileError(p, f"damaged session file (arrays {name!r} must be a file name next to the .json)")
    npz = p.parent / name
    if not npz.exists():
        raise FileError(npz, "the session's arrays file is missing (it must stay next to the .json)")
    digest = doc.get("arrays_sha256")  # older files have none
    if digest is not None:
        try:
            ok = hashlib.sha256(npz.read_bytes()).hexdigest() == digest
        except OSError as exc:
            raise FileError(npz, f"cannot read the arrays file: {exc.strerror or exc}") from None
        if not ok:
            raise FileError(npz, f"is not the arrays file {p.name} was saved with (damaged, cut short or "
                                 "replaced); nothing of the session was loaded")
    arrays = read_npz(npz)
    if "image" not in arrays:
        raise FileError(npz, "holds no image")
    img = arrays["image"]
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
        raise FileError(npz, f"its image must be H x W x 3 uint8, not {img.dtype} {img.shape}")
    return arrays


def _run(rec: dict, arrays: dict[str, np.ndarray], image_hw: tuple[int, int]) -> Run:
    """A run record; one that was queued or computing when the file was written comes back stopped (nothing
    computes for a run read from a file): cancelled with its partial map, or an error without one."""
    status = rec.get("status", "done")
    if status not in tuple(RunStatus):
        raise ValueError(f"run status {status!r}; valid: {', '.join(RunStatus)}")
    status = RunStatus(status)
    error = _str(rec.get("error", ""), "run error")
    if status in (RunStatus.QUEUED, RunStatus.RUNNING):
        status = RunStatus.CANCELLED if rec.get("explanation") is not None else RunStatus.ERROR
        error = error or ("" if status == RunStatus.CANCELLED else "interrupted before its first result")
    run = Run(_int(rec["id"], "run id"), _str(rec["method"], "run method"), _params(rec.get("params")),
              rec.get("target"), _int(rec.get("seed", 0), "run seed", None), status,
              _num(rec.get("progress", 1.0), "run progress", 0.0, 1.0), status,
              error, title=_str(rec.get("title", ""), "run title"))
    if run.target is not None:
        _int(run.target, "run target")
    e = rec.get("explanation")
    if e is not None:
        run.explanation = _explanation(e, run.id, arrays, image_hw)
    return run


def _explanation(e: dict, run_id: int, arrays: dict[str, np.ndarray], image_hw: tuple[int, int]) -> MethodResult:
    """A run's result: its maps read from the arrays file at the input size its placement records."""
    placement = _placement(e["placement"], image_hw)
    raw = {_str(name, "map name"): _map(arrays, key, placement.input_hw) for name, key in e.get("arrays", {}).items()}
    if not raw:
        raise ValueError(f"run {run_id} has an explanation without maps")
    result = MethodResult(
        method=e["method"], raw=raw, signed=dict(e.get("signed", {})),
        placement=placement,
        target=e.get("target"), target_name=e.get("target_name", ""), params=_params(e.get("params")),
        seed=int(e.get("seed", 0)), model_id=e.get("model_id", ""), timings=dict(e.get("timings", {})),
        info=dict(e.get("info", {})), progress=float(e.get("progress", 1.0)),
        complete=bool(e.get("complete", True)), cancelled=bool(e.get("cancelled", False)))
    if e.get("state") is not None:
        result.info["state"] = decode_state(e["state"], arrays)
    return result


def _params(v) -> dict:
    """A run's parameters; files from before the batch parameter had one name (issue 18) say ``batch`` for the
    CAM and gradient methods, read here as ``batch_size``."""
    params = dict(v or {})
    if "batch" in params and "batch_size" not in params:
        params["batch_size"] = params.pop("batch")
    return params


def _list(v, what: str) -> list:
    if not isinstance(v, list):
        raise TypeError(f"{what} must be a list, not {type(v).__name__}")
    return v

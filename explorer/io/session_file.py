"""Session files: a JSON document plus an NPZ of arrays next to it, reopened without recomputing.

``save_session(path, session)`` writes ``path`` (JSON: image path, model choice, target, every run's request
and result record, every layer's display settings) and ``path`` with suffix ``.npz`` (the image pixels and
each run's maps as the method produced them, in model-input space). ``load_session(path)`` rebuilds a
``Session`` with the same image, runs, explanations and layer settings. Nothing here imports torch or Qt.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from explorer.core.errors import FileError
from explorer.core.types import Explanation, Placement, _jsonable
from explorer.session.document import Layer, ModelChoice, Run, Session

FORMAT = "explorer-session"
VERSION = 1


def arrays_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix(".npz") if p.suffix.lower() != ".npz" else p.with_suffix(".arrays.npz")


def _exp_record(exp: Explanation) -> dict:
    pl = exp.placement
    return {
        "method": exp.method, "maps": list(exp.raw), "signed": {k: bool(v) for k, v in exp.signed.items()},
        "placement": {"image_hw": list(pl.image_hw), "input_hw": list(pl.input_hw), "box": list(pl.box)},
        "target": exp.target, "target_name": exp.target_name, "params": _jsonable(exp.params),
        "seed": exp.seed, "model_id": exp.model_id, "timings": _jsonable(exp.timings),
        "info": _jsonable({k: v for k, v in exp.info.items() if k != "state"}), "progress": exp.progress,
        "complete": exp.complete, "cancelled": exp.cancelled,
    }


def save_session(path: str | Path, session: Session) -> Path:
    """Write the session; returns the JSON path. Raises FileError when it cannot be written."""
    if session.image is None:
        raise FileError(path, "nothing to save: no image is open")
    p = Path(path)
    npz = arrays_path(p)
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
        if rec["status"] in ("queued", "running"):
            rec["status"] = "cancelled" if exp is not None else "error"
            rec["error"] = rec["error"] or ("interrupted by saving" if exp is None else "")
        runs.append(rec)
    doc = {
        "format": FORMAT, "version": VERSION,
        "image": {"path": session.image_path, "shape": list(session.image.shape)},
        "model": session.model_choice.record(), "model_info": _jsonable(session.model_info),
        "target": session.target, "runs": runs, "layers": [l.record() for l in session.layers],
        "active_layer": session.active_layer_id, "arrays": npz.name,
    }
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(npz, "wb") as f:
            np.savez_compressed(f, **arrays)
        p.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    except OSError as exc:
        raise FileError(p, f"cannot write the session: {exc.strerror or exc}") from None
    return p


def load_session(path: str | Path) -> Session:
    """Rebuild a Session from ``save_session``'s files (FileError naming the file when it cannot)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(p, "no such session file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileError(p, f"not a readable session file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FileError(p, "not an explorer session file")
    if int(doc.get("version", 0)) > VERSION:
        raise FileError(p, f"written by a newer explorer (session format {doc.get('version')}); update explorer")
    npz = p.parent / doc.get("arrays", arrays_path(p).name)
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FileError(npz, "the session's arrays file is missing (it must stay next to the .json)") from None
    except (OSError, ValueError) as exc:
        raise FileError(npz, f"not a readable arrays file ({exc})") from None
    if "image" not in arrays:
        raise FileError(npz, "holds no image")
    try:
        s = Session()
        s.model_choice = ModelChoice.from_record(doc.get("model"))
        s.model_info = dict(doc.get("model_info") or {})
        s.set_image(arrays["image"], doc.get("image", {}).get("path"))
        s.target = doc.get("target")
        layers_by_run: dict[int, list[Layer]] = {}
        for rec in doc.get("layers", []):
            fields = {k: rec[k] for k in Layer.__dataclass_fields__ if k in rec}
            layer = Layer(**fields)
            layers_by_run.setdefault(layer.run_id, []).append(layer)
        for rec in doc.get("runs", []):
            run = Run(int(rec["id"]), rec["method"], dict(rec.get("params") or {}), rec.get("target"),
                      int(rec.get("seed", 0)), rec.get("status", "done"), float(rec.get("progress", 1.0)),
                      rec.get("status", ""), rec.get("error", ""), title=rec.get("title", ""))
            e = rec.get("explanation")
            if e is not None:
                pl = e["placement"]
                raw = {name: arrays[key] for name, key in e.get("arrays", {}).items()}
                run.explanation = Explanation(
                    method=e["method"], raw=raw, signed=dict(e.get("signed", {})),
                    placement=Placement(tuple(pl["image_hw"]), tuple(pl["input_hw"]), tuple(pl["box"])),
                    target=e.get("target"), target_name=e.get("target_name", ""), params=dict(e.get("params", {})),
                    seed=int(e.get("seed", 0)), model_id=e.get("model_id", ""), timings=dict(e.get("timings", {})),
                    info=dict(e.get("info", {})), progress=float(e.get("progress", 1.0)),
                    complete=bool(e.get("complete", True)), cancelled=bool(e.get("cancelled", False)))
            s.add_restored(run, layers_by_run.get(run.id, []))
        s.active_layer_id = doc.get("active_layer")
    except (KeyError, TypeError, ValueError) as exc:
        raise FileError(p, f"damaged session file ({type(exc).__name__}: {exc})") from None
    return s

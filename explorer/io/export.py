"""Writing results: one float32 .npy per map, an overlay PNG, and a JSON manifest.

Each file is written under a temporary name and renamed into place (``explorer.io.safe_files``), and the
manifest comes last: a folder whose ``manifest.json`` lists a file holds that whole file, and a failure
(full disk, permissions) leaves no partial file under a final name.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from explorer.core.colormaps import overlay
from explorer.core.jsonable import to_json
from explorer.core.types import MethodResult
from explorer.io.safe_files import atomic_write, output_dir, write_text


def library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("explorer", "torch", "torchvision", "timm", "numpy", "pillow", "scikit-image", "zennit",
                 "onnxruntime", "PySide6-Essentials", "pyqtgraph"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def save_png(path: str | Path, rgb: np.ndarray, dpi: int | None = None) -> None:
    """Write ``rgb`` as a PNG; ``dpi`` is recorded in it (a slide program then places it at its width in inches)."""
    from PIL import Image

    extra = {"dpi": (int(dpi), int(dpi))} if dpi else {}
    with atomic_write(path, "wb") as f:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(f, format="PNG", **extra)


def provenance(image_path: str | None, model, target_index: int, predictions) -> dict:
    """What the manifest records besides the explanation itself: the image, the model, the target, the top-5.

    ``model`` is a LoadedModel (only ``describe()`` is used), ``predictions`` its ``Prediction`` list.
    """
    out = {
        "image": image_path,
        "model_info": model.describe(),
        "target_index": int(target_index),
        "top5": [{"index": p.index, "name": p.name, "prob": p.prob} for p in predictions],
    }
    warning = model.uniform_warning(predictions) if hasattr(model, "uniform_warning") else ""
    if warning:
        out["warnings"] = [warning]
    return out


def build_manifest(exp: MethodResult, image: np.ndarray, extra: dict | None = None) -> dict:
    """The manifest ``write_explanation`` writes, without writing anything (the Python API's ``manifest()``)."""
    manifest = exp.record()
    manifest.update(extra or {})
    manifest["files"] = [f"{name}.npy" for name in exp.maps] + ["overlay.png", "manifest.json"]
    manifest["image_size"] = {"height": int(image.shape[0]), "width": int(image.shape[1])}
    manifest["versions"] = library_versions()
    return manifest


def write_explanation(out_dir: str | Path, exp: MethodResult, image: np.ndarray, extra: dict | None = None) -> dict:
    """Write ``<layer>.npy`` (float32, H×W of the image) per map, ``overlay.png`` and ``manifest.json``."""
    out = output_dir(out_dir)  # a file in the way or a read-only folder: FileError naming it, nothing written
    (out / "manifest.json").unlink(missing_ok=True)  # an old manifest must not vouch for files rewritten now
    for name, m in exp.maps.items():
        with atomic_write(out / f"{name}.npy") as f:
            np.save(f, np.asarray(m, dtype=np.float32))
    main = exp.main
    save_png(out / "overlay.png", overlay(image, exp.maps[main], exp.signed.get(main, False)))
    manifest = build_manifest(exp, image, extra)
    write_text(out / "manifest.json", to_json(manifest))  # last: its presence means complete
    return manifest

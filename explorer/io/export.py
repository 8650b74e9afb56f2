"""Writing results: one float32 .npy per map, an overlay PNG, and a JSON manifest."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from explorer.core.colormaps import overlay
from explorer.core.types import Explanation


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


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)


def write_explanation(out_dir: str | Path, exp: Explanation, image: np.ndarray, extra: dict | None = None) -> dict:
    """Write ``<layer>.npy`` (float32, H×W of the image) per map, ``overlay.png`` and ``manifest.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, m in exp.maps.items():
        np.save(out / f"{name}.npy", np.asarray(m, dtype=np.float32))
        files.append(f"{name}.npy")
    main = exp.main
    save_png(out / "overlay.png", overlay(image, exp.maps[main], exp.signed.get(main, False)))
    files.append("overlay.png")
    manifest = exp.record()
    manifest.update(extra or {})
    manifest["files"] = files + ["manifest.json"]
    manifest["image_size"] = {"height": int(image.shape[0]), "width": int(image.shape[1])}
    manifest["versions"] = library_versions()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest

"""The inputs of ``explorer evaluate`` besides the model: the photos, the method parameters, the pointing
game's boxes and the reference maps, each read defensively (never a pickle, never an unbounded file) and
checked against the folder so that a typo cannot score nothing and look complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.errors import FileError, ParamError


def split_params(pairs: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    from explorer.core.params import parse_assignments
    from explorer.methods import get_method

    out: dict[str, dict[str, str]] = {m: {} for m in methods}
    for key, value in parse_assignments(pairs).items():
        if "." in key:
            m, k = key.split(".", 1)
            if m not in out:
                raise ParamError(f"--param {key}={value}: method {m!r} is not among --methods ({', '.join(methods)})")
            out[m][k] = value
        else:
            takers = [m for m in methods if key in get_method(m).params]
            if not takers:
                raise ParamError(f"--param {key}={value}: no method among {', '.join(methods)} has a parameter {key!r}")
            for m in takers:
                out[m][key] = value
    return out


def list_images(path: Path) -> list[Path]:
    if not path.exists():
        raise FileError(path, "no such file or folder")
    if path.is_file():
        return [path]
    return sorted((p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir()), key=lambda p: p.name)


def load_boxes(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    try:
        if p.stat().st_size > 64 << 20:  # boxes for a million images fit in far less
            raise FileError(p, "too large for a boxes file (limit 64 MB)")
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(p, "no such file") from None
    except RecursionError:
        raise FileError(p, "not a JSON object of boxes: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise FileError(p, f"not a JSON object of boxes: {exc}") from None
    if not isinstance(data, dict):
        raise FileError(p, "must be a JSON object {image name: [top, left, height, width] or mask path}")
    for k, v in data.items():
        # a mask is only ever decoded as an image (explorer.io.images); a box must be finite and non-empty
        ok = isinstance(v, str) and v.strip() != "" or (
            isinstance(v, (list, tuple)) and len(v) == 4
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) and np.isfinite(t) for t in v)
            and v[0] >= 0 and v[1] >= 0 and v[2] > 0 and v[3] > 0)
        if not ok:
            raise FileError(p, f"entry {k!r}: expected [top, left, height, width] (finite, top/left >= 0, "
                               "height/width > 0) or a mask image path")
    return data


def load_reference(folder: str | None, image_name: str) -> np.ndarray | None:
    if not folder:
        return None
    stem = Path(image_name).stem
    d = Path(folder)
    for cand in [d / f"{stem}.npy"] + sorted(d.glob(f"{stem}.*")):
        if not cand.is_file():
            continue
        if cand.suffix == ".npy":
            from explorer.core.types import as_map2d
            from explorer.io.arrays import read_npy

            a = as_map2d(read_npy(cand), f"{cand}: a reference map")  # never a pickle, never a 10 GB header
            if not np.isfinite(a).all():
                raise FileError(cand, "a reference map holds NaN or infinite values")
            return a
        from explorer.io.images import read_image

        rgb = read_image(cand).rgb.astype(np.float32)
        return rgb.mean(axis=2)
    return None


def check_names_in_folder(files: list[Path], boxes: dict, boxes_path: str | None, reference: str | None) -> None:
    """Refuse a boxes file or a reference folder that names photos the folder does not hold (a typo or the
    wrong folder would otherwise score nothing and look complete)."""
    names = {p.name for p in files}
    stems = {p.stem for p in files}
    stray = sorted(k for k in boxes if k not in names)
    if stray:
        more = f" (and {len(stray) - 5} more)" if len(stray) > 5 else ""
        raise FileError(boxes_path, f"names {len(stray)} photo(s) not in the folder: {', '.join(stray[:5])}{more}")
    if reference:
        refs = sorted(p.name for p in Path(reference).iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.stem not in stems)
        if refs:
            more = f" (and {len(refs) - 5} more)" if len(refs) > 5 else ""
            raise FileError(reference,
                            f"holds {len(refs)} map(s) for photos not in the folder: {', '.join(refs[:5])}{more}")

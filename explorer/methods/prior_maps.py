"""Prior maps handed to a method that refines one (BOREx): from another run, an array, or a ``.npy`` file,
brought to the model's input space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.errors import ExplorerError, FileError
from explorer.core.types import as_map2d, resize_map, to_input_space
from explorer.methods.base import Context


def map_to_input(m: Any, ctx: Context, what: str) -> np.ndarray:
    """A 2-D map (input space, image space or any other size) as an h×w float32 array in input space."""
    a = as_map2d(m, what)
    if np.isinf(a).any():
        raise ExplorerError(f"{what} holds infinite values")
    hw = tuple(ctx.x.shape[-2:])
    if a.shape == hw:
        return np.nan_to_num(a, nan=0.0)
    if a.shape == tuple(ctx.placement.image_hw):  # image space: crop to the model's box first
        return np.nan_to_num(to_input_space(a, ctx.placement), nan=0.0)
    return np.nan_to_num(resize_map(np.nan_to_num(a, nan=0.0), hw), nan=0.0)


def read_prior_file(path: str | Path) -> np.ndarray:
    """A 2-D map from a ``.npy`` file (leading singleton axes squeezed), refusing anything else clearly."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileError(p, "no such prior map file (expected a 2-D .npy array)")
    import zipfile

    from explorer.io.arrays import read_npy

    if zipfile.is_zipfile(p):  # an .npz archive
        raise FileError(p, "an .npz archive, not one map: save a single 2-D array with numpy.save")
    a = read_npy(p)  # header checked first: no pickles, no object arrays, no 10 GB claims
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
        raise FileError(p, f"holds {a.dtype} values, not real numbers")
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or min(a.shape) < 1:
        raise FileError(p, f"a prior map must be 2-D (H x W), got shape {a.shape}")
    a = a.astype(np.float32)
    if np.isinf(a).any():
        raise FileError(p, "holds infinite values")
    return a

"""Any image a notebook holds (a path, a PIL image, an array, a tensor) to the H×W×3 uint8 the runner takes.

The rules are strict on purpose: a float image outside [0, 1] or a 4-channel array is refused rather than
guessed at, because a wrongly scaled or already normalised image gives a map that looks plausible and is
wrong. PIL images and files go through the same conversion as ``explorer explain`` (alpha over white).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.errors import ImageReadError
from explorer.io.images import MAX_PIXELS, read_image

FLOAT_SLACK = 1e-4  # tolerance above 1.0 for floats that went through arithmetic (e.g. x / 255 * 255 / 255)


def as_rgb(image: Any) -> tuple[np.ndarray, str | None]:
    """``(rgb, path)``: ``rgb`` is a contiguous H×W×3 uint8 array, ``path`` the file it came from (or None)."""
    if isinstance(image, (str, Path)):
        loaded = read_image(image)
        return loaded.rgb, loaded.path
    if _is_pil(image):
        from explorer.io.images import _to_rgb  # the file reader's own mode conversion, for the same result

        return _checked(np.ascontiguousarray(_to_rgb(image)), "(PIL image)"), None
    if hasattr(image, "detach") and hasattr(image, "dim"):  # a torch tensor, without importing torch here
        return _from_array(image.detach().cpu().numpy(), "(tensor)", channels_first=True), None
    if isinstance(image, np.ndarray):
        return _from_array(image, "(array)", channels_first=False), None
    raise ImageReadError("(image)", f"cannot use a {type(image).__name__} as an image: give a file path, a PIL "
                         "image, an H×W×3 uint8 array or a (3, H, W) float tensor in [0, 1]")


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _from_array(a: np.ndarray, name: str, channels_first: bool) -> np.ndarray:
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ImageReadError(name, f"a batch of {a.shape[0]} images (shape {a.shape}): explain one image at a time")
        a = a[0]
    if a.ndim == 3:
        a = _channels_last(a, name, channels_first)
    elif a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)  # grey
    else:
        raise ImageReadError(name, f"expected H×W×3 (or a (3, H, W) tensor), got shape {a.shape}")
    return _checked(_to_uint8(a, name), name)


def _channels_last(a: np.ndarray, name: str, channels_first: bool) -> np.ndarray:
    """(H, W, C) from (H, W, C) or (C, H, W); only C = 3 (or 1, grey) is accepted."""
    first, last = a.shape[0], a.shape[-1]
    chw = channels_first and first in (1, 3, 4) or (not channels_first and last not in (1, 3, 4) and first in (1, 3, 4))
    c = first if chw else last
    if c == 4:
        raise ImageReadError(name, f"4 channels (shape {a.shape}): RGBA or CMYK is ambiguous here; drop or composite "
                             "the alpha channel yourself (e.g. img[..., :3]) or pass the file or a PIL image")
    if c not in (1, 3):
        raise ImageReadError(name, f"expected 3 colour channels, got shape {a.shape}")
    if chw:
        a = np.moveaxis(a, 0, -1)
    return np.repeat(a, 3, axis=2) if c == 1 else a


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        raise ImageReadError(name, "a boolean array is a mask, not an image")
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise ImageReadError(name, f"integer values {lo}..{hi} are outside 0..255: scale to uint8 first")
        return a.astype(np.uint8)
    if a.dtype.kind != "f":
        raise ImageReadError(name, f"unsupported pixel type {a.dtype}")
    if not np.isfinite(a).all():
        raise ImageReadError(name, "the image holds NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0:
        raise ImageReadError(name, f"float values down to {lo:.3g}: this looks like an already normalised tensor; pass "
                             "the image in [0, 1] (explorer applies the model's mean and std itself)")
    if hi > 1 + FLOAT_SLACK:
        raise ImageReadError(name, f"float values up to {hi:.4g}: a float image must lie in [0, 1] (divide by 255, "
                             "or pass uint8)")
    return (np.clip(a, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _checked(rgb: np.ndarray, name: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise ImageReadError(name, f"has an empty size {w}x{h}")
    if h * w > MAX_PIXELS:
        raise ImageReadError(name,
                             f"is {w}x{h}, above the limit of {MAX_PIXELS / 1e6:.0f} megapixels; downscale it first")
    return np.ascontiguousarray(rgb)

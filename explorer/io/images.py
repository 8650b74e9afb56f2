"""Image reading: any common format and mode to an RGB uint8 array, or a clear typed error.

Formats: JPEG, PNG, WebP, BMP, TIFF, GIF (first frame) and whatever else Pillow reads. EXIF orientation is
applied. Every mode becomes RGB: alpha is composited over white, 16-bit and float images are rescaled.
Images above ``MAX_PIXELS`` are refused before they are decoded (decompression-bomb guard).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.core.errors import ImageReadError

MAX_PIXELS = 100_000_000  # 100 megapixels: a 10000x10000 photo; above this the app would run out of memory
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class LoadedImage:
    """An image ready for the model: ``rgb`` is H×W×3 uint8; the rest is provenance."""

    rgb: np.ndarray
    path: str | None
    format: str | None = None
    mode: str | None = None

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else "(array)"


def _to_rgb(im) -> np.ndarray:
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if mode.startswith("I;16"):
            a = a / 257.0
        else:
            finite = a[np.isfinite(a)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        g = np.nan_to_num(a).round().clip(0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_image(path: str | Path, max_pixels: int | None = None) -> LoadedImage:
    """Read ``path`` as RGB uint8. Raises ``ImageReadError(path, reason)`` for every failure."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    p = Path(path)
    if not p.exists():
        raise ImageReadError(p, "no such file")
    if p.is_dir():
        raise ImageReadError(p, "is a folder, not an image file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageReadError(p, f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageReadError(p, "the file is empty")
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our own guard below gives the better message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    raise ImageReadError(p, f"has an empty size {w}x{h}")
                if w * h > limit:
                    raise ImageReadError(
                        p, f"is {w}x{h} = {w * h / 1e6:.0f} megapixels, above the limit of {limit / 1e6:.0f} "
                        "megapixels (decompression-bomb guard); downscale it first")
                fmt = im.format
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                im.load()
                mode = im.mode
                im = ImageOps.exif_transpose(im) or im
                rgb = _to_rgb(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image, or a format that cannot be read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc) or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, (SyntaxError, EOFError)):
            raise ImageReadError(p, f"corrupt or truncated image ({msg})") from None
        raise ImageReadError(p, f"cannot decode: {msg}") from None
    except MemoryError:
        raise ImageReadError(p, "not enough memory to decode this image") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageReadError(p, f"unsupported pixel layout {rgb.shape} (mode {mode})")
    return LoadedImage(np.ascontiguousarray(rgb), str(p), fmt, mode)


def from_array(rgb: np.ndarray, name: str | None = None) -> LoadedImage:
    """Wrap an array (H×W×3 uint8, or H×W gray) as a LoadedImage."""
    a = np.asarray(rgb)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageReadError(name or "(array)", f"expected an H×W×3 array, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a * (255.0 if a.dtype.kind == "f" and a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return LoadedImage(np.ascontiguousarray(a[:, :, :3]), name)

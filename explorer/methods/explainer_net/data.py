"""The training folder: every readable image under it, decoded small, and the held-out split.

Unreadable files are skipped with a warning naming the file and the reason; a folder without any usable image
is refused with the counts of what was skipped and why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from explorer.core.errors import FileError, ImageReadError

CACHE_LIMIT = 512  # folders up to this many images are decoded once and kept (downscaled) in memory


class SkippedImageWarning(UserWarning):
    """A file of the training folder that was skipped (not fatal)."""


# --------------------------------------------------------------------------- the folder
@dataclass
class ImageSet:
    """The usable images of a training folder; ``skipped`` lists (path, reason) of the others."""

    root: Path
    paths: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    short_side: int = 448
    cache: dict[Path, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, path: Path) -> np.ndarray | None:
        """The image (downscaled so its shorter side is at most ``short_side``), or None when unreadable."""
        if path in self.cache:
            return self.cache[path]
        try:
            rgb = _read_small(path, self.short_side)
        except ImageReadError as exc:
            self._skip(path, exc.reason)
            return None
        if len(self.paths) <= CACHE_LIMIT:
            self.cache[path] = rgb
        return rgb

    def draw(self, queue: list[int], gen: torch.Generator) -> np.ndarray:
        """The next photo of a shuffled pass: ``queue`` (the trainer's, changed in place) is refilled with a
        permutation drawn from ``gen`` when empty; an unreadable photo is skipped (and dropped from the set), and
        a pass whose indices no longer fit the shrunk set starts afresh."""
        while True:
            if not queue:
                queue[:] = torch.randperm(len(self.paths), generator=gen).tolist()
            i = queue.pop()
            if i >= len(self.paths):
                queue.clear()
                continue
            rgb = self.load(self.paths[i])
            if rgb is not None:
                return rgb
            queue.clear()

    def _skip(self, path: Path, reason: str) -> None:
        warnings.warn(SkippedImageWarning(f"skipped {path}: {reason}"), stacklevel=3)
        self.skipped.append((str(path), reason))
        if path in self.paths:
            self.paths.remove(path)
        if not self.paths:
            raise FileError(self.root, "no usable training images: " + describe_skipped(self.skipped))


def _read_small(path: Path, short_side: int) -> np.ndarray:
    from PIL import Image

    from explorer.io.images import read_image

    rgb = read_image(path).rgb
    h, w = rgb.shape[:2]
    s = short_side / min(h, w)
    if s < 1:
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR))
    return np.ascontiguousarray(rgb)


def describe_skipped(skipped: list[tuple[str, str]], show: int = 3) -> str:
    """``"3 file(s) skipped: 2 not images by their suffix (a.txt, b.csv); 1 unreadable (x.png: corrupt ...)"``."""
    if not skipped:
        return "the folder holds no files"
    names = [Path(p).name for p, reason in skipped if reason.startswith("not an image file")]
    bad = [f"{Path(p).name}: {reason}" for p, reason in skipped if not reason.startswith("not an image file")]
    parts = []
    for items, what in ((names, "not images by their suffix"), (bad, "unreadable")):
        if items:
            more = f"; ... {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{len(items)} {what} ({'; '.join(items[:show])}{more})")
    return f"{len(skipped)} file(s) skipped: " + ", ".join(parts)


def scan_folder(folder: str | Path, short_side: int = 448) -> ImageSet:
    """Every image file under ``folder`` (recursively, sorted). Small folders are decoded at once; larger
    ones are checked by header now and decoded when used. Unreadable files are skipped with a warning;
    a folder without any usable image is refused with the count of what was skipped and why."""
    from explorer.io.images import SUFFIXES

    root = Path(folder)
    if not root.exists():
        raise FileError(root, "no such training folder")
    if not root.is_dir():
        raise FileError(root, "is not a folder: give a folder of training images")
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file())
    except OSError as exc:
        raise FileError(root, f"cannot list the folder: {exc.strerror or exc}") from None
    images = [p for p in files if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")]
    wanted = set(images)
    skipped = [(str(p), f"not an image file (suffix {p.suffix or 'none'!r})") for p in files if p not in wanted]
    out = ImageSet(root, [], skipped, short_side)
    decode = len(images) <= CACHE_LIMIT
    for p in images:
        try:
            if decode:
                out.cache[p] = _read_small(p, short_side)
            else:
                _check_header(p)
        except ImageReadError as exc:
            warnings.warn(SkippedImageWarning(f"skipped {p}: {exc.reason}"), stacklevel=2)
            out.skipped.append((str(p), exc.reason))
            continue
        out.paths.append(p)
    if not out.paths:
        raise FileError(root, "no usable training images: " + describe_skipped(out.skipped))
    return out


def _check_header(p: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image, or a format that cannot be read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(p, f"cannot read: {exc}") from None
    if w <= 0 or h <= 0:
        raise ImageReadError(p, f"has an empty size {w}x{h}")


# --------------------------------------------------------------------------- held-out split
def split_holdout(images: ImageSet, every: int, offset: int | None = None) -> tuple[ImageSet, list[Path]]:
    """Deterministic split by position in the sorted listing: every ``every``-th image (positions
    offset, offset + every, ...; offset = every - 1 by default) is held out for evaluation, never trained on.
    ``every`` = 0 keeps everything. Returns (the training set, the held-out paths)."""
    if every <= 0:
        return images, []
    if every == 1:
        raise FileError(images.root, "--hold-out-every 1 would hold out every image (use 0 for none, or >= 2)")
    off = every - 1 if offset is None else int(offset) % every
    held = [p for i, p in enumerate(images.paths) if i % every == off]
    train = [p for i, p in enumerate(images.paths) if i % every != off]
    if not train:
        raise FileError(images.root, f"holding out every {every}th image leaves nothing to train on "
                                     f"({len(images.paths)} usable image(s))")
    kept = ImageSet(images.root, train, list(images.skipped), images.short_side,
                    {p: a for p, a in images.cache.items() if p in set(train)})
    return kept, held

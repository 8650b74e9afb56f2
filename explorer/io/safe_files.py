"""Writing results so that a failure never leaves a file that looks complete, and checking output folders.

Every result file is written under a temporary name in its own folder and renamed over the final name only
once it is whole (``os.replace`` is atomic within a file system). A full disk, a permission error or a
crash therefore leaves either the previous file or nothing, plus at most a hidden ``.*.part`` file that the
failing call removes itself. Output folders are checked up front: a path that is a file, or a folder that
cannot be written, is refused with a message naming it before any work is done.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from explorer.core.errors import FileError


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def temp_name(dest: Path) -> Path:
    """A hidden sibling of ``dest`` (same folder, so the rename cannot cross file systems)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.part")


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``dest``, on any failure it is removed.

    For writers that want a path (Qt's ``QImage.save``); give them an explicit format, since the temporary
    name's suffix is ``.part``. OSError becomes a FileError naming ``dest``.
    """
    dest = Path(dest)
    tmp = temp_name(dest)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileError(dest, "the writer produced no file")
        os.replace(tmp, dest)
    except OSError as exc:
        raise FileError(dest, f"cannot write: {_reason(exc)}") from None
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass


@contextmanager
def atomic_write(dest: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """An open file that becomes ``dest`` only when the block ends without error (see the module docstring)."""
    with atomic_path(dest) as tmp:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f  # close() flushes: a full disk raises here, inside atomic_path, so dest is untouched


def write_text(dest: str | Path, text: str) -> None:
    with atomic_write(dest, "w", encoding="utf-8") as f:
        f.write(text)


def output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and check it is a writable folder; FileError naming it otherwise."""
    p = Path(path)
    if str(path).strip() == "":
        raise FileError(path, f"an empty path is not an {what}")
    if p.exists() and not p.is_dir():
        raise FileError(p, f"is a file, not an {what}")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise FileError(p, f"cannot create the {what}: a part of the path is a file") from None
    except OSError as exc:
        raise FileError(p, f"cannot create the {what}: {_reason(exc)}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise FileError(p, f"the {what} is not writable")
    return p


def output_file(path: str | Path, what: str = "output file") -> Path:
    """Check that ``path`` can become a file: not a folder, its folder creatable and writable."""
    p = Path(path)
    if str(path).strip() == "":
        raise FileError(path, f"an empty path is not an {what}")
    if p.is_dir():
        raise FileError(p, f"is a folder, not an {what}")
    output_dir(p.parent if str(p.parent) else ".", f"folder of the {what}")
    return p

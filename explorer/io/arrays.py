"""Reading .npy and .npz files that someone else may have written: no pickles, no objects, no bombs.

``numpy.load`` trusts the header: a 100-byte file whose header claims a 10 GB array makes it allocate
10 GB before it notices the data is missing, and an .npz member compresses zeros about 1000:1. So the
header of every array is read first (``numpy.lib.format``'s own header readers) and the array is refused
when its dtype is not plain numbers, when its size is above the cap, or when the file (or the zip member)
holds fewer bytes than the header claims. Only then is the data read, with ``allow_pickle=False`` always.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from explorer.core.errors import FileError

MAX_ARRAY_BYTES = 1 << 30  # 1 GiB: above a 100-megapixel image (300 MB) and its float32 map (400 MB)
MAX_TOTAL_BYTES = 4 << 30  # all arrays of one .npz together
_KINDS = "biuf"  # bool, signed and unsigned integers, floats: the only dtypes a map or an image can have


def _header(f: IO[bytes], where: str | Path) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, bytes of data claimed) from an open .npy stream, refusing hostile ones."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise FileError(where, f"unsupported .npy format version {version[0]}.{version[1]}")
    except FileError:
        raise
    except (ValueError, EOFError, SyntaxError, OSError) as exc:
        raise FileError(where,
                        f"not a .npy array ({str(exc).splitlines()[0][:160] if str(exc) else 'bad header'})") from None
    if dtype.hasobject or dtype.kind not in _KINDS or dtype.fields is not None:
        raise FileError(where, f"holds {dtype} values; only plain numbers are read (never pickled objects)")
    if any(int(d) < 0 for d in shape):
        raise FileError(where, f"has a negative dimension in its shape {shape}")
    claimed = math.prod(int(d) for d in shape) * dtype.itemsize
    return tuple(int(d) for d in shape), bool(fortran), dtype, claimed


def _check_size(where, shape, claimed: int, available: int, cap: int) -> None:
    if claimed > cap:
        raise FileError(where, f"its header claims a {shape} array of {claimed / 1e9:.2f} GB, above the "
                               f"{cap / 1e9:.2f} GB limit; refused before allocating it")
    if claimed > available:
        raise FileError(where, f"truncated: its header claims {claimed} bytes of data, the file holds {available}")


def read_npy(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """One array from a .npy file, or FileError(path, reason)."""
    p = Path(path)
    if not p.is_file():
        raise FileError(p, "is a folder, not a .npy file" if p.is_dir() else "no such .npy file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            shape, _fortran, _dtype, claimed = _header(f, p)
            _check_size(p, shape, claimed, size - f.tell(), max_bytes)
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except FileError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise FileError(p, f"not a readable .npy array ({exc})") from None
    except MemoryError:
        raise FileError(p, "not enough memory for this array") from None


def read_npz(path: str | Path, max_bytes: int = MAX_ARRAY_BYTES,
             max_total: int = MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Every array of an .npz archive by name (``numpy.savez`` names: the member without ``.npy``)."""
    p = Path(path)
    if not p.is_file():
        raise FileError(p, "is a folder, not an arrays file" if p.is_dir() else "no such arrays file")
    try:
        with zipfile.ZipFile(p) as z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            plan, total = [], 0
            for info in infos:
                where = f"{p} [{info.filename}]"
                if not info.filename.endswith(".npy"):
                    raise FileError(where, "an arrays file holds only .npy members")
                with z.open(info) as f:
                    shape, _fortran, _dtype, claimed = _header(f, where)
                    header_len = f.tell()
                _check_size(where, shape, claimed, info.file_size - header_len, max_bytes)
                total += claimed
                if total > max_total:
                    raise FileError(p, f"its arrays claim {total / 1e9:.2f} GB together, above the "
                                       f"{max_total / 1e9:.2f} GB limit; refused before allocating them")
                plan.append(info)
            out = {}
            for info in plan:
                with z.open(info) as f:
                    out[info.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
            return out
    except FileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise FileError(p, f"not a readable arrays file ({type(exc).__name__}: {exc})") from None
    except MemoryError:
        raise FileError(p, "not enough memory for its arrays") from None

"""Reading a weights file (``.pt``/``.pth``/``.bin``/``.safetensors``) without running code from it: tensors
only, unless the person at the keyboard trusts the file (docs/security.md). Shared by the loader and the
embedded models (which the loader imports, so this cannot live in the loader).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from explorer.core.errors import FileError


def load_weights_file(path: str | Path, trust_pickle: bool = False):
    """A state dict (or, with trust, any object) from .pt/.pth/.bin/.safetensors, refusing unsafe pickles."""
    p = Path(path)
    if not p.is_file():
        raise FileError(p, "no such weights file")
    if p.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise FileError(p, "reading .safetensors needs the 'safetensors' package") from None
        try:
            return load_file(str(p))
        except Exception as exc:  # noqa: BLE001 - whatever safetensors raises, the file is not readable
            raise FileError(p, f"not a readable safetensors file: {exc}") from None
    try:
        return torch.load(p, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if trust_pickle:
            raise FileError(p, f"cannot unpickle: {exc}") from None
        if not _pickle_like(p, str(exc)):  # text or garbage, not a pickle of Python objects
            detail = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:120]
            raise FileError(p, f"is not a weights file (not a PyTorch checkpoint or state dict: {detail})") from None
        raise FileError(
            p, "refused: this file holds pickled Python objects, which can run code when loaded (only tensors "
            "are read without trust); if you trust its source, allow it deliberately with --trust-pickle on the "
            "command line or the GUI's 'trust pickled objects' checkbox, which asks you to confirm the file") from None
    except Exception as exc:  # noqa: BLE001 - torch.load fails many ways on a file that is not one (IndexError...)
        raise FileError(p, f"is not a weights file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else 'unreadable'})") from None


def _pickle_like(p: Path, message: str) -> bool:
    """Whether a file torch refused is a pickle naming Python objects (refused as such, trust can allow it)
    rather than something that is no checkpoint at all (a text file named .pth): a torch zip, a binary
    pickle (protocol 2+ starts with 0x80), or an unpickler that met a global."""
    import zipfile

    if "global" in message.lower():
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(1)
        return head == b"\x80" or zipfile.is_zipfile(p)
    except OSError:
        return False

"""User-facing errors.

Every error a user can cause (a bad file, an unknown name, a parameter out of range) is an
``ExplorerError``: the CLI prints its message and exits with code 2, the GUI shows it in the
window. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class ExplorerError(Exception):
    """An error whose message is meant for the user."""

    exit_code = 2


class FileError(ExplorerError):
    """A file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageReadError(FileError):
    """An image file that cannot be read (missing, corrupt, unsupported, too large)."""


class ModelLoadError(ExplorerError):
    """A model that cannot be loaded or does not behave as a classifier."""


class ParamError(ExplorerError):
    """A method parameter that is unknown, of the wrong type or out of its bounds."""


class UnknownNameError(ExplorerError):
    """An unknown method, model, layer or class name; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...], limit: int = 60):
        self.kind, self.name, self.valid = kind, name, list(valid)
        shown = ", ".join(self.valid[:limit])
        more = f" ... ({len(self.valid) - limit} more)" if len(self.valid) > limit else ""
        super().__init__(f"unknown {kind} {name!r}; valid: {shown}{more}")


class TargetError(ExplorerError):
    """A target class index the model does not have."""


class UnsupportedError(ExplorerError):
    """A method that needs something the model does not offer (gradients, hooks)."""


class NonFiniteMapError(ExplorerError):
    """A method produced a map with NaN or infinite values: the run is refused, earlier results are kept."""


class Cancelled(Exception):
    """Raised inside compute when a run's cancel token is set (not a user error)."""

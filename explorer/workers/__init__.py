"""The one bridge between the GUI and compute: a worker thread that owns the model (see compute.py)."""

import explorer.gui  # noqa: F401 - applies the PySide6/CPython 3.11 None-refcount guard (see explorer/gui/__init__.py)
from explorer.workers.compute import ComputeWorker

__all__ = ["ComputeWorker"]

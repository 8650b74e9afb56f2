"""The one bridge between the GUI and compute: a worker thread that owns the model (see compute.py)."""

from explorer.workers.compute import ComputeWorker

__all__ = ["ComputeWorker"]

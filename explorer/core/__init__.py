"""Qt-free, torch-free building blocks: types, parameter declarations, cancellation, registry."""

from explorer.core import types
from explorer.core.cancel import CancelToken
from explorer.core.errors import (
    Cancelled,
    ExplorerError,
    FileError,
    ImageReadError,
    ModelLoadError,
    ParamError,
    UnknownNameError,
    UnsupportedError,
)
from explorer.core.params import Param, Params, parse_assignments
from explorer.core.registry import Registry
from explorer.core.types import MapSpec, MethodResult, MethodStep, Needs, Placement, RunUpdate

__all__ = [
    "CancelToken", "Cancelled", "ExplorerError", "FileError", "ImageReadError", "ModelLoadError",
    "ParamError", "UnknownNameError", "UnsupportedError", "Param", "Params", "parse_assignments",
    "Registry", "MethodResult", "MapSpec", "Needs", "Placement", "MethodStep", "RunUpdate",
]

# The names before issue 32, for code written against them (see the end of types.py).
Explanation, LayerSpec, Step, Update = types.Explanation, types.LayerSpec, types.Step, types.Update  # old name kept
__all__ += ["Explanation", "LayerSpec", "Step", "Update"]  # old name kept

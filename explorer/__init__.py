"""explorer: see why an image classifier decides what it decides.

The Python API, for notebooks and scripts (docs/python-api.md)::

    import explorer
    model = explorer.load_model(net)                      # your nn.Module (or "efficientnet_lite0", "timm:NAME", ...)
    exp = explorer.explain(model, "photo.jpg", "gradcam", target="tabby")
    exp.maps["salient"]                                   # H×W float32 at the photo's size
    exp.overlay(); exp.plot(); exp.save("out/")           # PIL image, matplotlib, the CLI's files
    for part in explorer.explain_iter(model, img, "rise", n=2000): ...   # partial maps as they converge
    explorer.evaluate(model, img, exp)                    # deletion / insertion curves
    explorer.view(net, img)                               # the desktop explorer on this model and image

These names are the public API; everything else in the package is internal. ``import explorer`` stays
cheap: torch, the methods and Qt are imported by the functions when they are called (the lazy attribute
pattern of scientific-python's SPEC 1, which scikit-image and napari use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the internal module that defines it (imported on first access)
_LAZY = {
    "load_model": "explorer.api.model",
    "explain": "explorer.api.run",
    "explain_iter": "explorer.api.run",
    "evaluate": "explorer.api.run",
    "view": "explorer.api.viewer",
    "list_methods": "explorer.api.listing",
    "Explanation": "explorer.api.result",
    "CancelToken": "explorer.core.cancel",
    "ExplorerError": "explorer.core.errors",
    "FileError": "explorer.core.errors",
    "ImageReadError": "explorer.core.errors",
    "ModelLoadError": "explorer.core.errors",
    "ParamError": "explorer.core.errors",
    "TargetError": "explorer.core.errors",
    "UnknownNameError": "explorer.core.errors",
    "UnsupportedError": "explorer.core.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # for type checkers and IDEs: the real objects, without importing them at run time
    from explorer.api.listing import list_methods  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.api.model import load_model  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.api.result import Explanation  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.api.run import evaluate, explain, explain_iter  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.api.viewer import view  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.core.cancel import CancelToken  # noqa: F401 - public: __all__ lists _LAZY
    from explorer.core.errors import (  # noqa: F401 - public: __all__ lists _LAZY
        ExplorerError,
        FileError,
        ImageReadError,
        ModelLoadError,
        ParamError,
        TargetError,
        UnknownNameError,
        UnsupportedError,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

"""``explorer.view``: the desktop explorer on a model and an image the caller holds in memory.

The model is loaded (or wrapped) here, in the caller's thread, so a bad model or image fails with the same
typed error as ``explain`` before any window opens; the window (explorer.gui.embed) then hands it to its
worker thread. It is the same object: nothing is copied or pickled.
"""

from __future__ import annotations

from typing import Any

from explorer.api.images import as_rgb
from explorer.api.model import as_loaded


def view(model: Any = None, image: Any = None, method: str | None = None, *, target: int | str | None = None,
         block: bool | None = None, **params: Any):
    """Open the explorer window on ``model`` and ``image``; optionally start ``method`` (with ``params``).

    ``model``: an ``nn.Module``, a ``load_model`` result, a spec, or None (the default model). ``image``:
    as for ``explain`` (None: the bundled photo). In a plain script the call blocks until the window is
    closed. In IPython after ``%gui qt`` it returns at once and the window stays live while the kernel runs
    (``block=`` forces either). Returns a ``Viewer`` handle (``is_open``, ``run(method, **params)``,
    ``close()``).

    The window's worker thread computes with your very model object. Runs see the weights as they are when
    they run: training the model in the same kernel while the window computes mixes weights from
    different steps into one map, and ``model.train()`` makes the next run refuse until ``model.eval()``.
    Pause training while you look, or view a frozen copy (``copy.deepcopy(net).eval()``).
    """
    from explorer import resources
    from explorer.gui.platform_check import check_display

    resources.check()
    check_display()
    loaded = as_loaded(model) if model is not None else None
    rgb, path = as_rgb(image) if image is not None else (None, None)
    if method:
        from explorer.methods import get_method

        cls = get_method(method)
        cls.params.resolve(params, str(loaded.device) if loaded else "cpu")  # a ParamError here, not in the window
        if loaded is not None:
            loaded.check_supports(cls.needs, f"method {method!r}")
    elif params:
        from explorer.core.errors import ParamError

        raise ParamError(f"parameters {', '.join(map(repr, params))} given without a method")
    from explorer.gui.embed import open_window

    return open_window(loaded, loaded.id if loaded else None, rgb, path, method, params, target, block)

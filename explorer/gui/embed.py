"""Opening the explorer window from Python code (``explorer.view``), torch-free like the rest of gui/.

The caller (``explorer.api.viewer``) hands over an already loaded model as an opaque object; the window's
worker thread adopts it (``MainWindow.start(model)``), so the model stays the caller's object in the
caller's process. Two ways to show the window:

- blocking (a plain script, or a notebook without an event-loop integration): a local Qt event loop runs
  until the window is closed;
- live (IPython after ``%gui qt``): IPython's input hook runs Qt's events while the kernel waits for
  input, so ``open`` returns at once and the window is kept alive here until it is closed.
"""

from __future__ import annotations

from typing import Any

_LIVE: list["Viewer"] = []  # windows shown without blocking, kept alive until they close


def ipython_qt_loop() -> bool:
    """Whether this is IPython with ``%gui qt`` active (its input hook then runs the Qt event loop)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    loop = getattr(ip, "active_eventloop", None) if ip is not None else None
    return bool(loop) and str(loop).startswith("qt")


class Viewer:
    """A handle on an explorer window opened from code: ``is_open``, ``run(...)`` and ``close()``."""

    def __init__(self, window) -> None:
        self._window = window
        self._open = True
        window.destroyed.connect(self._closed)

    def _closed(self, *_: Any) -> None:
        self._open = False
        if self in _LIVE:
            _LIVE.remove(self)

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def window(self):
        """The Qt main window (for advanced use and tests; its API is internal)."""
        return self._window if self._open else None

    def run(self, method: str, target: int | str | None = None, seed: int = 0, **params: Any) -> bool:
        """Start ``method`` in the window as if picked in its method panel; False when it could not start."""
        if not self._open:
            return False
        run = self._window.runs.start(method, params, seed, target)
        return run is not None

    def close(self) -> None:
        if self._open:
            self._window.close()

    def block(self) -> None:
        """Run a local event loop until the window is closed."""
        from PySide6.QtCore import QEventLoop

        if not self._open:
            return
        loop = QEventLoop()
        self._window.destroyed.connect(loop.quit)
        loop.exec()

    def __repr__(self) -> str:
        return f"<explorer Viewer {'open' if self._open else 'closed'}>"


def open_window(model=None, model_label: str | None = None, image=None, image_path: str | None = None,
                method: str | None = None, params: dict | None = None, target: int | str | None = None,
                block: bool | None = None) -> Viewer:
    """Show the explorer on ``model`` (a LoadedModel, or None for the default) and ``image`` (H×W×3 uint8)."""
    from PySide6.QtCore import Qt

    from explorer import resources
    from explorer.gui.app import _app
    from explorer.gui.main_window import MainWindow
    from explorer.session.model_choice import ModelChoice

    app = _app()
    win = MainWindow(ModelChoice(model_label) if model_label else None)
    win.setAttribute(Qt.WA_DeleteOnClose)  # closing ends it (worker stopped in closeEvent), as in the app
    win.show()
    app.processEvents()
    win.start(model)
    if image is not None:
        win.runs.set_image(image, image_path)
    else:
        win.files.open_image(str(resources.sample("chelsea.png")))
    if isinstance(target, int):
        win.session.set_target(target)
    viewer = Viewer(win)
    if method:
        run = win.runs.start(method, dict(params or {}), 0, target)
        if run is not None:
            win.method_panel.bind(run.id, label=run.label)
            win.catalog_changed.connect(lambda: viewer.is_open and win.select_run(run.id))
    if block is None:
        block = not ipython_qt_loop()
    if block:
        viewer.block()
    else:
        _LIVE.append(viewer)
    return viewer

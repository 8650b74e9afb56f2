"""Screenshots of the window's views at 1600x1000 for docs/gui.md, taken in-process on the real default model:
Compare with six runs, the Evaluation tab, and presentation mode.

    QT_QPA_PLATFORM=offscreen python packaging/screenshots_views.py [OUT_DIR] [--quick]

OUT_DIR defaults to docs/screenshots. ``--quick`` uses each method's Quick settings (seconds; to check the
layout), else settings that give clean maps (a few minutes on a CPU). Nothing is remembered: the window's
settings go to a temporary file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (1600, 1000)
# six families side by side; the second dict is used without --quick
RUNS = (("gradcam", {}, {}), ("rise", {"n": 64}, {"n": 1500}), ("integrated_gradients", {"steps": 8}, {}),
        ("lrp", {}, {}), ("lime", {"samples": 64, "segments": 16}, {"samples": 300}),
        ("undesirable", {"n": 64}, {"n": 600}))


def _wait(app, cond, what: str, timeout_s: float = 1800) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"gave up waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def _shot(app, win, path: Path) -> None:
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    win.canvas.flush()
    if not win.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    print(f"wrote {path}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from explorer import resources
    from explorer.gui.app import _app
    from explorer.gui.main_window import MainWindow

    app: QApplication = _app()
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.IniFormat)
    win = MainWindow(settings=settings)
    win.resize(*SIZE)
    win.show()
    win.start()
    win.files.open_image(str(resources.sample("chelsea.png")))
    _wait(app, lambda: bool(win.runs.catalog) and bool(win.session.predictions), "the model")
    ids = []
    for name, quick, full in RUNS:
        run = win.runs.start(name, dict(quick if args.quick else full), 0, None)
        if run is None:
            raise RuntimeError(f"{name} did not start: {win.messages.text()}")
        ids.append(run.id)
    _wait(app, lambda: not any(r.active for r in win.session.runs.values()), "the six runs")

    win.compare.show_runs(ids)
    win.tabs.setCurrentWidget(win.compare)
    _shot(app, win, out / "compare.png")

    s = win.session
    for layer in s.layers:  # three maps on the canvas, then "evaluate every visible layer"
        s.set_layer(layer, visible=layer.run_id in ids[:3] and layer is s.layers_of(s.runs[layer.run_id])[0])
    tab = win.evaluation_dock
    win.tabs.setCurrentWidget(tab)
    tab.evaluate_visible_layers(step=224 * 224 // 12 if args.quick else None)
    _wait(app, lambda: not tab._calls, "the evaluation")
    tab.panel.hover_at("deletion", 0.3)
    _shot(app, win, out / "evaluation.png")

    win.tabs.setCurrentWidget(win.canvas)
    win.presentation.set_active(True)
    win.presentation.step_run(+1)
    _shot(app, win, out / "presentation.png")
    win.presentation.set_active(False)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

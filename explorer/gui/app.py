"""GUI entry point: ``explorer`` opens the window; with ``--method`` and ``--screenshot`` it runs headless.

    explorer [--image PATH] [--model SPEC ...] [--session FILE.json]
    explorer --image PATH --method NAME [--param k=v ...] [--target CLASS] --screenshot OUT.png

The window appears before torch is imported (that happens on the worker thread). With ``--screenshot`` the
app opens the image, runs the method (if any), waits for it to finish, saves a picture of the whole window
and exits: 0 when everything worked, 1 when the run or the model failed (the picture shows the message);
``gui/screenshot.py`` does the waiting and the picture. Works without a display with
``QT_QPA_PLATFORM=offscreen``.
"""

from __future__ import annotations

import logging
import os
import sys


def _app():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("explorer")
        app.setOrganizationName("explorer")
        _set_icon(app)
    return app


def _set_icon(app) -> None:
    """Window/taskbar icon and the desktop entry's name (packaging/linux/explorer.desktop)."""
    from PySide6.QtGui import QIcon

    from explorer import resources
    from explorer.core.errors import ExplorerError

    icon = QIcon()
    for n in (16, 24, 32, 48, 64, 128, 256):
        try:
            icon.addFile(str(resources.icon(n)))
        except ExplorerError:  # a missing size only costs that size
            pass
    app.setWindowIcon(icon)
    app.setDesktopFileName("explorer")


def _fall_back_to(win, choice) -> None:
    """A remembered model that no longer loads (file moved, needs trust): load ``choice`` instead, once."""
    def failed(msg: str) -> None:
        done()
        win.show_info(f"The model used last time could not be loaded ({msg}); {choice.label} is loaded instead.")
        win.load_model(choice)

    def done() -> None:
        win.model_error.disconnect(failed)
        win.model_ready.disconnect(done)

    win.model_error.connect(failed)
    win.model_ready.connect(done)


def _first_run(win, method: str, asked: bool, params: dict, target) -> int | None:
    """Start the window's first run (``method``; ``asked``: the command line named it); its id, None when
    none started."""
    from explorer.gui.teaching import first_start

    if target is not None:
        run = win.runs.start(method, params, 0, target)
        if run is not None:
            win.method_panel.bind(run.id, label=run.label)
            win.catalog_changed.connect(lambda rid=run.id: win.select_run(rid))
    else:  # teaching.first_start also offers the streaming follow-up after the default method
        run = first_start(win, method if asked else None, params)
    return run.id if run is not None else None


def main(args) -> int:
    from explorer import resources
    from explorer.core.params import parse_assignments
    from explorer.gui import memory
    from explorer.gui.main_window import MainWindow
    from explorer.session.model_choice import ModelChoice
    from explorer.session.teaching import first_method

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    def g(k, d=None):
        return getattr(args, k, d)

    params = parse_assignments(g("param") or [])  # a ParamError exits with code 2 via the CLI
    app = _app()
    settings = memory.open_settings()
    asked = ModelChoice.from_args(args)
    # what the command line names, else what the last launch left (photo, model, layout: gui/memory.py)
    plan = memory.start_plan(settings, g("image"), g("session"), asked, bool(g("screenshot")))
    win = MainWindow(plan.choice, settings=settings)
    win.show()
    app.processEvents()
    if plan.choice != asked:
        _fall_back_to(win, asked)
    win.start(trust_pickle=bool(g("trust_pickle", False)))  # the person typed it, for the files they named
    from explorer.gui import recovery

    if g("restore_path"):
        recovery.restore_autosave(win, g("restore_path"))
    elif g("session"):
        win.files.open_session(g("session"))
    else:
        win.files.open_image(plan.image or str(resources.sample("chelsea.png")))
    target = g("target")
    if target is not None and str(target).strip().lstrip("-").isdigit():
        target = int(target)
        win.session.set_target(target)  # shown in the predictions panel and the status bar

    # the window opens on an explanation: --method's, else the default (none for --session or --method none)
    method = first_method(g("method"), g("session") or g("restore_path"), plan.remembered)
    run_id = _first_run(win, method, bool(g("method")), params, target) if method else None

    out = g("screenshot")
    shot = None
    if out:
        from explorer.gui.screenshot import Screenshot

        # a method was asked and none started: exit code 1, the picture shows why
        failed = 1 if method and run_id is None else 0
        shot = Screenshot(win, app, out, run_id, failed).arm(wait_for_predictions=not g("method") or not method)
    elif not g("restore_path"):
        recovery.offer(win)  # after an unclean exit: restore its autosave?
    code = app.exec()
    win.shutdown()
    rc = shot.rc if shot is not None else int(code)
    if win.worker.isRunning():  # stuck in a long import or model load: do not wait for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc

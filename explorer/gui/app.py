"""GUI entry point: ``explorer`` opens the window; with ``--method`` and ``--screenshot`` it runs headless.

    explorer [--image PATH] [--model SPEC ...] [--session FILE.json]
    explorer --image PATH --method NAME [--param k=v ...] [--target CLASS] --screenshot OUT.png

The window appears before torch is imported (that happens on the worker thread). With ``--screenshot`` the
app opens the image, runs the method (if any), waits for it to finish, saves a picture of the whole window
and exits: 0 when everything worked, 1 when the run or the model failed (the picture shows the message).
Works without a display with ``QT_QPA_PLATFORM=offscreen``.
"""

from __future__ import annotations

import logging
import os
import sys

SCREENSHOT_TIMEOUT_S = 900


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


def main(args) -> int:
    from PySide6.QtCore import QTimer

    from explorer import resources
    from explorer.core.params import parse_assignments
    from explorer.gui import memory
    from explorer.gui.main_window import MainWindow
    from explorer.gui.teaching import first_start
    from explorer.session.document import RunStatus
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

    state = {"rc": 0, "run": None}
    # the window opens on an explanation: --method's, else the default (none for --session or --method none)
    method = first_method(g("method"), g("session") or g("restore_path"), plan.remembered)
    if method:
        if target is not None:
            run = win.runs.start(method, params, 0, target)
            if run is not None:
                win.method_panel.bind(run.id, label=run.label)
                win.catalog_changed.connect(lambda rid=run.id: win.select_run(rid))
        else:  # teaching.first_start also offers the streaming follow-up after the default method
            run = first_start(win, method if g("method") else None, params)
        state["run"] = run.id if run is not None else None
        if run is None:
            state["rc"] = 1

    out = g("screenshot")
    if not out and not g("restore_path"):
        recovery.offer(win)  # after an unclean exit: restore its autosave?
    if out:
        def shoot():
            app.processEvents()
            from explorer.core.errors import ExplorerError
            from explorer.io.safe_files import atomic_path

            win.canvas.flush()  # layers still being coloured on the render thread: their newest colours
            try:
                with atomic_path(out) as tmp:  # never a half-written picture under the final name
                    if not win.grab().save(str(tmp), "PNG"):
                        raise OSError("Qt could not write the PNG")
                ok = True
            except ExplorerError:
                ok = False
            if not ok:
                print(f"explorer: error: cannot write the screenshot {out}", file=sys.stderr)
                state["rc"] = 2
            else:
                print(f"screenshot written to {out}")
                for layer in win.session.layers:  # what the picture shows, for scripts and tests
                    run = win.session.runs.get(layer.run_id)
                    if layer.visible and run is not None and run.explanation is not None:
                        how = "complete" if run.explanation.complete else f"partial, {run.progress:.0%}"
                        print(f"shown: {layer.label} ({how})")
            win.close()
            app.quit()

        def settled(rid=None):
            if state["run"] is not None and rid is not None and rid != state["run"]:
                return
            if state["run"] is not None:
                run = win.session.runs.get(state["run"])
                if run is None or run.status != RunStatus.DONE:
                    state["rc"] = 1
            QTimer.singleShot(400, shoot)

        def model_failed(_msg):
            state["rc"] = 1
            if state["run"] is None:
                QTimer.singleShot(400, shoot)

        if state["run"] is not None:
            win.run_settled.connect(settled)
        elif not g("method") or not method:
            win.predictions_shown.connect(lambda: settled())
        else:
            QTimer.singleShot(400, shoot)
        win.model_error.connect(model_failed)

        def too_long():
            print(f"explorer: error: gave up waiting after {SCREENSHOT_TIMEOUT_S} s", file=sys.stderr)
            state["rc"] = 1
            shoot()

        QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, too_long)
    code = app.exec()
    win.shutdown()
    rc = state["rc"] if out else int(code)
    if win.worker.isRunning():  # stuck in a long import or model load: do not wait for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc

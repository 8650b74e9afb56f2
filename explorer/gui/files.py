"""What the window reads and writes: images, sessions, the view as PNG, layers as ``.npy``, the figure grid,
and the recent files. Each action comes with its dialog (``*_dialog``) and without (tests, the command line);
a failure is shown in the window's message bar and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from explorer.core.errors import ExplorerError
from explorer.gui.memory import remember_image
from explorer.io.images import SUFFIXES

IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in SUFFIXES) + ");;All files (*)"
SESSION_FILTER = "Explorer session (*.json);;All files (*)"
RECENT = 10
EXPORT_DIR_KEY = "last/export_dir"  # where the last export went: the next one's dialog opens there
EXPORT_DPI_KEY = "export/dpi"  # 0: figures at the photo's resolution; else this DPI, SLIDE_INCHES wide
EXPORT_DPIS = (150, 300)


class FileActions:
    def __init__(self, win):
        self.win = win  # parent of the dialogs; its session, controller, message bar and settings

    # ------------------------------------------------------------------ images
    def open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.win, "Open image", self.last_dir(), IMAGE_FILTER)
        if path:
            self.open_image(path, explain=True)

    def open_image(self, path: str, explain: bool = False) -> bool:
        """Read and show an image; on failure show why and keep the current one. ``explain``: the user opened
        it (menu, sample, drop): the method the panel shows explains it at once, as on the first start."""
        from explorer.io.images import read_image

        try:
            img = read_image(path)
        except ExplorerError as exc:
            self.win.show_error(f"Cannot open image — {exc}")
            return False
        self.win.runs.set_image(img.rgb, img.path)
        self._add_recent(img.path)
        remember_image(self.win.settings, img.path)  # a plain `explorer` reopens on it
        if explain:
            from explorer.gui.teaching import explain_opened

            explain_opened(self.win)
        return True

    def open_path(self, path: str, explain: bool = True) -> bool:
        """Open a dropped/given file: a session file (.json) or an image (explained, as one from the menu)."""
        if path.lower().endswith(".json"):
            return self.open_session(path)
        return self.open_image(path, explain)

    # ------------------------------------------------------------------ sessions
    def save_session_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.win, "Save session", "session.json", SESSION_FILTER)
        if path:
            self.save_session(path)

    def save_session(self, path: str) -> bool:
        from explorer.io.session_file import arrays_path, save_session

        try:
            p = save_session(path, self.win.session)
        except ExplorerError as exc:
            self.win.show_error(f"Cannot save the session — {exc}")
            return False
        self._add_recent(str(p))
        if getattr(self.win, "autosave", None) is not None:
            self.win.autosave.saved_by_user()  # quitting now needs no autosave of it
        self.win.statusBar().showMessage(f"saved {p}; its maps are in {arrays_path(p).name} beside it: keep the "
                                         "two files together", 10_000)
        return True

    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.win, "Open session", self.last_dir(), SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str, remember: bool = True) -> bool:
        """Reopen a saved session: image, model, runs, layer settings and views, without recomputing
        (``remember``: list it in Open recent; not for an autosave)."""
        from explorer.io.session_file import load_session

        try:
            other = load_session(path)
        except ExplorerError as exc:
            self.win.show_error(f"Cannot open the session — {exc}")
            return False
        s = self.win.session
        # its model, unless it is the one loaded or being loaded (`explorer --session` at launch: loading twice
        # doubled the wait)
        other_model = other.model_choice != s.model_choice or (
            not s.model_info and self.win.loading != other.model_choice)
        if other_model:  # first: the photo's predictions then come from the session's model
            self.win.load_model(other.model_choice)  # never trusted: a file does not grant trust
        self.win.runs.set_image(other.image, other.image_path)
        if other.labels and (other_model or not s.model_info):
            self.win.show_labels(other.labels)  # until its model has loaded: classes named, not "class 967"
        if other.predictions:
            s.set_predictions(other.predictions)  # the session's own, at once; the model's replace them
        if other.image_path and Path(other.image_path).is_file():
            remember_image(self.win.settings, other.image_path)
        s.set_target(other.target)
        for run in other.runs.values():
            s.add_restored(run, other.layers_of(run))
        s.set_active_layer(other.active_layer_id)
        # the views (Compare, Evaluation) once their layers are back and their model is the session's (runs of
        # another model are stale and left out of Compare)
        for name in list(s.views):
            s.set_view(name, None)
        for name, value in other.views.items():
            s.set_view(name, value)
        if remember:
            self._add_recent(str(path))
        self.win.statusBar().showMessage(f"opened session {path} (with its maps from {Path(path).stem}'s .npz "
                                         "beside it)", 5000)
        return True

    # ------------------------------------------------------------------ exports
    def export_view_dialog(self) -> None:
        path = self._save_name("Export view", "view", "PNG (*.png)")
        if path:
            self.export_view(path)

    def export_view(self, path: str) -> bool:
        """What the canvas shows, for a slide: the photo at its resolution (or the chosen DPI) with the visible
        layers, titled with their runs and classes, a colour bar per layer (no letterbox, no window around it)."""
        from explorer.io.export import save_png
        from explorer.session.figure import view_figure

        if self.win.session.image is None:
            self.win.show_error("Cannot export the view — no image is open")
            return False
        size = self.export_size()
        try:
            fig = view_figure(self.win.session, size)
            save_png(path, fig, size.dpi)
        except (ExplorerError, OSError, ValueError) as exc:
            self.win.show_error(f"Cannot export the view — {exc}")
            return False
        self._saved(path, fig.shape[1], fig.shape[0])
        return True

    def export_layers_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.win, "Export layers to folder", self.export_dir())
        if folder:
            self.export_layers(folder)

    def export_layers(self, folder: str) -> list[str]:
        """Every layer with data as float32 .npy (image resolution) plus a JSON index; the files written."""
        from explorer.io.layer_export import export_layers

        written: list[str] = []
        try:
            written.extend(export_layers(self.win.session, folder))
        except ExplorerError as exc:
            self.win.show_error(f"Cannot export the layers — {exc}")
            return written
        except OSError as exc:
            self.win.show_error(f"Cannot export the layers to {folder}: {exc.strerror or exc}")
            return written
        self.win.statusBar().showMessage(f"wrote {len(written)} layers to {folder}", 5000)
        self.win.settings.setValue(EXPORT_DIR_KEY, str(Path(folder).resolve()))
        return written

    def export_figure_dialog(self) -> None:
        path = self._save_name("Export figure", "figure", "PNG (*.png)")
        if path:
            self.export_figure(path)

    def export_figure(self, path: str) -> bool:
        try:
            self.win.compare.refresh()
            w, h = self.win.compare.export_figure(path, self.export_size())
        except (ValueError, OSError, ExplorerError) as exc:
            self.win.show_error(f"Cannot export the figure — {exc}")
            return False
        self._saved(path, w, h)
        return True

    # ------------------------------------------------------------------ export size
    def export_size(self):
        """The size figures and views are exported at (File ▸ Export size): the photo's resolution unless a
        DPI was chosen; remembered across launches."""
        from explorer.session.figure import ExportSize

        try:
            dpi = int(self.win.settings.value(EXPORT_DPI_KEY, 0) or 0)
            return ExportSize(dpi or None)
        except (TypeError, ValueError):  # a settings file edited by hand: the photo's resolution
            return ExportSize()

    def set_export_dpi(self, dpi: int | None) -> bool:
        """Export at ``dpi`` (None: the photo's resolution); False, and why in the status bar, when refused."""
        from explorer.session.figure import ExportSize

        try:
            size = ExportSize(dpi)
        except ValueError as exc:
            self.win.show_status(f"Export size not changed — {exc}")
            return False
        self.win.settings.setValue(EXPORT_DPI_KEY, int(size.dpi or 0))
        self.win.show_status(f"figures and views are exported {size.text()}")
        return True

    def fill_export_size(self, menu) -> None:
        """The File ▸ Export size menu, filled as it opens: the photo's resolution, common DPIs, another."""
        from PySide6.QtWidgets import QInputDialog

        from explorer.session.figure import SLIDE_INCHES

        menu.clear()
        now = self.export_size().dpi
        for dpi in (None, *EXPORT_DPIS):
            text = "At the photo's resolution" if dpi is None else f"{dpi} DPI ({SLIDE_INCHES:g} in wide)"
            a = menu.addAction(text)
            a.setCheckable(True)
            a.setChecked(dpi == now)
            a.triggered.connect(lambda _=False, d=dpi: self.set_export_dpi(d))
        other = menu.addAction("Other DPI…" if now in (None, *EXPORT_DPIS) else f"Other DPI ({now})…")
        other.setCheckable(True)
        other.setChecked(now not in (None, *EXPORT_DPIS))

        def ask():
            dpi, ok = QInputDialog.getInt(self.win, "Export DPI", f"dots per inch ({SLIDE_INCHES:g} in wide)",
                                          now or 200, 30, 1200)
            if ok:
                self.set_export_dpi(dpi)
        other.triggered.connect(lambda _=False: ask())

    # ------------------------------------------------------------------ export names and folders
    def default_name(self, kind: str) -> str:
        """A file name from the photo, the shown run's method and the class: chelsea_grad-cam_egyptian-cat."""
        from explorer.session.figure import slug

        s = self.win.session
        layer = s.active_layer()
        run = s.runs.get(layer.run_id) if layer is not None else None
        photo = Path(s.image_path).stem if s.image_path else "photo"
        method = run.method if run is not None else kind  # the short name: "gradcam", not its title
        t = s.effective_target()
        return slug(photo, method, s.class_name(t) if t is not None else "") + ".png"

    def export_dir(self) -> str:
        v = self.win.settings.value(EXPORT_DIR_KEY, "")
        return str(v) if v and Path(str(v)).is_dir() else self.last_dir()

    def _remember_dir(self, path: str) -> None:
        self.win.settings.setValue(EXPORT_DIR_KEY, str(Path(path).resolve().parent))

    def _save_name(self, caption: str, kind: str, filt: str) -> str:
        start = str(Path(self.export_dir() or ".") / self.default_name(kind))
        path, _ = QFileDialog.getSaveFileName(self.win, caption, start, filt)
        return path

    def _saved(self, path: str, w: int, h: int) -> None:
        size = self.export_size()
        dpi = f", {size.dpi} DPI" if size.dpi else ""
        self.win.show_status(f"saved {path} ({w} × {h} px{dpi})")
        self._remember_dir(path)

    # ------------------------------------------------------------------ recent files
    def recent_files(self) -> list[str]:
        v = self.win.settings.value("recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def last_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else ""

    def _add_recent(self, path: str) -> None:
        items = [p for p in self.recent_files() if p != path]
        self.win.settings.setValue("recent", [path] + items[:RECENT - 1])

    def fill_recent(self, menu) -> None:
        """The File ▸ Open recent menu, filled as it opens."""
        menu.clear()
        recent = self.recent_files()
        if not recent:
            menu.addAction("(none)").setEnabled(False)
        for p in recent:
            menu.addAction(p).triggered.connect(lambda _=False, q=p: self.open_path(q))  # an image or a session

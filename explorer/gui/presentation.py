"""View ▸ Presentation: for teaching in front of a room. Larger fonts, only the canvas and the layer list,
and keys to step through the runs (← →: the previous/next run's headline map alone) and the classes
(↑ ↓: the previous/next of the top-5 predictions: the shown run's map for that class at once when it was
computed before, else, with "live" on, a new run for it beside the others, so flipping back costs nothing).

The class the shown map explains is written large above the canvas, and the message and offer banners float
over the top of the canvas instead of pushing it down, so the picture does not jump when one comes or goes.

Toggling changes widgets only: a run in progress keeps streaming and nothing in the session changes.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QFont, QFontMetrics, QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from explorer.session import teaching
from explorer.session.priors import run_class

FONT_SCALE = 1.6
HEADLINE_SCALE = 1.6  # the class, on top of FONT_SCALE
KEEP_DOCK = "Layers"


class Headline(QWidget):
    """Above the canvas in presentation mode: the class the shown map explains, large, and the run beside it.

    The texts are elided to the width there is (the run's first), so a long run name never widens the window."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cls = QLabel()
        self.run = QLabel()
        for label in (self.cls, self.run):
            label.setTextFormat(Qt.PlainText)
        self.cls.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Preferred)
        self.run.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self._texts = ("", "")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 2, 8, 2)
        lay.addWidget(self.cls)
        lay.addWidget(self.run, 1, Qt.AlignBottom)

    def set_scale(self, base) -> None:
        f = QFont(base)
        f.setPointSizeF(base.pointSizeF() * HEADLINE_SCALE)
        f.setBold(True)
        self.cls.setFont(f)
        self._fit()

    def show_text(self, cls: str, run: str) -> None:
        self._texts = (cls, run)
        self.cls.setToolTip(cls)
        self.run.setToolTip(run)
        self._fit()

    def _fit(self) -> None:
        room = max(0, self.width() - 16 - self.layout().spacing())
        cls = QFontMetrics(self.cls.font()).elidedText(self._texts[0], Qt.ElideRight, room)
        self.cls.setText(cls)
        self.cls.setFixedWidth(QFontMetrics(self.cls.font()).horizontalAdvance(cls) + 6)
        rest = max(0, room - self.cls.width())
        self.run.setText(QFontMetrics(self.run.font()).elidedText(self._texts[1], Qt.ElideMiddle, rest))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()


class FloatingBanners(QObject):
    """The message and offer banners laid over the top of the canvas (presentation mode): showing or hiding one
    changes no layout, so the canvas keeps its place and size."""

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.host = QWidget(win.tabs)
        self.box = QVBoxLayout(self.host)
        self.box.setContentsMargins(6, 6, 6, 0)
        self.host.hide()
        self._home: list[tuple[QWidget, int, bool]] = []
        self.below: QWidget | None = None  # the headline: the banners float under it, never over the class

    def _set_type(self, font: QFont | None) -> None:
        """The banners' text in ``font`` (None: the ordinary one). Their style sheets stop the window's larger
        type from reaching them, so it is set on each of their widgets."""
        for b in self.banners():
            for child in b.findChildren(QWidget):
                child.setFont(font if font is not None else QFont())

    def banners(self) -> list[QWidget]:
        return [self.win.messages, self.win.follow_up]

    def float(self) -> None:
        lay = self.win.centralWidget().layout()
        self._home = [(b, lay.indexOf(b), not b.isHidden()) for b in self.banners()]
        for b, _i, shown in self._home:
            lay.removeWidget(b)
            self.box.addWidget(b)
            b.setVisible(shown)
            b.installEventFilter(self)
        self._set_type(self.win.font())
        for w in (self.win.tabs, self.below):
            if w is not None:
                w.installEventFilter(self)
        self.place()

    def dock(self) -> None:
        lay = self.win.centralWidget().layout()
        for w in (self.win.tabs, self.below):
            if w is not None:
                w.removeEventFilter(self)
        for b, index, _shown in sorted(self._home, key=lambda t: t[1]):
            b.removeEventFilter(self)
            shown = not b.isHidden()
            self.box.removeWidget(b)
            lay.insertWidget(index, b)
            b.setVisible(shown)
        self._home = []
        self._set_type(None)
        self.host.hide()

    def place(self) -> None:
        shown = [b for b in self.banners() if not b.isHidden()]
        if not shown or not self._home:
            self.host.hide()
            return
        w = self.win.tabs.width()
        h = self.box.heightForWidth(w) if self.box.hasHeightForWidth() else self.box.sizeHint().height()
        top = 0
        if self.below is not None and self.below.isVisible():
            top = self.below.mapTo(self.win.tabs, self.below.rect().bottomLeft()).y() + 1
        self.host.setGeometry(0, top, w, h)
        self.host.show()
        self.host.raise_()

    def eventFilter(self, obj, event) -> bool:
        kinds = (QEvent.Resize, QEvent.Move) if obj in (self.win.tabs, self.below) else (
            QEvent.Show, QEvent.Hide, QEvent.LayoutRequest)
        if event.type() in kinds:
            self.place()
        return False


class Presentation(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.active = False
        self._saved: dict = {}
        self.action = QAction("&Presentation", win)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(Qt.Key_F5))
        self.action.setToolTip("larger fonts, the canvas and the layer list only; ← → runs, ↑ ↓ classes")
        self.action.toggled.connect(self.set_active)
        self.headline = Headline()
        self.headline.hide()
        win.canvas.layout().insertWidget(0, self.headline)
        self.banners = FloatingBanners(win)
        self.banners.below = self.headline
        s = win.session
        for sig in (s.active_layer_changed, s.run_changed, s.target_changed):
            sig.connect(lambda *_: self.refresh_headline())
        s.predictions_changed.connect(self.refresh_headline)
        self.shortcuts = []
        for key, fn in ((Qt.Key_Right, lambda: self.step_run(+1)), (Qt.Key_Left, lambda: self.step_run(-1)),
                        (Qt.Key_Down, lambda: self.step_class(+1)), (Qt.Key_Up, lambda: self.step_class(-1))):
            sc = QShortcut(QKeySequence(key), win)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(fn)
            sc.setEnabled(False)
            self.shortcuts.append(sc)

    def set_active(self, on: bool) -> None:
        on = bool(on)
        if on == self.active:
            return
        w = self.win
        if on:
            tab = w.tabs.currentIndex()
            w.tabs.setCurrentWidget(w.canvas)  # first: a wide tab gives its docks back (gui/tab_room.py)
            self._saved = {"font": w.font(), "docks": {t: d.isVisible() for t, d in w.docks.items()},
                           "tabbar": w.tabs.tabBar().isVisible(), "tab": tab}
            f = w.font()
            size = f.pointSizeF() if f.pointSizeF() > 0 else 10.0
            f.setPointSizeF(size * FONT_SCALE)
            w.setFont(f)
            for title, d in w.docks.items():
                d.setVisible(title == KEEP_DOCK)
            # the larger type needs a wider layer list for the meanings to stay readable
            w.resizeDocks([w.docks[KEEP_DOCK]], [int(w.width() * 0.34)], Qt.Horizontal)
            w.tabs.tabBar().setVisible(False)
            self.headline.set_scale(f)
            self.headline.show()
            self.banners.float()
        else:
            self.banners.dock()
            self.headline.hide()
            w.setFont(self._saved.get("font", w.font()))
            for title, d in w.docks.items():
                d.setVisible(self._saved.get("docks", {}).get(title, True))
            w.tabs.tabBar().setVisible(self._saved.get("tabbar", True))
            w.tabs.setCurrentIndex(self._saved.get("tab", 0))  # (a wide tab then sets its docks aside again)
        self.active = on
        self.refresh_headline()
        for sc in self.shortcuts:
            sc.setEnabled(on)
        if self.action.isChecked() != on:
            self.action.setChecked(on)
        w.show_status("presentation: ← → runs, ↑ ↓ classes, F5 to leave" if on else "presentation off")

    def headline_text(self) -> tuple[str, str]:
        """(class, run) of the map on show: the active layer's run and the class it explains, else the target."""
        s = self.win.session
        layer = s.active_layer()
        run = s.runs.get(layer.run_id) if layer is not None and layer.visible else None
        if run is not None and not s.is_stale(run):
            exp = run.explanation
            cls = exp.target_name if exp is not None and exp.target_name else s.class_name(run_class(s, run))
            return cls, run.label
        t = s.effective_target()
        return ("" if t is None else s.class_name(t)), ""

    def refresh_headline(self) -> None:
        if self.active:
            self.headline.show_text(*self.headline_text())

    def current_run(self) -> int | None:
        layer = self.win.session.active_layer()
        return layer.run_id if layer is not None else None

    def step_run(self, delta: int) -> int | None:
        """Show the next/previous run's headline map alone and make it the run live edits re-run."""
        s = self.win.session
        rid = teaching.step_run(s, self.current_run(), delta)
        if rid is None:
            self.win.show_status("no map to step through yet: run a method first")
            return None
        run = s.runs[rid]
        self.win.show_run(rid)
        self.win.show_status(f"{run.label}  ({', '.join(l.name for l in s.layers_of(run))})")
        return rid

    def step_class(self, delta: int) -> int | None:
        s = self.win.session
        if not s.predictions:
            self.win.show_status("no predictions yet")
            return None
        t = teaching.step_target(s.predictions, s.effective_target(), delta)
        s.set_target(t)
        self.win.show_status(f"target: {s.class_name(t)}")
        return t


def install(win) -> Presentation:
    pres = Presentation(win)
    view = next((a.menu() for a in win.menuBar().actions() if a.menu() and a.text() == "&View"), None)
    if view is not None:
        view.addSeparator()
        view.addAction(pres.action)
    else:
        win.addAction(pres.action)
    return pres

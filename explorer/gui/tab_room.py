"""Room for the Compare and Evaluation tabs: while one of them is shown, the photo and model dock and the
predictions dock step aside (their width goes to the grid of maps or the five plots), and they come back as
they were on the Canvas tab. The method and layer docks stay: the maps to compare are picked there.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

ASIDE = ("Image and model", "Predictions")
# a tab's page sets the minimum width of the whole tab widget, shown or not: the Evaluation tab's five plots
# asked for 812 px, which with the docks back on the Canvas tab made a 1600 px window 1691 px wide
MIN_PAGE_WIDTH = 360


class TabRoom(QObject):
    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self._saved: dict[str, bool] | None = None  # the docks' visibility before a wide tab hid them
        win.tabs.currentChanged.connect(self._on_tab)
        for i in range(win.tabs.count()):
            page = win.tabs.widget(i)
            if page is not win.canvas:
                page.setMinimumWidth(MIN_PAGE_WIDTH)

    def _on_tab(self, index: int) -> None:
        win = self.win
        wide = win.tabs.widget(index) is not win.canvas
        docks = [(t, win.docks[t]) for t in ASIDE if t in win.docks]
        if wide and self._saved is None:
            self._saved = {t: d.isVisible() for t, d in docks}
            for _t, d in docks:
                d.hide()
        elif not wide and self._saved is not None:
            for t, d in docks:
                d.setVisible(self._saved.get(t, True))
            self._saved = None


def install(win) -> TabRoom:
    return TabRoom(win)

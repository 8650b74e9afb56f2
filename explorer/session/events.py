"""A tiny, Qt-free signal: ``sig.connect(fn)``, ``sig.emit(*args)``; used by the session document model.

Callbacks run synchronously in the emitting thread. The session is only touched from the GUI thread; the
worker thread talks to it through Qt signals that land on the GUI thread first.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Callable

log = logging.getLogger(__name__)


class Signal:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn not in self._slots:
            self._slots.append(fn)
        return fn

    def disconnect(self, fn: Callable[..., Any] | None = None) -> None:
        if fn is None:
            self._slots.clear()
        elif fn in self._slots:
            self._slots.remove(fn)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for fn in list(self._slots):
            fn(*args)

    @contextmanager
    def blocked(self):
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self._slots)} slots)>"

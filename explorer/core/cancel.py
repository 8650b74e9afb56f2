"""Cooperative cancellation shared by the worker thread and compute code."""

from __future__ import annotations

import threading

from explorer.core.errors import Cancelled


class CancelToken:
    """A flag the GUI sets and compute checks at every yield (thread-safe)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


NEVER = CancelToken()  # a token nobody cancels, for callers without one

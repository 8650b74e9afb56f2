"""A value cached per live object, shared safely by the GUI, compute and render threads.

Numpy arrays and our dataclasses (``MethodResult``, ``LoadedModel``) define no hash, so they cannot be keys of a
``weakref.WeakKeyDictionary``. A dictionary keyed on ``id(obj)`` alone is wrong twice over: an id is reused by the
next object allocated where a dead one lived, and a dead object's clean-up that removes "the entry at my id"
may remove a newer object's entry. Here an entry keeps a weak reference to its object and is returned only
while that reference still resolves to the very object asked about (a live object's id belongs to it alone);
a dying object's callback removes its own entry, never a successor's; a lock guards every read and write.
``token(obj)`` gives an object a number no other object of the process ever gets, for keys that outlive it.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Callable

_MISSING = object()


class ObjectCache:
    def __init__(self) -> None:
        # reentrant: replacing an entry can end the last reference to another cached object, whose callback
        # then removes its own entry on the same thread, inside the lock
        self._lock = threading.RLock()
        self._entries: dict[int, tuple[weakref.ref, Any]] = {}

    def get(self, obj: Any, default: Any = None) -> Any:
        with self._lock:
            hit = self._entries.get(id(obj))
            return hit[1] if hit is not None and hit[0]() is obj else default

    def put(self, obj: Any, value: Any) -> bool:
        """Remember ``value`` for ``obj`` while it lives; False (nothing kept) when it takes no weak reference."""
        key = id(obj)
        try:
            ref = weakref.ref(obj, lambda r, k=key: self._drop(k, r))
        except TypeError:
            return False
        with self._lock:
            self._entries[key] = (ref, value)
        return True

    def get_or_make(self, obj: Any, make: Callable[[], Any]) -> Any:
        """The value for ``obj``, made (once, under the lock) when there is none."""
        with self._lock:
            value = self.get(obj, _MISSING)
            if value is _MISSING:
                value = make()
                self.put(obj, value)
            return value

    def _drop(self, key: int, ref: weakref.ref) -> None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] is ref:
                del self._entries[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_TOKENS = ObjectCache()
_COUNTER = itertools.count(1)


def token(obj: Any) -> int:
    """A number for ``obj`` that no other object of this process ever gets, even after ``obj`` is gone (a cache
    key holding it can never be met by a newer object); the same number on every call while ``obj`` lives (an
    object that takes no weak reference gets a new one each time: a cache miss, never a wrong hit)."""
    return _TOKENS.get_or_make(obj, lambda: next(_COUNTER))

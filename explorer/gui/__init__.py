"""The desktop GUI (PySide6 + pyqtgraph). Never imports torch: compute goes through explorer.workers."""

import sys


def _guard_none_refcount() -> None:
    """Work around PySide6 builds that return ``None`` from void methods without a new reference.

    Measured with PySide6 6.12.0 on CPython 3.11: every call such as ``label.setText(...)`` or
    ``app.processEvents()`` lowers ``None``'s reference count by one, so a long session (pyqtgraph paints
    make thousands of such calls a second) ends in "Fatal Python error: none_dealloc". From Python 3.12
    ``None`` is immortal and this cannot happen; on older CPython we give ``None`` a reference count so
    large that it never reaches zero, which is what 3.12 does by design. No effect elsewhere.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field of every object
    if refcnt.value < (1 << 40):
        refcnt.value += 1 << 60


_guard_none_refcount()

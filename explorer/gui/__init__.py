"""The desktop GUI (PySide6 + pyqtgraph). Never imports torch: compute goes through explorer.workers.

PySide6 6.12.0 loses a reference to ``None`` on every call of a void Qt method, which aborts CPython 3.11
after some ten thousand calls ("none_dealloc"); pyproject.toml therefore requires PySide6 < 6.12, and
tests/test_gui.py keeps a regression test that makes many such calls.
"""

"""The desktop GUI (PySide6 + pyqtgraph). Never imports torch: compute goes through explorer.workers."""

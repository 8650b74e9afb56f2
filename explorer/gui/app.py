"""GUI entry point (a minimal viewer until the full explorer window lands)."""

from __future__ import annotations

import sys


def main(args) -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QImage, QPixmap
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    from explorer import resources
    from explorer.io.images import read_image

    app = QApplication.instance() or QApplication(sys.argv[:1])
    image = read_image(args.image or resources.sample("chelsea.png"))
    h, w = image.hw
    qimg = QImage(image.rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()
    win = QMainWindow()
    win.setWindowTitle(f"explorer — {image.name}")
    label = QLabel()
    label.setPixmap(QPixmap.fromImage(qimg))
    label.setAlignment(Qt.AlignCenter)
    win.setCentralWidget(label)
    win.resize(w + 40, h + 40)
    win.show()
    if args.screenshot:
        def shoot():
            win.grab().save(args.screenshot)
            app.quit()
        QTimer.singleShot(200, shoot)
    return app.exec()

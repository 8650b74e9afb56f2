"""Render resources/icons/explorer.svg to the PNG sizes desktops and installers ask for.

    .venv/bin/python packaging/render_icons.py      # writes resources/icons/explorer-<N>.png

Uses Qt's SVG renderer (PySide6-Essentials ships QtSvg), offscreen, so it runs headless. The PNGs are
committed; re-run this after editing the SVG.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"


def render(svg: Path = ICONS / "explorer.svg", out_dir: Path = ICONS, sizes=SIZES) -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer
    from PySide6.QtWidgets import QApplication

    # a full QApplication (not QGuiApplication), so that widgets created later in the same process still work
    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - the reference keeps Qt alive
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {svg} is not a valid SVG")
    written = []
    for n in sizes:
        img = QImage(n, n, QImage.Format_ARGB32_Premultiplied)
        img.fill(Qt.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        renderer.render(p)
        p.end()
        target = out_dir / f"explorer-{n}.png"
        if not img.save(str(target)):
            raise SystemExit(f"render_icons: cannot write {target}")
        written.append(target)
    return written


if __name__ == "__main__":
    for path in render():
        print(path)

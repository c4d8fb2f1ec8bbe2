"""Render resources/icons/llama-desk.svg into the icon formats installers want, with Qt (no extra tools).

python packaging/make_icons.py ico      -> packaging/llama-desk.ico (Windows: the .exe and setup icon)
python packaging/make_icons.py iconset  -> packaging/llama-desk.iconset/ (macOS: then
                                           `iconutil -c icns packaging/llama-desk.iconset`)
python packaging/make_icons.py png      -> packaging/llama-desk-256.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SVG = HERE.parent / "resources" / "icons" / "llama-desk.svg"


def render(size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(SVG)).render(painter)
    painter.end()
    return image


def save(image: QImage, path: Path) -> None:
    if not image.save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(path)


def main(kind: str) -> None:
    _app = QGuiApplication(sys.argv[:1])
    if kind == "ico":
        save(render(256), HERE / "llama-desk.ico")  # Qt's ico writer; Windows scales it down
    elif kind == "iconset":
        folder = HERE / "llama-desk.iconset"
        folder.mkdir(exist_ok=True)
        for size in (16, 32, 128, 256, 512):
            save(render(size), folder / f"icon_{size}x{size}.png")
            save(render(2 * size), folder / f"icon_{size}x{size}@2x.png")
    elif kind == "png":
        save(render(256), HERE / "llama-desk-256.png")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")

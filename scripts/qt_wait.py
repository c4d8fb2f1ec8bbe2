"""Waiting for the GUI in the screenshot scripts (no pytest-qt there)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEventLoop, QTimer


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Run the event loop until `condition()` holds or `timeout_s` passes."""
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if condition() else None)
    timer.start(20)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()

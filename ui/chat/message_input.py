"""The box the user types into: Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget


class MessageInput(QPlainTextEdit):
    """Signals:
    submitted(): the user pressed Enter to send what they typed.
    """

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self._line = self.fontMetrics().lineSpacing()
        self.setMinimumHeight(self._line * 2 + 16)
        self.setMaximumHeight(self._line * 8 + 16)

    def sizeHint(self) -> QSize:
        return QSize(super().sizeHint().width(), self._line * 3 + 16)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        is_enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if is_enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
            return
        super().keyPressEvent(event)

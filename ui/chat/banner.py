"""The message above a chat: what went wrong or needs a decision, with at most one action button."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from ui.common.theme import chat_colors


class Banner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        warning = chat_colors(self.palette()).warning.name()
        self.setStyleSheet(
            f"#errorBanner {{ background: palette(base); border: 1px solid {warning}; border-radius: 6px; }}"
            f"#errorBanner QLabel {{ color: {warning}; }}"
        )
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.button = QPushButton()
        self.button.hide()
        self.button.clicked.connect(self._on_button)
        self._action: Callable[[], None] | None = None
        dismiss = QToolButton()
        dismiss.setText("✕")
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.addWidget(self._label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show `text`, with a button for `action` (its label, what it does) if given."""
        self._label.setText(text)
        self._action = action[1] if action else None
        if action is not None:
            self.button.setText(action[0])
        self.button.setVisible(action is not None)
        self.show()

    def text(self) -> str:
        return self._label.text()

    @Slot()
    def _on_button(self) -> None:
        if self._action is not None:
            self._action()

"""The chat window's left side: a new chat, search across chats, and the list of conversations."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListView,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

SEARCH_DELAY_MS = 150  # typing pauses this long before a search runs


class ChatSidebar(QWidget):
    """Signals: search_due(): the search text settled (typing paused); run the search now."""

    search_due = Signal()

    def __init__(self, conversations: QAbstractListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(200)
        self.new_chat_button = QPushButton("New chat")
        self.conversation_view = QListView()
        self.conversation_view.setModel(conversations)
        self.conversation_view.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self.conversation_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search all chats…")
        self.search_edit.setClearButtonEnabled(True)
        self.search_results = QListWidget()
        self.search_results.setWordWrap(True)
        self.search_results.hide()
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.search_due)
        self.search_edit.textChanged.connect(lambda _text: self._search_timer.start())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 0, 8)
        layout.addWidget(self.new_chat_button)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.search_results)
        layout.addWidget(self.conversation_view)

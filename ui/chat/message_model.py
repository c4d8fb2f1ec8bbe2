"""The messages of one conversation as a Qt list model (the view virtualizes, so long chats stay cheap)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.chat.store import ChatMessage, MessageStatus
from app.engine.generation import GenerationStats

MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 1
#: How many earlier messages the model did not see, on the first message it did see (else 0).
DROPPED_BEFORE_ROLE = Qt.ItemDataRole.UserRole + 2

#: (position, count), 1-based, when a message has alternatives (regenerated or edited), else None.
BRANCH_ROLE = Qt.ItemDataRole.UserRole + 3

_Index = QModelIndex | QPersistentModelIndex


class MessageListModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self._messages: list[ChatMessage] = []
        self._context_start_id: int | None = None
        self._branches: dict[int, tuple[int, int]] = {}  # message id -> (position, count)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._messages)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._messages):
            return None
        message = self._messages[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return message.content
        if role == MESSAGE_ROLE:
            return message
        if role == DROPPED_BEFORE_ROLE:
            return index.row() if message.id == self._context_start_id else 0
        if role == BRANCH_ROLE:
            return self._branches.get(message.id)
        return None

    def message(self, row: int) -> ChatMessage:
        return self._messages[row]

    def set_messages(
        self,
        messages: list[ChatMessage],
        context_start_id: int | None = None,
        branches: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        self.beginResetModel()
        self._messages = list(messages)
        self._context_start_id = context_start_id
        self._branches = dict(branches or {})
        self.endResetModel()

    def set_branches(self, branches: dict[int, tuple[int, int]]) -> None:
        """New branch counts (after a regenerate or edit); repaints only the rows whose count changed."""
        changed = {
            k for k in branches.keys() | self._branches.keys() if branches.get(k) != self._branches.get(k)
        }
        self._branches = dict(branches)
        for message_id in changed:
            row = self.row_of(message_id)
            if row is not None:
                index = self.index(row)
                self.dataChanged.emit(index, index)

    def set_context_start(self, message_id: int | None) -> None:
        """Mark where the model's view of the chat begins (None: it sees everything)."""
        changed = [self._context_start_id, message_id]
        self._context_start_id = message_id
        for changed_id in changed:
            row = self.row_of(changed_id) if changed_id is not None else None
            if row is not None:
                index = self.index(row)
                self.dataChanged.emit(index, index)

    @property
    def dropped_count(self) -> int:
        row = self.row_of(self._context_start_id) if self._context_start_id is not None else None
        return row or 0

    def append(self, message: ChatMessage) -> None:
        row = len(self._messages)
        self.beginInsertRows(QModelIndex(), row, row)
        self._messages.append(message)
        self.endInsertRows()

    def row_of(self, message_id: int) -> int | None:
        # Replies grow at the end, so search from there.
        for row in range(len(self._messages) - 1, -1, -1):
            if self._messages[row].id == message_id:
                return row
        return None

    def append_text(self, message_id: int, text: str) -> None:
        self._update(message_id, lambda m: dataclasses.replace(m, content=m.content + text))

    def finish(
        self, message_id: int, text: str, status: MessageStatus, stats: GenerationStats | None
    ) -> None:
        self._update(message_id, lambda m: dataclasses.replace(m, content=text, status=status, stats=stats))

    def _update(self, message_id: int, change: Callable[[ChatMessage], ChatMessage]) -> None:
        row = self.row_of(message_id)
        if row is None:
            return
        self._messages[row] = change(self._messages[row])
        index = self.index(row)
        self.dataChanged.emit(index, index)

"""The sidebar's list of conversations, editable in place to rename."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.chat.store import ChatStore, Conversation

CONVERSATION_ID_ROLE = Qt.ItemDataRole.UserRole + 1

_Index = QModelIndex | QPersistentModelIndex


class ConversationListModel(QAbstractListModel):
    def __init__(self, store: ChatStore) -> None:
        super().__init__()
        self._store = store
        self._conversations: list[Conversation] = []
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._conversations = self._store.conversations()
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._conversations)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._conversations):
            return None
        conversation = self._conversations[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conversation.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return conversation.title
        if role == CONVERSATION_ID_ROLE:
            return conversation.id
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: _Index, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        conversation = self._conversations[index.row()]
        self._store.rename_conversation(conversation.id, str(value))
        renamed = self._store.conversation(conversation.id)
        if renamed is None:
            return False
        self._conversations[index.row()] = renamed
        self.dataChanged.emit(index, index)
        return True

    def row_of(self, conversation_id: int) -> int | None:
        for row, conversation in enumerate(self._conversations):
            if conversation.id == conversation_id:
                return row
        return None

    def conversation_id(self, row: int) -> int:
        return self._conversations[row].id

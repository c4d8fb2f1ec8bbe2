"""Driving a chat window in tests: open one, send a message, wait for the reply."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListView
from pytestqt.qtbot import QtBot

from ui.chat.message_delegate import MessageDelegate
from ui.chat.message_model import MessageListModel
from ui.chat.window import ChatWindow
from ui.gui import open_chat_window
from ui.services import AppServices

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 120_000


def make_window(qtbot: QtBot, services: AppServices, model_path: Path | None = None) -> ChatWindow:
    window = open_chat_window(services, model_path)
    qtbot.addWidget(window)
    window.show()
    return window


def send(qtbot: QtBot, window: ChatWindow, text: str) -> None:
    window.input_box.setPlainText(text)
    qtbot.keyClick(window.input_box, Qt.Key.Key_Return)


def wait_for_reply(qtbot: QtBot, window: ChatWindow) -> None:
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)


def show_message_view(
    qtbot: QtBot, model: MessageListModel, height: int
) -> tuple[QListView, MessageDelegate]:
    """The chat's message list alone, 900 px wide, shown and exposed."""
    view = QListView()
    view.setModel(model)
    delegate = MessageDelegate(view)
    view.setItemDelegate(delegate)
    view.resize(900, height)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    return view, delegate

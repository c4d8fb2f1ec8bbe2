"""Searching all chats from the sidebar, and exporting a chat, in the window."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from app.chat.store import ChatStore
from app.context import AppContext
from app.core.data_home import DataHome
from ui.chat.window import ChatWindow
from ui.gui import open_chat_window
from ui.services import AppServices


@pytest.fixture
def window(qtbot: QtBot, data_home: DataHome) -> Iterator[ChatWindow]:
    store = ChatStore(data_home.chats_db)
    bread = store.create_conversation()
    store.add_message(bread.id, "user", "How do I bake sourdough bread?")
    store.add_message(bread.id, "assistant", "Use a lively starter and a hot Dutch oven.")
    for i in range(3):
        other = store.create_conversation()
        store.add_message(other.id, "user", f"Unrelated question {i}")
    store.close()
    context = AppContext.open(data_home)
    win = open_chat_window(AppServices(context), None)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()
    context.close()


def test_search_finds_a_message_and_opens_its_chat_there(qtbot: QtBot, window: ChatWindow) -> None:
    first_shown = window.current_conversation_id
    qtbot.keyClicks(window.search_edit, "dutch")
    qtbot.waitUntil(lambda: window.search_results.isVisible() and window.search_results.count() == 1)
    item = window.search_results.item(0)
    assert "[Dutch]" in item.text() and "sourdough" in item.text()
    window.search_results.itemClicked.emit(item)
    assert window.current_conversation_id != first_shown
    assert window.message_view.currentIndex().row() == 1  # the matching reply is selected
    assert not window.search_results.isVisible() and window.search_edit.text() == ""

    qtbot.keyClicks(window.search_edit, "nothing-like-this")
    qtbot.waitUntil(lambda: window.search_results.count() == 1)
    assert "No message matches" in window.search_results.item(0).text()


def test_export_writes_json_and_markdown(
    window: ChatWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.search_edit.setText("sourdough")
    window.run_search()
    window.search_results.itemClicked.emit(window.search_results.item(0))
    for kind, name in (("json", "chat.json"), ("md", "chat.md")):
        target = tmp_path / name
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_a, _t=target, **_k: (str(_t), ""))
        window._export(kind)
    data = json.loads((tmp_path / "chat.json").read_text())
    assert [m["content"] for m in data["messages"]] == [
        "How do I bake sourdough bread?",
        "Use a lively starter and a hot Dutch oven.",
    ]
    assert (tmp_path / "chat.md").read_text().startswith("# How do I bake sourdough bread?")

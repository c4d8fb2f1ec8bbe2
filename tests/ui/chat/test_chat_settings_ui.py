"""Per-chat context length, and progress while a long prompt is read."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from app.chat.store import ChatStore
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams
from tests.ui.chat.chat_helpers import send, wait_for_reply
from ui.chat.window import ChatWindow


def test_each_chat_keeps_its_own_context_length(
    qtbot: QtBot, window: ChatWindow, data_home: DataHome
) -> None:
    store = ChatStore(data_home.chats_db)
    small_chat = window.current_conversation_id
    assert small_chat is not None
    store.set_sampling(small_chat, GenerationParams(max_tokens=4, context_length=1024))
    send(qtbot, window, "Hi")
    wait_for_reply(qtbot, window)
    assert window.context_meter.maximum() == 1024

    window.new_conversation()
    window.generation_params = GenerationParams(max_tokens=4)
    send(qtbot, window, "Hello")
    wait_for_reply(qtbot, window)
    assert window.context_meter.maximum() == window.model_info.n_ctx  # the app's setting again
    assert window.context_meter.maximum() != 1024

    dialog = window.edit_sampling()
    assert dialog is not None
    dialog.context_length.setValue(1536)
    dialog.accept()
    conversation = store.conversation(window.current_conversation_id or -1)
    assert conversation is not None and conversation.sampling is not None
    assert conversation.sampling.context_length == 1536


def test_a_long_prompt_shows_reading_progress(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(max_tokens=2)
    long_text = " ".join(f"note{i}" for i in range(400))
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    send(qtbot, window, long_text)
    wait_for_reply(qtbot, window)
    reading = [m for m in messages if m.startswith("Reading the conversation…")]
    assert reading, messages
    assert "% (512 of " in reading[0]

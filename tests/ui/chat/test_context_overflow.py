"""A chat longer than the context window, in the window: the marker shows, the system prompt survives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.chat.store import ChatStore, MessageStatus
from app.context import AppContext
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams
from ui.chat.message_delegate import marker_text
from ui.chat.message_model import DROPPED_BEFORE_ROLE
from ui.gui import open_chat_window
from ui.services import AppServices

TIMEOUT_MS = 60_000


@pytest.fixture
def small_context(data_home: DataHome) -> Iterator[AppContext]:
    ctx = AppContext.open(data_home)
    ctx.settings.context_length = 256  # the starter model with a tiny window overflows quickly
    store = ChatStore(data_home.chats_db)
    conversation = store.create_conversation("A long chat")
    for i in range(10):
        store.add_message(conversation.id, "user", f"Tell me fact number {i} about the ocean, please.")
        store.add_message(
            conversation.id, "assistant", f"Fact {i}: the ocean is very large and very deep indeed."
        )
    store.close()
    yield ctx
    ctx.close()


def test_overflow_shows_a_marker_keeps_the_system_prompt_and_goes_on(
    qtbot: QtBot, small_context: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = open_chat_window(AppServices(small_context), None)
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT_MS)
        assert window.model_info is not None and window.model_info.n_ctx == 256
        dialog = window.edit_system_prompt()
        assert dialog is not None
        dialog.editor.setPlainText("Answer in one sentence.")
        dialog.accept()
        window.generation_params = GenerationParams(temperature=0.0, max_tokens=40)
        window.input_box.setPlainText("And one about rivers?")
        qtbot.keyClick(window.input_box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)

        model = window.message_model
        reply = model.message(model.rowCount() - 1)
        assert reply.status is MessageStatus.COMPLETE and reply.content.strip()
        markers = [(row, model.index(row).data(DROPPED_BEFORE_ROLE)) for row in range(model.rowCount())]
        [(row, dropped)] = [(r, d) for r, d in markers if d]
        assert dropped == row > 0 and model.message(row).role == "user"
        assert "beyond the model's context window" in marker_text(dropped)
        assert "/ 256" in window.context_meter.text() and window.context_meter.value() > 0
        conversation = ChatStore(small_context.home.chats_db).conversation(
            window.current_conversation_id or 0
        )
        assert conversation is not None and conversation.system_prompt == "Answer in one sentence."
        assert conversation.context_start_id == model.message(row).id

        window.new_conversation()
        window.select_conversation(conversation.id)  # reopening shows the marker again
        assert window.message_model.index(row).data(DROPPED_BEFORE_ROLE) == dropped
        window.message_view.scrollTo(window.message_model.index(row))
        window.grab().save(str(small_context.home.root / "overflow.png"))
    finally:
        window.shutdown()


def test_each_chat_keeps_its_own_sampling_settings(qtbot: QtBot, small_context: AppContext) -> None:
    window = open_chat_window(AppServices(small_context), None)
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=TIMEOUT_MS)
        dialog = window.edit_sampling()
        assert dialog is not None
        dialog.temperature.setValue(0.0)
        dialog.max_tokens.setValue(3)
        dialog.seed.setValue(42)
        dialog.accept()
        chat_id = window.current_conversation_id
        window.input_box.setPlainText("Tell me a long story.")
        window.send_message()
        qtbot.waitUntil(lambda: not window.is_generating, timeout=TIMEOUT_MS)
        reply = window.message_model.message(window.message_model.rowCount() - 1)
        assert reply.stats is not None and reply.stats.completion_tokens == 3
        stored = ChatStore(small_context.home.chats_db).conversation(chat_id or 0)
        assert stored is not None and stored.sampling is not None
        assert (stored.sampling.max_tokens, stored.sampling.seed, stored.sampling.temperature) == (3, 42, 0.0)

        window.new_conversation()  # another chat keeps the defaults
        other = window.edit_sampling()
        assert other is not None and other.max_tokens.value() == window.generation_params.max_tokens
        other.reject()
    finally:
        window.shutdown()

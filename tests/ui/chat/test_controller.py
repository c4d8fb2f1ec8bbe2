"""The chat controller without any widget: load, stream, stop, and answers to replaced requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from app.chat.store import ChatStore, MessageStatus
from app.context import AppContext
from app.engine.generation import GenerationParams
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS
from ui.chat.controller import ChatController


@pytest.fixture
def chat(context: AppContext) -> Iterator[ChatController]:
    starter = context.default_model()
    assert starter is not None
    controller = ChatController(context, starter.path, starter.name)
    yield controller
    controller.shutdown()
    assert controller.worker_thread.isFinished()


def test_load_then_stream_a_reply(qtbot: QtBot, chat: ChatController, context: AppContext) -> None:
    with qtbot.waitSignal(chat.model_ready, timeout=LOAD_TIMEOUT_MS):
        assert chat.load()
        assert chat.is_loading
    assert chat.model_info is not None and not chat.is_loading
    store = ChatStore(context.home.chats_db)
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Say hello.")
    pieces: list[str] = []
    chat.text_arrived.connect(pieces.append)
    with qtbot.waitSignal(chat.reply_finished, timeout=REPLY_TIMEOUT_MS) as finished:
        chat.request_reply(conversation.id, GenerationParams(temperature=0.0, max_tokens=12))
        assert chat.is_generating
    outcome = finished.args[0]
    assert outcome.status is MessageStatus.COMPLETE and "".join(pieces) == outcome.text
    assert not chat.is_generating and chat.streaming_text == ""
    store.close()


def test_an_answer_to_a_replaced_load_changes_nothing(qtbot: QtBot, chat: ChatController) -> None:
    with qtbot.waitSignal(chat.model_ready, timeout=LOAD_TIMEOUT_MS):
        chat.load()
    failures: list[str] = []
    chat.model_failed.connect(failures.append)
    chat._on_model_load_failed(chat.load_request - 1, "an older load failed")
    assert failures == [] and chat.model_info is not None

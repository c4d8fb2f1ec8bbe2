"""Regenerate, edit-and-resend, switching branches and deleting messages in the chat window."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from app.chat.actions import MessageAction
from app.chat.store import ChatStore, MessageStatus
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams
from tests.ui.chat.chat_helpers import send, wait_for_reply
from ui.chat.message_model import BRANCH_ROLE
from ui.chat.window import ChatWindow


@pytest.fixture
def window(window: ChatWindow) -> ChatWindow:
    # Sampled with a new seed each time: the same prompt gives a different reply, so branches differ.
    window.generation_params = GenerationParams(temperature=1.0, max_tokens=12, seed=None)
    return window


def shown(window: ChatWindow) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in window.message_model_snapshot()]


def test_regenerate_keeps_the_old_reply_as_a_branch(
    qtbot: QtBot, window: ChatWindow, data_home: DataHome
) -> None:
    send(qtbot, window, "Name a colour.")
    wait_for_reply(qtbot, window)
    first = window.message_model_snapshot()[-1]

    window.handle_message_action(1, MessageAction.REGENERATE)
    assert window.is_generating
    wait_for_reply(qtbot, window)
    messages = window.message_model_snapshot()
    assert len(messages) == 2 and messages[-1].id != first.id
    assert messages[-1].status is MessageStatus.COMPLETE
    assert window.message_model.index(1).data(BRANCH_ROLE) == (2, 2)
    assert window.message_model.index(0).data(BRANCH_ROLE) is None

    window.handle_message_action(1, MessageAction.PREVIOUS_BRANCH)
    assert window.message_model_snapshot()[-1].id == first.id
    assert window.message_model.index(1).data(BRANCH_ROLE) == (1, 2)

    # The next turn follows the branch that is shown.
    send(qtbot, window, "Another.")
    wait_for_reply(qtbot, window)
    store = ChatStore(data_home.chats_db)
    conversation_id = window.current_conversation_id
    assert conversation_id is not None
    ids = [m.id for m in store.messages(conversation_id)]
    assert ids[1] == first.id and len(ids) == 4


def test_ctrl_r_regenerates_the_last_reply(qtbot: QtBot, window: ChatWindow) -> None:
    send(qtbot, window, "Hi")
    wait_for_reply(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    wait_for_reply(qtbot, window)
    assert window.message_model.index(1).data(BRANCH_ROLE) == (2, 2)


def test_edit_and_resend_branches_from_the_edited_message(qtbot: QtBot, window: ChatWindow) -> None:
    send(qtbot, window, "Tell me about cats.")
    wait_for_reply(qtbot, window)
    send(qtbot, window, "And their food?")
    wait_for_reply(qtbot, window)
    assert len(shown(window)) == 4

    dialog = window.open_edit_dialog(window.message_model_snapshot()[0].id)
    assert dialog is not None and dialog.textValue() == "Tell me about cats."
    dialog.setTextValue("Tell me about dogs.")
    dialog.accept()
    wait_for_reply(qtbot, window)

    roles_and_texts = shown(window)
    assert [r for r, _ in roles_and_texts] == ["user", "assistant"]
    assert roles_and_texts[0][1] == "Tell me about dogs."
    assert roles_and_texts[1][1]  # a new reply to the edited question
    assert window.message_model.index(0).data(BRANCH_ROLE) == (2, 2)

    window.handle_message_action(0, MessageAction.NEXT_BRANCH)  # wraps to the original
    assert [t for _, t in shown(window)][::2] == ["Tell me about cats.", "And their food?"]


def test_delete_and_copy_a_message(qtbot: QtBot, window: ChatWindow) -> None:
    send(qtbot, window, "One")
    wait_for_reply(qtbot, window)
    send(qtbot, window, "Two")
    wait_for_reply(qtbot, window)
    reply = window.message_model_snapshot()[1]

    window.handle_message_action(1, MessageAction.COPY)
    assert QGuiApplication.clipboard().text() == reply.content

    window.handle_message_action(1, MessageAction.DELETE)
    assert [t for _, t in shown(window)][:2] == ["One", "Two"]
    assert reply.id not in [m.id for m in window.message_model_snapshot()]


def test_actions_wait_while_a_reply_streams(qtbot: QtBot, window: ChatWindow) -> None:
    send(qtbot, window, "One")
    wait_for_reply(qtbot, window)
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=400)
    send(qtbot, window, "Write a long story about a lighthouse keeper.")
    qtbot.waitUntil(lambda: window.is_generating)
    window.handle_message_action(0, MessageAction.DELETE)
    assert window.message_model_snapshot()[0].content == "One"
    assert "Wait for the reply" in window.statusBar().currentMessage()
    window.stop_reply()
    wait_for_reply(qtbot, window)

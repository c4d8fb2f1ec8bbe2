"""The chat window offscreen, on the real starter model: streaming, Stop, responsiveness, persistence."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.chat.store import ChatStore, MessageStatus
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, make_window, send, wait_for_reply
from ui.chat.window import ChatWindow
from ui.services import AppServices

LONG_TASK = "Write a long story about a lighthouse keeper."


def test_reply_streams_into_the_view(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=60)
    snapshots: list[str] = []
    model = window.message_model
    model.dataChanged.connect(lambda top, _bottom: snapshots.append(model.message(top.row()).content))

    send(qtbot, window, "Tell me about the sea.")
    assert window.stop_button.isVisible() and not window.send_button.isVisible()
    wait_for_reply(qtbot, window)

    assert model.rowCount() == 2
    user, reply = model.message(0), model.message(1)
    assert (user.role, user.content) == ("user", "Tell me about the sea.")
    assert reply.role == "assistant" and reply.status is MessageStatus.COMPLETE
    assert reply.content.strip()
    growing = [s for s in snapshots if s]
    assert len(growing) >= 2, "text should arrive in several updates, not all at once"
    assert all(reply.content.startswith(s) for s in growing)
    assert reply.stats is not None and reply.stats.tokens_per_s > 0
    assert window.send_button.isVisible() and not window.stop_button.isVisible()
    assert window.input_box.toPlainText() == ""


def test_shift_enter_adds_a_line_and_enter_sends(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=8)
    qtbot.keyClicks(window.input_box, "first line")
    qtbot.keyClick(window.input_box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input_box, "second line")
    assert window.message_model.rowCount() == 0
    assert window.input_box.toPlainText() == "first line\nsecond line"
    qtbot.keyClick(window.input_box, Qt.Key.Key_Return)
    assert window.message_model.message(0).content == "first line\nsecond line"
    wait_for_reply(qtbot, window)


def test_blank_input_sends_nothing(qtbot: QtBot, window: ChatWindow) -> None:
    send(qtbot, window, "   \n  ")
    assert window.message_model.rowCount() == 0
    assert not window.is_generating


def test_stop_ends_the_reply_and_keeps_it_marked_incomplete(
    qtbot: QtBot, window: ChatWindow, data_home: DataHome
) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=2000)
    send(qtbot, window, LONG_TASK)
    qtbot.waitUntil(
        lambda: window.message_model.rowCount() == 2 and bool(window.message_model.message(1).content),
        timeout=REPLY_TIMEOUT_MS,
    )
    qtbot.mouseClick(window.stop_button, Qt.MouseButton.LeftButton)
    wait_for_reply(qtbot, window)

    reply = window.message_model.message(1)
    assert reply.status is MessageStatus.STOPPED
    assert reply.stats is not None and reply.stats.completion_tokens < 2000
    text_at_stop = reply.content
    stored = ChatStore(data_home.chats_db).messages(window.current_conversation_id)  # type: ignore[arg-type]
    assert stored[1].status is MessageStatus.STOPPED and stored[1].content == text_at_stop
    assert window.send_button.isVisible()


def test_escape_stops_the_reply(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=2000)
    send(qtbot, window, LONG_TASK)
    qtbot.waitUntil(lambda: window.message_model.rowCount() == 2, timeout=REPLY_TIMEOUT_MS)
    qtbot.keyClick(window.input_box, Qt.Key.Key_Escape)
    wait_for_reply(qtbot, window)
    assert window.message_model.message(1).status is MessageStatus.STOPPED


def test_event_loop_keeps_ticking_while_a_reply_streams(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=150)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    send(qtbot, window, LONG_TASK)
    wait_for_reply(qtbot, window)
    timer.stop()

    reply = window.message_model.message(1)
    assert reply.stats is not None and reply.stats.completion_tokens > 20
    longest = max(b - a for a, b in itertools.pairwise(ticks))
    tokens = reply.stats.completion_tokens
    print(f"{len(ticks)} ticks while streaming {tokens} tokens; longest gap {longest * 1000:.1f} ms")
    assert longest < 0.1


def test_conversations_survive_closing_the_window(
    qtbot: QtBot, services: AppServices, window: ChatWindow
) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=24)
    send(qtbot, window, "Remember the word banana.")
    wait_for_reply(qtbot, window)
    before = [(m.role, m.content, m.status) for m in window.message_model_snapshot()]
    conversation_id = window.current_conversation_id
    window.close()
    assert window.worker_thread.isFinished()

    reopened = make_window(qtbot, services)
    try:
        assert reopened.current_conversation_id == conversation_id
        titles = [
            reopened.conversation_model.index(r).data() for r in range(reopened.conversation_model.rowCount())
        ]
        assert titles == ["Remember the word banana."]
        assert [(m.role, m.content, m.status) for m in reopened.message_model_snapshot()] == before
    finally:
        reopened.shutdown()


def test_new_rename_and_delete_conversations(
    qtbot: QtBot, window: ChatWindow, monkeypatch: pytest.MonkeyPatch, data_home: DataHome
) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=8)
    send(qtbot, window, "First chat")
    wait_for_reply(qtbot, window)
    first = window.current_conversation_id
    window.new_conversation()
    second = window.current_conversation_id
    assert second != first and window.message_model.rowCount() == 0
    window.new_conversation()  # still empty: no third chat
    assert window.conversation_model.rowCount() == 2

    window.rename_conversation(first, "Renamed chat")  # type: ignore[arg-type]
    titles = {window.conversation_model.index(r).data() for r in range(2)}
    assert "Renamed chat" in titles

    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Cancel)
    assert not window.delete_conversation(first)  # type: ignore[arg-type]
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    assert window.delete_conversation(first)  # type: ignore[arg-type]
    assert window.conversation_model.rowCount() == 1
    assert ChatStore(data_home.chats_db).messages(first) == []  # type: ignore[arg-type]


def test_delete_is_refused_while_the_chat_receives_a_reply(
    qtbot: QtBot, window: ChatWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=2000)
    send(qtbot, window, LONG_TASK)
    conversation_id = window.current_conversation_id
    assert not window.delete_conversation(conversation_id)  # type: ignore[arg-type]
    assert "Stop it first" in window.error_text()
    window.stop_reply()
    wait_for_reply(qtbot, window)


def test_switching_chats_mid_reply_keeps_the_reply_in_its_own_chat(qtbot: QtBot, window: ChatWindow) -> None:
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=60)
    send(qtbot, window, LONG_TASK)
    streaming_id = window.current_conversation_id
    qtbot.waitUntil(lambda: window.message_model.rowCount() == 2, timeout=REPLY_TIMEOUT_MS)
    window.new_conversation()
    assert window.message_model.rowCount() == 0
    wait_for_reply(qtbot, window)
    assert window.message_model.rowCount() == 0
    window.select_conversation(streaming_id)  # type: ignore[arg-type]
    reply = window.message_model.message(1)
    assert reply.status is MessageStatus.COMPLETE and reply.content.strip()


@pytest.mark.parametrize(("content", "expected"), [(None, "not found"), (b"not a model", "not a GGUF")])
def test_bad_model_file_shows_an_error_not_a_crash(
    qtbot: QtBot, services: AppServices, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "broken.gguf"
    if content is not None:
        path.write_bytes(content)
    window = make_window(qtbot, services, path)
    try:
        qtbot.waitUntil(lambda: expected in window.error_text(), timeout=LOAD_TIMEOUT_MS)
        assert window.model_info is None
        window.input_box.setPlainText("hello")
        assert not window.send_button.isEnabled()
        window.send_message()
        assert window.message_model.rowCount() == 0
    finally:
        window.shutdown()

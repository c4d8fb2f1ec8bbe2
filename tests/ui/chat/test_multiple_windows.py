"""Several chat windows, each with its own model, and the memory check before another model loads."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtGui import QKeySequence
from pytestqt.qtbot import QtBot

from app.engine.generation import GenerationParams
from app.engine.usage import LoadedModel, memory_warning
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, send
from ui.chat.window import ChatWindow
from ui.gui import ChatWindows

GIB = 1 << 30


def test_two_windows_with_two_models_stream_at_once_without_interfering(
    qtbot: QtBot, windows: ChatWindows, starter_path: Path, tmp_path: Path
) -> None:
    second_model = shutil.copy(starter_path, tmp_path / "second-model.gguf")
    first = windows.open(starter_path)
    second = windows.open(Path(second_model))
    for window in (first, second):
        qtbot.waitUntil(lambda w=window: w.model_info is not None, timeout=LOAD_TIMEOUT_MS)
        window.generation_params = GenerationParams(temperature=0.0, max_tokens=40)
    assert first.model_info is not None and second.model_info is not None
    assert first.model_info.path != second.model_info.path

    send(qtbot, first, "Name three rivers.")
    send(qtbot, second, "Name three rivers.")
    assert first.is_generating and second.is_generating  # both at once
    qtbot.waitUntil(lambda: not first.is_generating and not second.is_generating, timeout=REPLY_TIMEOUT_MS)

    replies = []
    for window in (first, second):
        messages = window.message_model_snapshot()
        assert [m.role for m in messages] == ["user", "assistant"]
        replies.append(messages[1].content)
    assert replies[0].strip() and replies[0] == replies[1]  # same weights, greedy: same words
    assert first.current_conversation_id != second.current_conversation_id

    second.close()
    qtbot.waitUntil(lambda: len(windows.windows) == 1)


def test_new_window_action_opens_a_window_on_a_chat_of_its_own(
    qtbot: QtBot, windows: ChatWindows, starter_path: Path
) -> None:
    first = windows.open(starter_path)
    [action] = [a for a in first.actions() if a.text() == "New window"]
    assert action.shortcut() == QKeySequence("Ctrl+Shift+N")
    action.trigger()
    assert len(windows.windows) == 2
    new = windows.windows[1]
    qtbot.waitUntil(lambda: new.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    assert new.current_conversation_id not in (None, first.current_conversation_id)


def test_a_model_that_would_not_fit_beside_the_others_asks_first(
    qtbot: QtBot, windows: ChatWindows, tmp_path: Path
) -> None:
    huge = write_header_only_llama(tmp_path / "Llama-3-70B-F16.gguf", LLAMA_SHAPES["Llama-3-70B"])
    window: ChatWindow = windows.open(huge)
    qtbot.waitUntil(lambda: window.banner_button.isVisibleTo(window), timeout=LOAD_TIMEOUT_MS)
    assert window.banner_button.text() == "Load anyway"
    assert "Llama-3-70B-F16.gguf needs about" in window.error_text()
    assert "Close another chat window" in window.error_text()
    assert window.model_info is None


def test_memory_warning_counts_shared_weights_once() -> None:
    model = LoadedModel(Path("/m/a.gguf"), weights_bytes=6 * GIB, context_bytes=1 * GIB)
    other = LoadedModel(Path("/m/b.gguf"), weights_bytes=8 * GIB, context_bytes=1 * GIB)
    assert memory_warning(model, [], ram_total=16 * GIB) is None
    assert memory_warning(model, [other], ram_total=16 * GIB) is not None  # 7 + 9 + headroom > 16
    # A second window on the same file maps the same weights: only its own cache is new.
    assert memory_warning(model, [model], ram_total=16 * GIB) is None
    warning = memory_warning(model, [other, other], ram_total=16 * GIB)
    assert warning is not None and "the 2 model(s) open in other windows use about 10.0 GiB" in warning

"""App-wide services, owned once: weights loaded once for every window on a file, one download queue
that outlives the window that started it, and settings checked when the app starts."""

from __future__ import annotations

import json
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.core.data_home import DataHome
from app.downloads.hub import HubClient, choose_file
from app.downloads.jobs import JobState
from app.engine.generation import GenerationParams
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, send
from ui.gui import ChatWindows, open_first_window
from ui.services import AppServices


def test_two_windows_on_one_model_load_its_weights_once(
    qtbot: QtBot, windows: ChatWindows, services: AppServices, starter_path: Path
) -> None:
    weights = services.context.library.usage.weights
    first = windows.open(starter_path)
    second = windows.open(starter_path)
    for window in (first, second):
        qtbot.waitUntil(lambda w=window: w.model_info is not None, timeout=LOAD_TIMEOUT_MS)
        window.generation_params = GenerationParams(temperature=0.0, max_tokens=24)
    assert weights.loads == 1, "the second window must share the first one's weights"
    assert weights.holders(starter_path) == 2

    send(qtbot, first, "Name a colour.")
    send(qtbot, second, "Name a colour.")
    qtbot.waitUntil(lambda: not first.is_generating and not second.is_generating, timeout=REPLY_TIMEOUT_MS)
    replies = [w.message_model_snapshot()[-1].content for w in (first, second)]
    assert replies[0].strip() and replies[0] == replies[1], "two contexts on one model, greedy: same text"

    first.close()
    qtbot.waitUntil(lambda: weights.holders(starter_path) == 1)
    second.close()
    qtbot.waitUntil(lambda: weights.holders(starter_path) == 0)
    assert weights.loads == 1


def test_closing_one_window_leaves_the_download_another_started_running(
    qtbot: QtBot, windows: ChatWindows, services: AppServices, fake_hub: FakeHub, tmp_path: Path
) -> None:
    data = write_small_gguf(tmp_path / "m.gguf").read_bytes()
    data += b"\0" * ((2 << 20) - len(data))
    repo, name = "bartowski/Tiny-GGUF", "tiny-Q4_K_M.gguf"
    fake_hub.add_repo(FakeRepo(repo, {name: FakeFile(data)}))
    fake_hub.faults.chunk_delay_s = 0.05
    starter, other = windows.open(), windows.open()
    manager = starter.show_model_manager()
    assert other.show_model_manager() is manager, "every window opens the app's one Model manager"

    job_id = manager.request_download(choose_file(HubClient().list_gguf_files(repo), name), "", "tiny")
    assert job_id is not None
    row = manager.downloads_panel.row(job_id)
    qtbot.waitUntil(lambda: row.progress.value() > 0, timeout=LOAD_TIMEOUT_MS)
    starter.close()
    qtbot.waitUntil(lambda: len(windows.windows) == 1)
    before = row.progress.value()
    qtbot.waitUntil(lambda: row.progress.value() > before, timeout=LOAD_TIMEOUT_MS)
    assert row.state is JobState.RUNNING
    fake_hub.faults.chunk_delay_s = 0.0
    qtbot.waitUntil(lambda: row.state is JobState.DONE, timeout=LOAD_TIMEOUT_MS)
    picker = other.model_picker
    names = [picker.itemText(i) for i in range(picker.count())]
    assert "fuzz seed" in names, f"the other window's model picker follows the library: {names}"


def test_settings_with_wrong_types_start_on_defaults_and_say_so(qtbot: QtBot, data_home: DataHome) -> None:
    data_home.settings_file.write_text(
        json.dumps({"context_length": "lots", "gpu_layers": 1.5, "threads": 2, "system_prompt_presets": [1]}),
        encoding="utf-8",
    )
    context = AppContext.open(data_home)
    services = AppServices(context)
    windows = open_first_window(services, None)
    try:
        [window] = windows.windows
        assert context.settings.context_length == 4096 and context.settings.gpu_layers is None
        assert context.settings.threads == 2, "the good values are kept"
        text = window.error_text()
        assert "reset" in text and "context_length" in text and "gpu_layers" in text
        assert "system_prompt_presets" in text
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    finally:
        windows.shutdown_all()
        services.shutdown()
        context.close()

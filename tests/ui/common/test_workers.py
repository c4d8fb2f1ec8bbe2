"""Workers that never hang: every slot answers, late answers are ignored, bugs are shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.core.data_home import DataHome
from app.downloads.hub import HubClient, choose_file
from app.downloads.jobs import JobState
from app.engine.generation import GenerationParams
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, REPLY_TIMEOUT_MS, send, wait_for_reply
from ui.chat import worker as chat_worker
from ui.chat.window import ChatWindow
from ui.common.crash import CrashReporter
from ui.downloads.download_worker import DownloadWorker
from ui.downloads.hub_worker import HubWorker
from ui.services import AppServices


def test_an_unexpected_error_in_a_reply_ends_visibly_and_the_window_goes_on(
    qtbot: QtBot, window: ChatWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(chat_worker, "write_reply", broken)
    send(qtbot, window, "Hello?")
    qtbot.waitUntil(lambda: not window.is_generating, timeout=REPLY_TIMEOUT_MS)
    assert "bug in Llama Desk" in window.error_text() and "KeyError" in window.error_text()

    monkeypatch.undo()
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=8)
    send(qtbot, window, "Say hi.")
    wait_for_reply(qtbot, window)
    last = window.message_model_snapshot()[-1]
    assert last.role == "assistant" and last.content.strip(), "the window works again"


def test_an_unexpected_error_while_loading_is_shown(
    qtbot: QtBot, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_path: object) -> None:
        raise RuntimeError("header reader exploded")

    monkeypatch.setattr(chat_worker, "inspect_model", broken)
    window = ChatWindow(services, services.context.default_model().path)  # type: ignore[union-attr]
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: "header reader exploded" in window.error_text(), timeout=LOAD_TIMEOUT_MS)
    assert window.model_info is None and not window.is_generating


def test_a_late_answer_to_a_replaced_load_is_ignored(window: ChatWindow) -> None:
    """A failed load of model A arriving after model B loaded must not clear B's state."""
    info = window.model_info
    assert info is not None
    chat = window.controller
    chat._on_model_load_failed(chat.load_request - 1, "model A could not be loaded")
    assert window.model_info is info and window.error_text() == ""
    chat._on_reply_failed(chat.reply_request - 1, "an old reply failed")
    assert window.error_text() == ""


def test_a_hub_slot_that_raises_anything_answers_with_its_failure_signal(
    qtbot: QtBot, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = HubWorker(services.context.tokens)
    monkeypatch.setattr(HubWorker, "_client", lambda _self: (_ for _ in ()).throw(ValueError("odd")))
    with qtbot.waitSignal(worker.hub_failed, timeout=1000) as failed:
        worker.list_repo("org/repo")
    assert "ValueError: odd" in failed.args[0]


def test_an_uncaught_exception_opens_the_crash_dialog(qtbot: QtBot, data_home: DataHome) -> None:
    reporter = CrashReporter(data_home.logs_dir)
    try:
        raise ZeroDivisionError("division by zero in a slot")
    except ZeroDivisionError as exc:
        reporter.report(type(exc), exc, exc.__traceback__)
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    assert reporter.dialog is not None
    assert "ZeroDivisionError: division by zero in a slot" in reporter.dialog.informativeText()
    assert str(data_home.logs_dir) in reporter.dialog.detailedText()
    reporter.dialog.close()


def test_a_pause_pressed_before_the_worker_starts_the_download_still_counts(
    qtbot: QtBot, services: AppServices, fake_hub: FakeHub, tmp_path: Path
) -> None:
    data = write_small_gguf(tmp_path / "m.gguf").read_bytes()
    fake_hub.add_repo(FakeRepo("org/Tiny-GGUF", {"tiny-Q4_K_M.gguf": FakeFile(data)}))
    context = services.context
    job = context.jobs.add(choose_file(HubClient().list_gguf_files("org/Tiny-GGUF")), None)
    worker = DownloadWorker(context.library, context.jobs, context.tokens)  # run here, on this thread
    worker.expect_run(job.id)  # what the manager does before it queues the run
    worker.pause(job.id)  # the user pressed Pause while the run was still queued
    with qtbot.waitSignal(worker.job_state_changed, timeout=1000) as state:
        worker.run_job(job.id)
    assert state.args[1] == "paused"
    assert fake_hub.bytes_sent == 0 and context.jobs.get(job.id).state is JobState.PAUSED  # type: ignore[union-attr]

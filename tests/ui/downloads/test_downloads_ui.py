"""Downloading from the Model manager offscreen: catalog, license gate, progress, pause/resume, token."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.downloads.jobs import JobState
from app.downloads.licenses import NEEDS_ACCEPTANCE
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf
from ui.downloads.license_dialog import LicenseDialog
from ui.models.manager import ModelManagerWindow
from ui.services import AppServices

TIMEOUT_MS = 30_000
REPO = "bartowski/Llama-3.2-1B-Instruct-GGUF"  # in the catalog, under the Llama 3.2 license
FILE = "Llama-3.2-1B-Instruct-Q4_K_M.gguf"


@pytest.fixture
def model_bytes(tmp_path: Path) -> bytes:
    # A valid GGUF padded to 4 MiB, so a slow fake line takes long enough to watch and pause.
    data = write_small_gguf(tmp_path / "m.gguf").read_bytes()
    return data + b"\0" * ((4 << 20) - len(data))


@pytest.fixture
def context(context: AppContext) -> AppContext:
    context.tokens.delete()  # no Hugging Face token left by another test
    return context


def open_manager(qtbot: QtBot, services: AppServices) -> ModelManagerWindow:
    window = services.model_manager()
    window.show()
    return window


def answer_license(monkeypatch: pytest.MonkeyPatch, accept: bool) -> list[str]:
    shown: list[str] = []

    def exec_(dialog: LicenseDialog) -> int:
        shown.append(dialog.windowTitle())
        assert not dialog.accept_button.isEnabled(), "accepting needs the checkbox first"
        if accept:
            dialog.agree_box.setChecked(True)
            return int(QDialog.DialogCode.Accepted)
        return int(QDialog.DialogCode.Rejected)

    monkeypatch.setattr(LicenseDialog, "exec", exec_)
    return shown


def pick_catalog_file(qtbot: QtBot, manager: ModelManagerWindow) -> None:
    panel = manager.catalog_panel
    names = [panel.repo_list.item(i).text() for i in range(panel.repo_list.count())]
    row = next(i for i, name in enumerate(names) if name.startswith("Llama 3.2 1B Instruct"))
    panel.repo_list.setCurrentRow(row)
    qtbot.waitUntil(lambda: panel.files_table.rowCount() == 1, timeout=TIMEOUT_MS)
    panel.files_table.selectRow(0)
    qtbot.waitUntil(lambda: panel.files_table.item(0, 3).text() in ("fits", "tight"), timeout=TIMEOUT_MS)


def test_catalog_offers_the_llama_models(manager: ModelManagerWindow) -> None:
    panel = manager.catalog_panel
    names = [panel.repo_list.item(i).text().split("  ·  ")[0] for i in range(panel.repo_list.count())]
    assert "Smallest Llama 3" in panel.repo_list.item(0).text()
    assert names == [
        "Llama 3.2 1B Instruct",
        "Llama 3.2 3B Instruct",
        "Llama 3.1 8B Instruct",
        "Llama 3.3 70B Instruct",
    ]


def test_license_gate_then_download_with_progress(
    qtbot: QtBot,
    manager: ModelManagerWindow,
    context: AppContext,
    fake_hub: FakeHub,
    model_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_hub.add_repo(
        FakeRepo(REPO, {FILE: FakeFile(model_bytes), "README.md": FakeFile(b"x")}, license="llama3.2")
    )
    pick_catalog_file(qtbot, manager)
    assert "parameters" in manager.catalog_panel.details_label.text()

    shown = answer_license(monkeypatch, accept=False)
    manager.catalog_panel.download_button.click()
    assert shown == ["Llama 3.2 Community License Agreement"]
    assert "declined" in manager.catalog_panel.message_label.text()
    assert context.jobs.open_jobs() == []
    downloads = [
        r for r in fake_hub.requests if r.method == "GET" and "/resolve/" in r.path and r.range is None
    ]
    assert downloads == [], "only the header was read (with Range), nothing was downloaded"

    shown = answer_license(monkeypatch, accept=True)
    fake_hub.faults.chunk_delay_s = 0.01
    values: list[int] = []
    manager.catalog_panel.download_button.click()
    [job] = context.jobs.open_jobs()
    bar = manager.downloads_panel.row(job.id).progress
    bar.valueChanged.connect(values.append)
    qtbot.waitUntil(lambda: manager.downloads_panel.row(job.id).state is JobState.DONE, timeout=TIMEOUT_MS)
    assert len(values) >= 3 and values == sorted(values) and values[-1] == 1000
    assert context.licenses.acceptance(NEEDS_ACCEPTANCE["llama3.2"]) is not None
    downloaded = [m for m in context.library.models() if m.source == "huggingface"]
    assert [m.path.read_bytes() for m in downloaded] == [model_bytes]
    assert any(
        manager.table_model.model_at(r).source == "huggingface" for r in range(manager.table_model.rowCount())
    )


def test_pause_resume_and_cancel(
    qtbot: QtBot,
    manager: ModelManagerWindow,
    context: AppContext,
    fake_hub: FakeHub,
    model_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(model_bytes)}, license="apache-2.0"))
    fake_hub.faults.chunk_delay_s = 0.02
    pick_catalog_file(qtbot, manager)
    job_id = manager.request_download(manager.catalog_panel.selected_file(), "", "tiny")  # type: ignore[arg-type]
    assert job_id is not None
    row = manager.downloads_panel.row(job_id)
    qtbot.waitUntil(lambda: 0 < row.progress.value() < 1000, timeout=TIMEOUT_MS)
    row.pause_resume.click()
    qtbot.waitUntil(lambda: row.state is JobState.PAUSED, timeout=TIMEOUT_MS)
    assert row.pause_resume.text() == "Resume"
    fake_hub.faults.chunk_delay_s = 0.0
    row.pause_resume.click()
    qtbot.waitUntil(lambda: row.state is JobState.DONE, timeout=TIMEOUT_MS)
    resumed_from = [r.range for r in fake_hub.requests if r.method == "GET" and "/resolve/" in r.path][-1]
    assert resumed_from is not None and resumed_from.startswith("bytes=")

    other = FakeFile(model_bytes + b"\1")  # a different file, so it is not "already in the library"
    fake_hub.add_repo(FakeRepo(REPO, {FILE: other}, license="apache-2.0"))
    fake_hub.faults.chunk_delay_s = 0.02
    listing_remote = manager.catalog_panel.selected_file()
    assert listing_remote is not None
    from app.downloads.hub import HubClient, choose_file

    remote = choose_file(HubClient().list_gguf_files(REPO), FILE)
    second = manager.request_download(remote, "", "tiny 2")
    assert second is not None
    row2 = manager.downloads_panel.row(second)
    qtbot.waitUntil(lambda: row2.progress.value() > 0, timeout=TIMEOUT_MS)
    row2.cancel.click()
    qtbot.waitUntil(lambda: row2.state is JobState.CANCELLED, timeout=TIMEOUT_MS)
    assert not any((context.home.models_dir / ".partial").glob("*.part"))
    assert len([m for m in context.library.models() if m.source == "huggingface"]) == 1


def test_an_interrupted_download_is_offered_again_after_restart(
    qtbot: QtBot, context: AppContext, fake_hub: FakeHub, model_bytes: bytes
) -> None:
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(model_bytes)}, license="apache-2.0"))
    fake_hub.faults.chunk_delay_s = 0.02
    first_run = AppServices(context)
    first = open_manager(qtbot, first_run)
    pick_catalog_file(qtbot, first)
    job_id = first.request_download(first.catalog_panel.selected_file(), "", "tiny")  # type: ignore[arg-type]
    assert job_id is not None
    qtbot.waitUntil(lambda: first.downloads_panel.row(job_id).progress.value() > 0, timeout=TIMEOUT_MS)
    first_run.shutdown()  # quitting pauses the running download

    fake_hub.faults.chunk_delay_s = 0.0
    second_run = AppServices(context)  # the next start of the app
    second = open_manager(qtbot, second_run)
    try:
        row = second.downloads_panel.row(job_id)
        assert row.state is JobState.PAUSED and row.pause_resume.text() == "Resume"
        row.pause_resume.click()
        qtbot.waitUntil(lambda: row.state is JobState.DONE, timeout=TIMEOUT_MS)
        [model] = [m for m in context.library.models() if m.source == "huggingface"]
        assert model.path.read_bytes() == model_bytes
    finally:
        second_run.shutdown()


def test_token_is_saved_to_the_keyring_and_access_checked(
    qtbot: QtBot, manager: ModelManagerWindow, context: AppContext, fake_hub: FakeHub, model_bytes: bytes
) -> None:
    fake_hub.add_repo(
        FakeRepo(
            "meta-llama/Llama-3.2-1B-Instruct",
            {FILE: FakeFile(model_bytes)},
            gated=True,
            approved_tokens={"hf_granted"},
        )
    )
    settings = manager.show_settings()
    settings.check_button.click()
    qtbot.waitUntil(lambda: "save a Hugging Face token" in settings.access_label.text(), timeout=TIMEOUT_MS)
    settings.token_edit.setText("hf_granted")
    settings.save_button.click()
    assert settings.token_edit.text() == "", "the widget does not keep the token"
    assert context.tokens.get() == "hf_granted"
    settings.check_button.click()
    qtbot.waitUntil(lambda: "can download" in settings.access_label.text(), timeout=TIMEOUT_MS)
    settings.token_edit.setText("hf_nobody")
    settings.save_button.click()
    settings.check_button.click()
    qtbot.waitUntil(lambda: "accept its license" in settings.access_label.text(), timeout=TIMEOUT_MS)
    settings.close()

"""The Meta link dialog offscreen, against the fake CDN: live link check, progress, expiry, pause, cancel."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThread, QTimer
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from app.core.data_home import DataHome
from app.downloads.downloader import RetryPolicy
from app.downloads.licenses import LicenseBook
from app.downloads.meta.download import MetaDownloadResult, MetaProgress
from app.downloads.meta.models import find_meta_model, plan_files
from tests.support.fake_meta_cdn import FakeMetaCdn, write_meta_tree
from ui.downloads.license_dialog import LicenseDialog
from ui.downloads.meta_dialog import MetaDownloadDialog

TIMEOUT_MS = 20_000
MODEL = find_meta_model("Llama-3.2-1B-Instruct")
SHARD = "Llama-3.2-1B-Instruct/consolidated.00.pth"


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[FakeMetaCdn]:
    server = FakeMetaCdn(tmp_path / "cdn").start()
    write_meta_tree(server.root, MODEL)
    yield server
    server.stop()


@pytest.fixture
def licenses(data_home: DataHome) -> Iterator[LicenseBook]:
    book = LicenseBook(data_home.library_db)
    yield book
    book.close()


@pytest.fixture
def dialog(qtbot: QtBot, tmp_path: Path, licenses: LicenseBook) -> Iterator[MetaDownloadDialog]:
    policy = RetryPolicy(attempts=3, first_backoff_s=0.01, stall_timeout_s=5.0)
    window = MetaDownloadDialog(tmp_path / "meta", licenses, allow_hosts=("127.0.0.1",), policy=policy)
    qtbot.addWidget(window)
    window.select_model(MODEL.name)
    window.show()
    yield window
    window.shutdown()


@pytest.fixture
def accept_licenses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    shown: list[str] = []

    def exec_(license_dialog: LicenseDialog) -> int:
        shown.append(license_dialog.windowTitle())
        license_dialog.agree_box.setChecked(True)
        return int(QDialog.DialogCode.Accepted)

    monkeypatch.setattr(LicenseDialog, "exec", exec_)
    return shown


def statuses(dialog: MetaDownloadDialog) -> list[str]:
    return [dialog.files_table.item(r, 2).text() for r in range(dialog.files_table.rowCount())]


def download(qtbot: QtBot, dialog: MetaDownloadDialog) -> MetaDownloadResult:
    with qtbot.waitSignal(dialog.download_finished, timeout=TIMEOUT_MS) as finished:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    result: MetaDownloadResult = finished.args[0]
    return result


def start_slow_download(qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn) -> None:
    """Start a download over a slow line (~0.6 s for the shard: time to press a button) and wait for
    the shard to begin."""
    cdn.faults.chunk_delay_s = 0.03
    dialog.link_edit.setText(cdn.link())
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.files_table.item(3, 2).text().endswith("%"), timeout=TIMEOUT_MS)


def test_the_link_is_checked_as_it_is_typed(dialog: MetaDownloadDialog, cdn: FakeMetaCdn) -> None:
    assert not dialog.download_button.isEnabled() and "Paste the link" in dialog.link_status.text()
    good = cdn.link()
    dialog.link_edit.setText(good.replace("127.0.0.1", "example.com"))
    assert "example.com is not Meta's download server" in dialog.link_status.text()
    assert not dialog.download_button.isEnabled()
    dialog.link_edit.setText(good.split("&Key-Pair-Id")[0])
    assert "cut off" in dialog.link_status.text()
    dialog.link_edit.setText(cdn.link(expires_in_s=-2.5 * 3600))
    assert "expired 2 h ago" in dialog.link_status.text() and not dialog.download_button.isEnabled()
    dialog.link_edit.setText(f"<{cdn.link(expires_in_s=23.5 * 3600).replace('&', '&amp;')}>")
    assert dialog.link_status.text() == "Link from 127.0.0.1, expires in 23 h."
    assert dialog.download_button.isEnabled() and dialog.download_button.text() == "Download"
    assert [dialog.files_table.item(r, 0).text() for r in range(4)] == [
        p.local_path for p in plan_files(MODEL)
    ]
    assert statuses(dialog) == ["to download"] * 4
    snapshot(dialog, "pasted")


def test_a_model_arrives_with_per_file_and_total_progress(
    qtbot: QtBot,
    dialog: MetaDownloadDialog,
    cdn: FakeMetaCdn,
    accept_licenses: list[str],
    licenses: LicenseBook,
) -> None:
    dialog.link_edit.setText(cdn.link())
    reports: list[MetaProgress] = []
    dialog.worker.progress.connect(reports.append, Qt.ConnectionType.DirectConnection)
    cdn.faults.chunk_delay_s = 0.02  # ~0.4 s of download for the event loop watch to see
    watch = EventLoopWatch()
    result = download(qtbot, dialog)
    assert accept_licenses == ["Llama 3.2 Community License Agreement"]
    assert licenses.needs_acceptance("llama3.2") is None
    assert result.folder == tmp_folder(dialog) and (result.folder / "consolidated.00.pth").is_file()
    assert statuses(dialog) == ["verified"] * 4
    assert dialog.files_table.item(3, 1).text().endswith("KiB")
    assert dialog.total_bar.value() == 100 and "match checklist.chk" in dialog.status_label.text()
    assert reports[-1].done_bytes == reports[-1].total_bytes
    assert dialog.download_button.isEnabled() and not dialog.pause_button.isEnabled()
    assert len(watch.ticks) > 15 and watch.longest_gap() < 0.25, "the download never blocks the window"
    snapshot(dialog, "done")


def test_an_expired_link_mid_file_then_a_fresh_one_resumes(
    qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn, accept_licenses: list[str]
) -> None:
    cdn.faults.revoke_at[SHARD] = 120_000
    dialog.link_edit.setText(cdn.link())
    with qtbot.waitSignal(dialog.download_stopped, timeout=TIMEOUT_MS) as stopped:
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert stopped.args[0] == "failed"
    assert "expired or has been used up" in dialog.status_label.text()
    assert statuses(dialog) == ["verified", "verified", "verified", "partial: 117.2 KiB"]
    assert dialog.file_bar.value() == 40 and "117.2 KiB of 293.0 KiB" in dialog.file_bar.format()
    assert "refused this link" in dialog.link_status.text() and not dialog.download_button.isEnabled()
    assert dialog.download_button.text() == "Resume"
    snapshot(dialog, "expired")

    dialog.link_edit.setText(cdn.link(request_id=2))
    download(qtbot, dialog)
    assert [r.range for r in cdn.body_requests(SHARD)][-1] == "bytes=120000-"
    assert statuses(dialog) == ["verified"] * 4


def test_pause_then_resume(
    qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn, accept_licenses: list[str]
) -> None:
    start_slow_download(qtbot, dialog, cdn)
    assert not dialog.download_button.isEnabled() and not dialog.model_combo.isEnabled()
    snapshot(dialog, "running")
    with qtbot.waitSignal(dialog.download_stopped, timeout=TIMEOUT_MS) as stopped:
        qtbot.mouseClick(dialog.pause_button, Qt.MouseButton.LeftButton)
    assert stopped.args[0] == "paused" and "Paused" in dialog.status_label.text()
    assert statuses(dialog)[3].startswith("partial: ") and dialog.download_button.text() == "Resume"
    cdn.faults.chunk_delay_s = 0.0
    download(qtbot, dialog)
    assert cdn.body_requests(SHARD)[-1].range is not None


def test_cancel_removes_the_partial(
    qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn, accept_licenses: list[str]
) -> None:
    start_slow_download(qtbot, dialog, cdn)
    with qtbot.waitSignal(dialog.download_stopped, timeout=TIMEOUT_MS) as stopped:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert stopped.args[0] == "cancelled"
    assert statuses(dialog) == ["verified", "verified", "verified", "to download"]
    assert not list(tmp_folder(dialog).glob("*.part"))


def test_closing_mid_download_pauses_it(
    qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn, accept_licenses: list[str]
) -> None:
    start_slow_download(qtbot, dialog, cdn)
    dialog.close()
    assert not dialog.worker_thread.isRunning()
    assert (tmp_folder(dialog) / "consolidated.00.pth.part").stat().st_size > 0, "kept for a resume"


def test_declining_the_license_downloads_nothing(
    qtbot: QtBot, dialog: MetaDownloadDialog, cdn: FakeMetaCdn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LicenseDialog, "exec", lambda _self: int(QDialog.DialogCode.Rejected))
    dialog.link_edit.setText(cdn.link())
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert "declined the Llama 3.2 Community License Agreement" in dialog.status_label.text()
    assert cdn.requests == [] and dialog.download_button.isEnabled()


def test_the_worker_runs_on_its_own_thread(dialog: MetaDownloadDialog) -> None:
    assert dialog.worker.thread() is dialog.worker_thread is not QThread.currentThread()
    assert dialog.worker_thread.isRunning()
    dialog.reject()  # Esc
    assert not dialog.worker_thread.isRunning() and not dialog.isVisible()


def snapshot(dialog: MetaDownloadDialog, name: str) -> None:
    """A PNG under /tmp to look at; the layout is settled first (a new message may need more lines)."""
    dialog.layout().activate()
    dialog.grab().save(f"/tmp/meta_download_dialog_{name}.png")


def tmp_folder(dialog: MetaDownloadDialog) -> Path:
    return dialog.folder(MODEL)


class EventLoopWatch:
    """Ticks of a 10 ms timer on the GUI thread: a long gap between two means the window froze."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(lambda: self.ticks.append(time.monotonic()))
        self._timer.start()

    def longest_gap(self) -> float:
        self._timer.stop()
        return max((b - a for a, b in itertools.pairwise(self.ticks)), default=0.0)

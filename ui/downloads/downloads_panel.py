"""The downloads list: one row per job with progress (bytes, speed, ETA) and Pause/Resume/Cancel."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.units import format_bytes
from app.downloads.downloader import DownloadProgress
from app.downloads.jobs import DownloadJob, JobState


@dataclass
class JobRow:
    progress: QProgressBar
    status: QLabel
    pause_resume: QPushButton
    cancel: QPushButton
    state: JobState


class DownloadsPanel(QWidget):
    """Signals:
    pause_requested(int), resume_requested(int), cancel_requested(int): the user pressed a row's button.
    """

    pause_requested = Signal(int)
    resume_requested = Signal(int)
    cancel_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Model file", "Progress", "Status", ""])
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(1, 320)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.empty_label = QLabel("No downloads. Pick a model in the Download tab.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.table, 1)
        self._rows: dict[int, JobRow] = {}

    def add_job(self, job: DownloadJob) -> None:
        if job.id in self._rows:
            return
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, 0, QTableWidgetItem(f"{job.remote.filename}\n{job.remote.repo_id}"))
        progress = QProgressBar()
        progress.setRange(0, 1000)
        status = QLabel()
        pause_resume = QPushButton()
        cancel = QPushButton("Cancel")
        buttons = QWidget()
        button_row = QHBoxLayout(buttons)
        button_row.setContentsMargins(2, 2, 2, 2)
        button_row.addWidget(pause_resume)
        button_row.addWidget(cancel)
        self.table.setCellWidget(row, 1, progress)
        self.table.setCellWidget(row, 2, status)
        self.table.setCellWidget(row, 3, buttons)
        self.table.resizeRowToContents(row)
        entry = JobRow(progress, status, pause_resume, cancel, job.state)
        self._rows[job.id] = entry
        pause_resume.clicked.connect(lambda: self._on_pause_resume(job.id))
        cancel.clicked.connect(lambda: self.cancel_requested.emit(job.id))
        self.show_state(job.id, job.state, job.error or "")
        self.empty_label.hide()

    def row(self, job_id: int) -> JobRow:
        return self._rows[job_id]

    def show_progress(self, job_id: int, progress: DownloadProgress) -> None:
        entry = self._rows.get(job_id)
        if entry is None:
            return
        entry.progress.setValue(1000 * progress.done_bytes // max(progress.total_bytes, 1))
        entry.progress.setFormat(
            f"{format_bytes(progress.done_bytes)} of {format_bytes(progress.total_bytes)}"
        )
        eta = f" · {_duration(progress.eta_s)} left" if progress.eta_s is not None else ""
        retry = f" · retry {progress.attempt - 1}" if progress.attempt > 1 else ""
        entry.status.setText(f"{format_bytes(int(progress.bytes_per_s))}/s{eta}{retry}")

    def show_state(self, job_id: int, state: JobState, message: str) -> None:
        entry = self._rows.get(job_id)
        if entry is None:
            return
        entry.state = state
        labels = {
            JobState.QUEUED: "Waiting…",
            JobState.RUNNING: "Starting…",
            JobState.PAUSED: "Paused",
            JobState.FAILED: "Failed",
            JobState.DONE: "Done",
            JobState.CANCELLED: "Cancelled",
        }
        entry.status.setText(message or labels[state])
        entry.status.setToolTip(message)
        entry.pause_resume.setText("Pause" if state in (JobState.RUNNING, JobState.QUEUED) else "Resume")
        entry.pause_resume.setEnabled(state.is_open)
        entry.cancel.setEnabled(state.is_open)
        if state is JobState.DONE:
            entry.progress.setValue(1000)

    def _on_pause_resume(self, job_id: int) -> None:
        if self._rows[job_id].state in (JobState.RUNNING, JobState.QUEUED):
            self.pause_requested.emit(job_id)
        else:
            self.resume_requested.emit(job_id)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"

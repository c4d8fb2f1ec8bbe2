"""The "Download from a Meta link" dialog: paste the emailed link, pick a model, watch it arrive verified.

The link is checked as it is typed (host, missing parts, expiry from its Policy). The download
runs on a MetaDownloadWorker in its own thread; Pause keeps the partial file, and after a link
expired or was used up, pasting a fresh one and pressing Resume continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from PySide6.QtCore import Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.convert.pipeline import OUTPUT_TYPES
from app.core.errors import MetaLinkError
from app.core.units import format_bytes
from app.downloads.downloader import RetryPolicy
from app.downloads.licenses import LicenseBook
from app.downloads.meta.download import PART_SUFFIX, MetaDownloadResult, MetaFileStatus, MetaProgress
from app.downloads.meta.link import META_HOSTS, MetaLink, parse_meta_link
from app.downloads.meta.models import CATALOG, MetaModel, plan_files
from ui.common.theme import chat_colors
from ui.common.workers import WorkerThread
from ui.downloads.license_dialog import LicenseDialog
from ui.downloads.meta_worker import MetaDownloadWorker

_EXPIRY_REFRESH_MS = 30_000


class MetaDownloadDialog(QDialog):
    """Signals:
    download_requested(MetaLink, MetaModel, bool): sent to the worker's thread when Download is pressed
        (the flag: accept files the checklist does not list).
    download_finished(MetaDownloadResult): every file is verified; the folder is ready to convert.
    download_stopped(str, str): "paused", "cancelled" or "failed", and the message shown.
    """

    download_requested = Signal(object, object, bool)
    download_finished = Signal(object)
    download_stopped = Signal(str, str)

    def __init__(
        self,
        dest_root: Path,
        licenses: LicenseBook | None = None,
        *,
        allow_hosts: Collection[str] = META_HOSTS,
        policy: RetryPolicy | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download from a Meta link")
        self.resize(760, 560)
        self._dest_root = dest_root
        self._licenses = licenses
        self._allow_hosts = allow_hosts
        self._link: MetaLink | None = None
        self._started_link: MetaLink | None = None
        self._spent_link: MetaLink | None = None  # refused by the server (403): a fresh one is needed
        self._running = False
        self._sizes: dict[str, int] = {}  # local path → bytes, as the server said at the last start
        self._build()
        self.worker = MetaDownloadWorker(dest_root, policy)
        self.download_requested.connect(self.worker.download)
        self.worker.files_listed.connect(self._on_files_listed)
        self.worker.progress.connect(self._on_progress)
        self.worker.download_finished.connect(self._on_finished)
        self.worker.download_stopped.connect(self._on_stopped)
        self._worker_thread = WorkerThread(self, self.worker, "meta-download-worker")
        self._expiry_timer = QTimer(self)
        self._expiry_timer.setInterval(_EXPIRY_REFRESH_MS)
        self._expiry_timer.timeout.connect(self._check_link)
        self._expiry_timer.start()
        self._check_link()
        self._show_plan()

    # -- building ---------------------------------------------------------------------------------

    def _build(self) -> None:
        intro = QLabel(
            "Paste the download link from Meta's email. It is valid for 24 hours and a limited number "
            "of downloads; if it runs out, finished files are kept and a fresh link resumes the rest."
        )
        intro.setWordWrap(True)
        self.link_edit = QLineEdit()
        self.link_edit.setPlaceholderText(
            "https://download.llamameta.net/*?Policy=…&Signature=…&Key-Pair-Id=…"
        )
        self.link_edit.setClearButtonEnabled(True)
        self.link_edit.textChanged.connect(self._check_link)
        self.link_status = QLabel()
        self.link_status.setWordWrap(True)
        self.model_combo = QComboBox()
        for model in CATALOG:
            self.model_combo.addItem(model.name, model)
        self.model_combo.currentIndexChanged.connect(self._show_plan)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.quant_combo = QComboBox()
        self.quant_combo.addItems(list(OUTPUT_TYPES))
        self.quant_combo.setToolTip(
            "After the download the checkpoint is converted to a GGUF of this type. Q4_K_M is small and keeps"
            " quality; Q8_0 and F16 are larger and closer to the original."
        )
        form = QFormLayout()
        form.addRow("Link:", self.link_edit)
        form.addRow("", self.link_status)
        form.addRow("Model:", self.model_combo)
        form.addRow("", self.model_info)
        form.addRow("Convert to:", self.quant_combo)
        self.allow_unlisted_box = QCheckBox(
            "Accept files the checklist does not list (they are not verified)"
        )
        self.allow_unlisted_box.setToolTip(
            "Every file is checked against the md5 sums in Meta's checklist.chk. A file the checklist does "
            "not name cannot be checked: by default the download stops there."
        )
        form.addRow("", self.allow_unlisted_box)

        self.files_table = QTableWidget(0, 3)
        self.files_table.setHorizontalHeaderLabels(["File", "Size", "Status"])
        self.files_table.verticalHeader().setVisible(False)
        self.files_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.files_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.files_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)

        self.file_bar = QProgressBar()
        self.file_bar.setFormat("")
        self.total_bar = QProgressBar()
        self.total_bar.setFormat("")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self._start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(self._pause)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.clicked.connect(self._cancel)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.download_button, self.pause_button, self.cancel_button, self.close_button):
            buttons.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.files_table, 1)
        layout.addWidget(QLabel("Current file:"))
        layout.addWidget(self.file_bar)
        layout.addWidget(QLabel("All files:"))
        layout.addWidget(self.total_bar)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)

    # -- link and model ---------------------------------------------------------------------------

    @property
    def quant(self) -> str:
        """The GGUF type to convert the download to."""
        return self.quant_combo.currentText()

    @property
    def model(self) -> MetaModel:
        model: MetaModel = self.model_combo.currentData()
        return model

    def folder(self, model: MetaModel) -> Path:
        """Where `model`'s files go (and stay, verified, for the converter)."""
        return self._dest_root / model.name

    def select_model(self, name: str) -> None:
        self.model_combo.setCurrentIndex(self.model_combo.findText(name))

    @Slot()
    def _check_link(self) -> None:
        """Validate what is pasted, as it is typed: a reason for a bad link, the expiry of a good one."""
        text = self.link_edit.text()
        self._link = None
        if not text.strip():
            self._say(self.link_status, "Paste the link from the email.", problem=False)
        else:
            try:
                link = parse_meta_link(text, allow_hosts=self._allow_hosts)
            except MetaLinkError as exc:
                self._say(self.link_status, str(exc), problem=True)
            else:
                if link == self._spent_link:
                    self._say(
                        self.link_status,
                        "Meta's server refused this link (expired or used up). Paste a fresh one from Meta.",
                        problem=True,
                    )
                elif link.is_expired():
                    self._say(
                        self.link_status,
                        f"This link {link.describe_expiry()}. Request a new one from Meta and paste it here.",
                        problem=True,
                    )
                else:
                    self._link = link
                    expiry = link.describe_expiry() or "no expiry in the link"
                    self._say(self.link_status, f"Link from {link.host}, {expiry}.", problem=False, ok=True)
        self._update_buttons()

    @Slot()
    def _show_plan(self) -> None:
        """A newly picked model: its files and what of them is on disk (sizes come from the server later)."""
        model = self.model
        self.model_info.setText(
            f"{model.release.value} · {'instruct' if model.instruct else 'base'} · "
            f"{model.shards} shard{'s' if model.shards > 1 else ''} · context {model.context_length:,} · "
            f"saved in {self.folder(model)}"
        )
        self._sizes.clear()
        self._refresh_rows()
        for bar in (self.file_bar, self.total_bar):
            bar.setValue(0)
            bar.setFormat("")
        self._update_buttons()

    def _refresh_rows(self) -> None:
        folder = self.folder(self.model)
        planned = plan_files(self.model)
        self.files_table.setRowCount(len(planned))
        for row, file in enumerate(planned):
            target = folder / file.local_path
            partial = target.with_name(target.name + PART_SUFFIX)
            known = self._sizes.get(file.local_path)
            size = format_bytes(known) if known is not None else ""
            if target.is_file():
                size, status = format_bytes(target.stat().st_size), "verified"
            elif partial.is_file():
                status = f"partial: {format_bytes(partial.stat().st_size)}"
            else:
                status = "to download"
            self._set_row(row, file.local_path, size, status)

    # -- running ----------------------------------------------------------------------------------

    @Slot()
    def _start(self) -> None:
        if self._link is None or self._running:
            return
        model = self.model
        pending = self._licenses.needs_acceptance(model.license_id) if self._licenses else None
        if pending is not None and self._licenses is not None:
            if LicenseDialog(pending, model.name, self).exec() != QDialog.DialogCode.Accepted:
                self._say(
                    self.status_label, f"You declined the {pending.title}: nothing was downloaded.", True
                )
                return
            self._licenses.accept(pending)
        self._running = True
        self._started_link = self._link
        self._say(self.status_label, f"Asking Meta's server for the files of {model.name}…", problem=False)
        self._update_buttons()
        self.worker.expect_request()
        self.download_requested.emit(self._link, model, self.allow_unlisted_box.isChecked())

    @Slot()
    def _pause(self) -> None:
        if self._running:
            self.worker.pause()
            self.pause_button.setEnabled(False)

    @Slot()
    def _cancel(self) -> None:
        if self._running:
            self.worker.cancel()
            self.cancel_button.setEnabled(False)

    @Slot(object)
    def _on_files_listed(self, files: list[MetaFileStatus]) -> None:
        total = sum(f.size for f in files)
        self._sizes = {f.planned.local_path: f.size for f in files}
        for row, status in enumerate(files):
            if status.verified:
                state = "verified"
            else:
                state = f"partial: {format_bytes(status.have)}" if status.have else "waiting"
            self._set_row(row, status.planned.local_path, format_bytes(status.size), state)
        self._say(self.status_label, f"{len(files)} files, {format_bytes(total)} in all.", problem=False)

    @Slot(object)
    def _on_progress(self, progress: MetaProgress) -> None:
        self.file_bar.setValue(_percent(progress.file_done, progress.file_total))
        self.file_bar.setFormat(
            f"{progress.file}: {format_bytes(progress.file_done)} of {format_bytes(progress.file_total)}"
        )
        self.total_bar.setValue(_percent(progress.done_bytes, progress.total_bytes))
        self.total_bar.setFormat(
            f"{format_bytes(progress.done_bytes)} of {format_bytes(progress.total_bytes)} · "
            f"{format_bytes(int(progress.bytes_per_s))}/s"
        )
        row = self._row_of(progress.file)
        if row is not None:  # files are fetched in table order and each is verified before the next
            for earlier in range(row):
                self._set_cell(earlier, 2, "verified")
            done = progress.file_done >= progress.file_total
            percent = _percent(progress.file_done, progress.file_total)
            self._set_cell(row, 2, "checking md5" if done else f"{percent} %")

    @Slot(object)
    def _on_finished(self, result: MetaDownloadResult) -> None:
        self._running = False
        self._refresh_rows()
        self.file_bar.setValue(100)
        self.total_bar.setValue(100)
        if result.unverified:
            self._say(
                self.status_label,
                f"All {len(result.files)} files are here; not verified (the checklist does not list them): "
                f"{', '.join(result.unverified)}. {result.folder}",
                problem=True,
            )
        else:
            self._say(
                self.status_label,
                f"All {len(result.files)} files are here and match checklist.chk: {result.folder}",
                problem=False,
                ok=True,
            )
        self._update_buttons()
        self.download_finished.emit(result)

    @Slot(str, str)
    def _on_stopped(self, kind: str, message: str) -> None:
        self._running = False
        self._refresh_rows()
        if kind == "cancelled":  # the partial files are gone: what the bars showed is no longer there
            for bar in (self.file_bar, self.total_bar):
                bar.setValue(0)
                bar.setFormat("")
        self._say(self.status_label, message, problem=kind == "failed")
        if kind == "failed" and "expired or has been used up" in message:
            self._spent_link = self._started_link
            self.link_edit.setFocus()
            self.link_edit.selectAll()
        self._check_link()  # the link may have expired meanwhile
        self.download_stopped.emit(kind, message)

    @property
    def worker_thread(self) -> QThread:
        return self._worker_thread.thread

    def shutdown(self) -> None:
        """Pause a running download (its partial stays for a resume) and end the worker's thread."""
        self._expiry_timer.stop()
        if self._running:
            self.worker.pause()
        self._worker_thread.stop()  # a paused download ends at its next chunk

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def done(self, result: int) -> None:
        """Esc and Close end here too: the thread must not outlive the dialog."""
        self.shutdown()
        super().done(result)

    # -- helpers ----------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        resumable = any(self._cell(r, 2).startswith("partial") for r in range(self.files_table.rowCount()))
        self.download_button.setText("Resume" if resumable else "Download")
        self.download_button.setEnabled(self._link is not None and not self._running)
        self.pause_button.setEnabled(self._running)
        self.cancel_button.setEnabled(self._running)
        self.model_combo.setEnabled(not self._running)

    def _set_row(self, row: int, name: str, size: str, status: str) -> None:
        for column, text in enumerate((name, size, status)):
            self._set_cell(row, column, text)

    def _set_cell(self, row: int, column: int, text: str) -> None:
        item = QTableWidgetItem(text)
        if column == 1:
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.files_table.setItem(row, column, item)

    def _cell(self, row: int, column: int) -> str:
        item = self.files_table.item(row, column)
        return item.text() if item is not None else ""

    def _row_of(self, name: str) -> int | None:
        for row in range(self.files_table.rowCount()):
            if self._cell(row, 0) == name:
                return row
        return None

    @staticmethod
    def _say(label: QLabel, text: str, problem: bool, ok: bool = False) -> None:
        label.setText(text)
        colors = chat_colors(label.palette())
        color = colors.warning if problem else colors.success if ok else None
        label.setStyleSheet(f"color: {color.name()};" if color is not None else "")


def _percent(done: int, total: int) -> int:
    return 100 if total <= 0 else min(100, done * 100 // total)

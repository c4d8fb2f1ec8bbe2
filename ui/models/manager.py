"""The Model manager: every local model, what it costs, import by dialog or drag-and-drop, delete."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QObject, QSortFilterProxyModel, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.context import AppContext
from app.convert.into_library import ConversionRequest
from app.convert.pipeline import OUTPUT_TYPES
from app.core.errors import LlamaDeskError
from app.core.units import format_bytes
from app.downloads.catalog import load_catalog
from app.downloads.hub import HubAccess, HubClient, RemoteFile
from app.downloads.jobs import JobState
from app.downloads.meta.download import MetaDownloadResult
from app.downloads.meta.link import allowed_hosts
from app.engine.fit import estimate_memory, judge_fit
from app.engine.hardware import Hardware, probe_hardware
from app.gguf.report import ModelReport
from app.library.store import LibraryModel
from ui.common.theme import chat_colors
from ui.common.workers import WorkerThread
from ui.downloads.catalog_panel import CatalogPanel
from ui.downloads.download_worker import DownloadWorker
from ui.downloads.downloads_panel import DownloadsPanel
from ui.downloads.hub_worker import HubWorker
from ui.downloads.license_dialog import LicenseDialog
from ui.downloads.meta_dialog import MetaDownloadDialog
from ui.models.details import ModelDetailsDialog
from ui.models.library_table_model import MODEL_ROLE, SORT_ROLE, LibraryTableModel
from ui.models.library_worker import LibraryWorker
from ui.settings.dialog import SettingsDialog

log = logging.getLogger("ui.models")


class ModelManagerWindow(QMainWindow):
    """Signals:
    chat_requested(LibraryModel): the user wants to chat with this model.
    library_changed(): a model was added or removed.
    import_requested(str, bool), reports_requested(list): commands to the worker thread.
    """

    chat_requested = Signal(object)
    library_changed = Signal()
    import_requested = Signal(str, bool)
    convert_requested = Signal(object)
    reports_requested = Signal(object)
    run_job_requested = Signal(int)
    access_check_requested = Signal(str)

    def __init__(self, context: AppContext, hardware: Hardware | None = None) -> None:
        super().__init__()
        self._context = context
        self._hardware = hardware or probe_hardware()
        self._reports: dict[int, ModelReport] = {}
        self._pending_imports: list[tuple[Path, bool]] = []
        self._importing = False
        self.setWindowTitle("Models — Llama Desk")
        self.resize(1000, 520)
        self.setAcceptDrops(True)

        self.table_model = LibraryTableModel()
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self.table_model)
        self._proxy.setSortRole(SORT_ROLE)
        self.table = QTableView()
        self.table.setModel(self._proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        self.table.doubleClicked.connect(lambda _index: self.show_details())

        self.import_button = QPushButton("Import…")
        self.convert_button = QPushButton("Convert checkpoint…")
        self.convert_button.setToolTip(
            "Turn an original Llama checkpoint folder (Meta's consolidated.*.pth, or Hugging Face"
            " safetensors) into a quantized GGUF, without PyTorch"
        )
        self.convert_button.clicked.connect(self._choose_checkpoint)
        self.meta_button = QPushButton("From a Meta link…")
        self.meta_button.setToolTip(
            "Paste the link from Meta's download email: the app downloads the original weights, checks"
            " every file against Meta's checksums and converts them to a GGUF"
        )
        self.meta_button.clicked.connect(self.show_meta_download)
        self._meta_dialog: MetaDownloadDialog | None = None
        self.details_button = QPushButton("Details…")
        self.delete_button = QPushButton("Delete…")
        self.chat_button = QPushButton("Chat with this model")
        self.import_button.clicked.connect(self._choose_files)
        self.details_button.clicked.connect(self.show_details)
        self.delete_button.clicked.connect(self.delete_selected)
        self.chat_button.clicked.connect(self._chat_with_selected)
        buttons = QHBoxLayout()
        for button in (
            self.import_button,
            self.convert_button,
            self.meta_button,
            self.details_button,
            self.delete_button,
            self.chat_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.hide()
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self._cancel_import)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.total_label = QLabel()
        self.machine_label = QLabel(_describe_machine(self._hardware))
        hint = QLabel("Drop .gguf files here to import them.")
        hint.setStyleSheet("color: palette(placeholder-text);")
        footer = QHBoxLayout()
        footer.addWidget(self.total_label, 1)
        footer.addWidget(hint)

        self.settings_button = QPushButton("Settings…")
        self.settings_button.clicked.connect(self.show_settings)
        buttons.addWidget(self.settings_button)

        local = QWidget()
        layout = QVBoxLayout(local)
        layout.addLayout(buttons)
        layout.addWidget(self.message_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(progress_row)
        layout.addWidget(self.machine_label)
        layout.addLayout(footer)
        self.catalog_panel = CatalogPanel(load_catalog())
        self.downloads_panel = DownloadsPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(local, "Local models")
        self.tabs.addTab(self.catalog_panel, "Download")
        self.tabs.addTab(self.downloads_panel, "Downloads")
        self.setCentralWidget(self.tabs)
        self._settings_dialog: SettingsDialog | None = None

        self._worker = LibraryWorker(context.library)
        self.import_requested.connect(self._worker.import_model)
        self.convert_requested.connect(self._worker.convert_folder)
        self._worker.conversion_progress.connect(self._on_conversion_progress)
        self.reports_requested.connect(self._worker.read_reports)
        self._worker.report_ready.connect(self._on_report_ready)
        self._worker.report_failed.connect(self._on_report_failed)
        self._worker.import_progress.connect(self._on_import_progress)
        self._worker.import_finished.connect(self._on_import_finished)
        self._worker.import_failed.connect(self._on_import_failed)
        self._threads: list[WorkerThread[QObject]] = [WorkerThread(self, self._worker, "library-worker")]
        self._start_network_workers()
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.reload()
        for job in context.jobs.open_jobs():  # downloads interrupted by a quit: shown, ready to resume
            self.downloads_panel.add_job(job)

    def _start_network_workers(self) -> None:
        context = self._context
        self._hub_worker = HubWorker(context.tokens)
        panel = self.catalog_panel
        panel.listing_requested.connect(self._hub_worker.list_repo)
        panel.search_requested.connect(self._hub_worker.search)
        panel.inspect_requested.connect(self._hub_worker.inspect)
        panel.download_requested.connect(self.request_download)
        self.access_check_requested.connect(self._hub_worker.check_access)
        self._hub_worker.listing_ready.connect(panel.show_listing)
        self._hub_worker.search_ready.connect(panel.show_search_results)
        self._hub_worker.remote_report_ready.connect(self._on_remote_report)
        self._hub_worker.access_checked.connect(self._on_access_checked)
        self._hub_worker.hub_failed.connect(self._on_hub_failed)
        self._threads.append(WorkerThread(self, self._hub_worker, "hub-worker"))

        self.download_worker = DownloadWorker(context.library, context.jobs, context.tokens)
        self.run_job_requested.connect(self.download_worker.run_job)
        self.download_worker.job_progress.connect(self.downloads_panel.show_progress)
        self.download_worker.job_state_changed.connect(self._on_job_state_changed)
        self.download_worker.download_finished.connect(self._on_download_finished)
        # Pause and cancel set thread-safe flags directly: a queued call would wait behind the download.
        self.downloads_panel.pause_requested.connect(self._pause_job)
        self.downloads_panel.resume_requested.connect(self._run_job)
        self.downloads_panel.cancel_requested.connect(self._cancel_job)
        self._threads.append(WorkerThread(self, self.download_worker, "download-worker"))

    # -- downloading -----------------------------------------------------------------------------

    @Slot(object, str, str)
    def request_download(self, remote: RemoteFile, license_id: str, name: str) -> int | None:
        """Start downloading `remote` after its license, if it has one to accept, is accepted here."""
        pending = self._context.licenses.needs_acceptance(license_id or None)
        if pending is not None:
            dialog = LicenseDialog(pending, name, self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                self.catalog_panel.show_problem(f"You declined the {pending.title}: nothing was downloaded.")
                return None
            self._context.licenses.accept(pending)
        existing = self._context.library.find_by_sha256(remote.sha256) if remote.sha256 else None
        if existing is not None:
            self.catalog_panel.show_problem(
                f"{remote.filename} is already in the library as {existing.name}."
            )
            return None
        job = self._context.jobs.add(remote, license_id or None)
        self.downloads_panel.add_job(job)
        self.tabs.setCurrentWidget(self.downloads_panel)
        self._run_job(job.id)
        return job.id

    @Slot(int)
    def _run_job(self, job_id: int) -> None:
        self.download_worker.expect_run(job_id)  # armed here: a Pause pressed from now on counts
        self.run_job_requested.emit(job_id)

    @Slot(int)
    def _pause_job(self, job_id: int) -> None:
        self.download_worker.pause(job_id)

    @Slot(int)
    def _cancel_job(self, job_id: int) -> None:
        self.download_worker.cancel(job_id)

    @Slot(int, str, str)
    def _on_job_state_changed(self, job_id: int, state: str, message: str) -> None:
        self.downloads_panel.show_state(job_id, JobState(state), message)

    @Slot(int, object)
    def _on_download_finished(self, _job_id: int, model: LibraryModel) -> None:
        self.reload()
        self.library_changed.emit()
        self.show_message(
            f"Downloaded and verified {model.name} ({format_bytes(model.size_bytes)}).", error=False
        )

    @Slot(object, object)
    def _on_remote_report(self, remote: RemoteFile, report: ModelReport) -> None:
        estimate = estimate_memory(report, self._context.settings.context_length)
        self.catalog_panel.show_remote_report(remote, report, judge_fit(report, estimate, self._hardware))

    @Slot(str)
    def _on_hub_failed(self, message: str) -> None:
        self.catalog_panel.show_problem(message)
        if self._settings_dialog is not None and self._settings_dialog.isVisible():
            self._settings_dialog.show_problem(message)

    # -- settings --------------------------------------------------------------------------------

    def show_settings(self) -> SettingsDialog:
        if self._settings_dialog is None:
            self._settings_dialog = SettingsDialog(
                self._context.tokens,
                HubClient().endpoint,
                self,
                settings=self._context.settings,
                save_settings=self._context.save_settings,
            )
            self._settings_dialog.access_check_requested.connect(self.access_check_requested)
        self._settings_dialog.show()
        return self._settings_dialog

    @Slot(str, object)
    def _on_access_checked(self, repo_id: str, access: HubAccess) -> None:
        if self._settings_dialog is not None:
            self._settings_dialog.show_access(repo_id, access)

    # -- listing ---------------------------------------------------------------------------------

    def reload(self) -> None:
        models = self._context.library.models()
        self.table_model.set_models(models)
        library = self._context.library
        self.total_label.setText(
            f"{len(models)} model(s) · {format_bytes(library.total_size())} in all · "
            f"{format_bytes(library.owned_size())} in {self._context.home.models_dir}"
        )
        missing = [(m.id, m.path) for m in models if m.id not in self._reports]
        for model_id, report in self._reports.items():
            self._show_verdict(model_id, report)
        if missing:
            self.reports_requested.emit(missing)
        self._update_buttons()

    def selected_model(self) -> LibraryModel | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        model: LibraryModel = self._proxy.data(rows[0], MODEL_ROLE)
        return model

    def select_model(self, model_id: int) -> None:
        for row in range(self._proxy.rowCount()):
            index = self._proxy.index(row, 0)
            if self._proxy.data(index, MODEL_ROLE).id == model_id:
                self.table.selectionModel().select(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
                )
                return

    def report(self, model_id: int) -> ModelReport | None:
        return self._reports.get(model_id)

    @Slot(int, object)
    def _on_report_ready(self, model_id: int, report: ModelReport) -> None:
        self._reports[model_id] = report
        self._show_verdict(model_id, report)

    @Slot(int, str)
    def _on_report_failed(self, model_id: int, message: str) -> None:
        self.table_model.set_verdict(model_id, message)

    def _show_verdict(self, model_id: int, report: ModelReport) -> None:
        estimate = estimate_memory(report, self._context.settings.context_length)
        self.table_model.set_verdict(model_id, judge_fit(report, estimate, self._hardware))

    # -- import ----------------------------------------------------------------------------------

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Import models", str(Path.home()), "GGUF models (*.gguf)"
        )
        if paths:
            self.offer_import([Path(p) for p in paths])

    def offer_import(self, paths: list[Path]) -> None:
        """Ask whether to use the files in place or copy them, then import them one by one."""
        box = QMessageBox(self)
        box.setWindowTitle("Import models")
        names = ", ".join(p.name for p in paths[:3]) + ("…" if len(paths) > 3 else "")
        box.setText(f"Import {names}?")
        box.setInformativeText(
            "Use in place: the library points at the file where it is (no extra disk space).\n"
            "Copy: the library keeps its own copy, which stays if the original moves."
        )
        in_place = box.addButton("Use in place", QMessageBox.ButtonRole.AcceptRole)
        copy = box.addButton("Copy into library", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() in (in_place, copy):
            self.import_paths(paths, copy=box.clickedButton() is copy)

    def _choose_checkpoint(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Checkpoint folder to convert", str(Path.home()))
        if not folder:
            return
        quant, accepted = QInputDialog.getItem(
            self,
            "Convert checkpoint",
            "Quantization (Q4_K_M: small, keeps quality; Q8_0 and F16: larger, closer to the original):",
            list(OUTPUT_TYPES),
            0,
            False,
        )
        if accepted:
            self.convert_folder(ConversionRequest(Path(folder), quant))

    @Slot()
    def show_meta_download(self) -> MetaDownloadDialog:
        if self._meta_dialog is not None and not self._meta_dialog.worker_thread.isRunning():
            self._meta_dialog.deleteLater()  # closed: its worker has ended; a new dialog resumes the files
            self._meta_dialog = None
        if self._meta_dialog is None:
            self._meta_dialog = MetaDownloadDialog(
                self._context.home.models_dir / ".meta",
                self._context.licenses,
                allow_hosts=allowed_hosts(),
                parent=self,
            )
            self._meta_dialog.download_finished.connect(self._on_meta_download_finished)
        self._meta_dialog.show()
        self._meta_dialog.raise_()
        return self._meta_dialog

    @Slot(object)
    def _on_meta_download_finished(self, result: MetaDownloadResult) -> None:
        """Every file checked against Meta's checklist: convert, then drop the original (it is large)."""
        assert self._meta_dialog is not None
        model = self._meta_dialog.model
        self.convert_folder(
            ConversionRequest(
                result.folder,
                self._meta_dialog.quant,
                name=model.name,
                instruct=model.instruct,
                source="meta",
                origin=f"Meta download: {model.name}",
                license_id=model.license_id,
                remove_folder_after=True,
            )
        )

    def convert_folder(self, request: ConversionRequest) -> bool:
        """Convert a checkpoint folder into the library; one long job at a time."""
        if self.is_importing:
            self.show_message("Wait for the current import or conversion to finish.")
            return False
        self._importing = True
        self.message_label.hide()
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"Converting {request.display_name}… %p%")
        self.progress.show()
        self.cancel_button.show()
        self._worker.expect_request()
        self.convert_requested.emit(request)
        return True

    @Slot(str, int, int)
    def _on_conversion_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setFormat(f"{stage}… %p%")
        self.progress.setValue(1000 * done // total if total else 1000)

    def import_paths(self, paths: list[Path], *, copy: bool) -> None:
        self._pending_imports.extend((p, copy) for p in paths)
        self._start_next_import()

    def _start_next_import(self) -> None:
        if self._importing or not self._pending_imports:
            return
        path, copy = self._pending_imports.pop(0)
        self._importing = True
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"{'Copying' if copy else 'Checking'} {path.name}… %p%")
        self.progress.show()
        self.cancel_button.show()
        self._worker.expect_request()
        self.import_requested.emit(str(path), copy)

    @Slot(int, int)
    def _on_import_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 * done // total if total else 1000)

    @Slot(object)
    def _on_import_finished(self, model: LibraryModel) -> None:
        self._end_import()
        self.show_message(f"Imported {model.name} ({format_bytes(model.size_bytes)}).", error=False)
        self.reload()
        self.select_model(model.id)
        self.library_changed.emit()
        self._start_next_import()

    @Slot(str)
    def _on_import_failed(self, message: str) -> None:
        self._end_import()
        self.show_message(message)
        self._start_next_import()

    def _end_import(self) -> None:
        self._importing = False
        self.progress.hide()
        self.cancel_button.hide()

    def _cancel_import(self) -> None:
        self._pending_imports.clear()
        self._worker.cancel_import()

    @property
    def is_importing(self) -> bool:
        return self._importing or bool(self._pending_imports)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _gguf_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _gguf_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.offer_import(paths)

    # -- actions on one model --------------------------------------------------------------------

    def show_details(self) -> ModelDetailsDialog | None:
        model = self.selected_model()
        if model is None:
            return None
        report = self._reports.get(model.id)
        if report is None:
            self.show_message(f"{model.name}'s header has not been read yet (or could not be). Try again.")
            return None
        dialog = ModelDetailsDialog(report, self._hardware, self._context.settings.context_length, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def delete_selected(self) -> bool:
        model = self.selected_model()
        if model is None:
            return False
        what = "delete its file" if model.owned else "remove it from the library (the file stays where it is)"
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"{model.name} ({format_bytes(model.size_bytes)}): {what}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        try:
            freed = self._context.library.remove(model.id)
        except LlamaDeskError as exc:
            self.show_message(str(exc))
            return False
        self._reports.pop(model.id, None)
        self.show_message(
            f"Deleted {model.name}; freed {format_bytes(freed)}." if freed else f"Removed {model.name}.",
            error=False,
        )
        self.reload()
        self.library_changed.emit()
        return True

    def _chat_with_selected(self) -> None:
        model = self.selected_model()
        if model is not None:
            self.chat_requested.emit(model)

    def show_message(self, text: str, *, error: bool = True) -> None:
        colors = chat_colors(self.palette())
        self.message_label.setStyleSheet(f"color: {(colors.warning if error else colors.success).name()};")
        self.message_label.setText(text)
        self.message_label.show()

    def message_text(self) -> str:
        return self.message_label.text() if self.message_label.isVisibleTo(self) else ""

    def _update_buttons(self) -> None:
        selected = self.selected_model() is not None
        for button in (self.details_button, self.delete_button, self.chat_button):
            button.setEnabled(selected)

    # -- shutdown --------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """End the worker threads (a running download pauses, to resume at the next start).

        Closing the window only hides it, so it can be shown again.
        """
        self.download_worker.pause_all()
        self._cancel_import()
        if self._meta_dialog is not None:
            self._meta_dialog.shutdown()
        for worker_thread in self._threads:
            worker_thread.stop()  # bounded: a header read or a download chunk at most


def _describe_machine(hardware: Hardware) -> str:
    ram = (
        f"This machine: {format_bytes(hardware.ram_total)} RAM ({format_bytes(hardware.ram_available)} free)"
    )
    gpus = [f"{g.description or g.name} with {format_bytes(g.memory_total)}" for g in hardware.gpus]
    return (
        f"{ram}; "
        + ("; ".join(gpus) if gpus else "no GPU that llama.cpp can use (models run on the CPU)")
        + "."
    )


def _gguf_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(url.toLocalFile()) for url in urls if url.toLocalFile().lower().endswith(".gguf")]

"""Browse the Llama catalog or search the Hub, see a file's size and fit, and ask for a download."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.units import format_bytes, format_count
from app.downloads.catalog import CatalogModel
from app.downloads.hub import RemoteFile, RepoListing
from app.engine.fit import FitVerdict
from app.gguf.report import ModelReport
from ui.common.theme import chat_colors

_REPO_ROLE = Qt.ItemDataRole.UserRole + 1


class CatalogPanel(QWidget):
    """Signals:
    listing_requested(str): list the GGUF files of this repo.
    search_requested(str): search the Hub for GGUF repos.
    inspect_requested(RemoteFile): read this file's header to show its size and memory needs.
    download_requested(RemoteFile, str, str): download it (license id or "", display name).
    """

    listing_requested = Signal(str)
    search_requested = Signal(str)
    inspect_requested = Signal(object)
    download_requested = Signal(object, str, str)

    def __init__(self, catalog: list[CatalogModel], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._catalog = {m.repo: m for m in catalog}
        self._listing: RepoListing | None = None

        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText(
            "Search Hugging Face for GGUF models, or type a repo id (owner/name)"
        )
        self.search_button = QPushButton("Search")
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_edit, 1)
        search_row.addWidget(self.search_button)

        self.repo_list = QListWidget()
        self.repo_list.setSpacing(2)
        for model in catalog:
            size = format_bytes(model.estimated_size("Q4_K_M"))
            item = QListWidgetItem(
                f"{model.name}  ·  {format_count(model.parameters)}  ·  ≈{size} at Q4_K_M\n{model.summary}"
            )
            item.setData(_REPO_ROLE, model.repo)
            item.setToolTip(model.repo)
            self.repo_list.addItem(item)

        self.files_table = QTableWidget(0, 4)
        self.files_table.setHorizontalHeaderLabels(["Quantization", "File", "Size", "Fit"])
        self.files_table.verticalHeader().hide()
        self.files_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.files_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.files_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.files_table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.details_label = QLabel("Pick a model to see its files.")
        self.details_label.setWordWrap(True)
        self.download_button = QPushButton("Download")
        self.download_button.setEnabled(False)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet(f"color: {chat_colors(self.palette()).warning.name()};")
        self.message_label.hide()

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.files_table, 1)
        right_layout.addWidget(self.details_label)
        right_layout.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignRight)
        splitter = QSplitter()
        splitter.addWidget(self.repo_list)
        splitter.addWidget(right)
        splitter.setSizes([420, 520])
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(self.message_label)
        layout.addWidget(splitter, 1)

        self.search_button.clicked.connect(self._search)
        self.search_edit.returnPressed.connect(self._search)
        self.repo_list.currentItemChanged.connect(self._on_repo_selected)
        self.files_table.itemSelectionChanged.connect(self._on_file_selected)
        self.download_button.clicked.connect(self._download)

    # -- requests --------------------------------------------------------------------------------

    def _search(self) -> None:
        text = self.search_edit.text().strip()
        if not text:
            return
        self.message_label.hide()
        if "/" in text and " " not in text:
            self.listing_requested.emit(text)  # a repo id: list it directly
        else:
            self.search_requested.emit(text)

    @Slot()
    def _on_repo_selected(self) -> None:
        item = self.repo_list.currentItem()
        if item is not None:
            self.files_table.setRowCount(0)
            self.details_label.setText("Asking Hugging Face for the files…")
            self.download_button.setEnabled(False)
            self.listing_requested.emit(item.data(_REPO_ROLE))

    def selected_file(self) -> RemoteFile | None:
        rows = self.files_table.selectionModel().selectedRows()
        return self._remote_at(rows[0].row()) if rows and self._listing is not None else None

    def _remote_at(self, row: int) -> RemoteFile | None:
        item = self.files_table.item(row, 0)
        remote: RemoteFile | None = item.data(_REPO_ROLE) if item is not None else None
        return remote

    @Slot()
    def _on_file_selected(self) -> None:
        remote = self.selected_file()
        self.download_button.setEnabled(remote is not None)
        if remote is not None:
            self.details_label.setText(f"Reading the header of {remote.filename} (a few MB)…")
            self.inspect_requested.emit(remote)

    def _download(self) -> None:
        remote = self.selected_file()
        if remote is None or self._listing is None:
            return
        curated = self._catalog.get(remote.repo_id)
        license_id = (curated.license if curated else None) or self._listing.license or ""
        name = curated.name if curated else remote.repo_id
        self.download_requested.emit(remote, license_id, f"{name} ({remote.quantization or remote.filename})")

    # -- results ---------------------------------------------------------------------------------

    def show_search_results(self, query: str, repos: list[str]) -> None:
        self.repo_list.clear()
        for repo in repos:
            item = QListWidgetItem(repo)
            item.setData(_REPO_ROLE, repo)
            self.repo_list.addItem(item)
        if not repos:
            self.show_problem(f"No GGUF models on Hugging Face match “{query}”.")

    def show_listing(self, listing: RepoListing) -> None:
        self._listing = listing
        files = listing.files
        self.files_table.setRowCount(0)
        for remote in sorted(files, key=lambda f: f.size):
            row = self.files_table.rowCount()
            self.files_table.insertRow(row)
            quant = QTableWidgetItem(remote.quantization or "?")
            quant.setData(_REPO_ROLE, remote)
            self.files_table.setItem(row, 0, quant)
            self.files_table.setItem(row, 1, QTableWidgetItem(remote.filename))
            self.files_table.setItem(row, 2, QTableWidgetItem(format_bytes(remote.size)))
            self.files_table.setItem(row, 3, QTableWidgetItem("select to check"))
        gated = " This repo is gated: it needs a token with access (Settings)." if listing.gated else ""
        self.details_label.setText(f"{len(files)} file(s) in {listing.repo_id}.{gated}")

    def show_remote_report(self, remote: RemoteFile, report: ModelReport, verdict: FitVerdict) -> None:
        for row in range(self.files_table.rowCount()):
            if self._remote_at(row) == remote:
                self.files_table.setItem(row, 3, QTableWidgetItem(verdict.fit.value))
        if self.selected_file() == remote:
            e = verdict.estimate
            self.details_label.setText(
                f"{remote.filename}: {format_count(report.parameters)} parameters, {report.file_type}, "
                f"{format_bytes(remote.size)}. At {e.n_ctx:,} tokens of context it needs about "
                f"{format_bytes(e.total_bytes)} (weights {format_bytes(e.weights_bytes)} + KV cache "
                f"{format_bytes(e.kv_cache_bytes)}). {verdict.explanation}"
            )

    def show_problem(self, message: str) -> None:
        self.message_label.setText(message)
        self.message_label.show()

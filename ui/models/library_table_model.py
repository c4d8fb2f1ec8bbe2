"""The library as a sortable Qt table: one row per model, with a fit badge once its header is read."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QGuiApplication

from app.core.units import format_bytes, format_count
from app.engine.fit import Fit, FitVerdict
from app.library.store import LibraryModel
from ui.common.theme import chat_colors

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
MODEL_ROLE = Qt.ItemDataRole.UserRole + 2

COLUMNS = ("Name", "Architecture", "Parameters", "Quantization", "Size", "Context", "Source", "Fit")

_Index = QModelIndex | QPersistentModelIndex


class LibraryTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self._models: list[LibraryModel] = []
        self._verdicts: dict[int, FitVerdict | str] = {}  # a verdict, or why there is none

    def set_models(self, models: list[LibraryModel]) -> None:
        self.beginResetModel()
        self._models = list(models)
        self._verdicts = {k: v for k, v in self._verdicts.items() if any(m.id == k for m in models)}
        self.endResetModel()

    def set_verdict(self, model_id: int, verdict: FitVerdict | str) -> None:
        self._verdicts[model_id] = verdict
        for row, model in enumerate(self._models):
            if model.id == model_id:
                index = self.index(row, COLUMNS.index("Fit"))
                self.dataChanged.emit(index, index)

    def model_at(self, row: int) -> LibraryModel:
        return self._models[row]

    def verdict(self, model_id: int) -> FitVerdict | str | None:
        return self._verdicts.get(model_id)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._models)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._models):
            return None
        model = self._models[index.row()]
        column = COLUMNS[index.column()]
        if role == MODEL_ROLE:
            return model
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(model, column)
        if role == SORT_ROLE:
            return self._sort_key(model, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "Fit":
                verdict = self._verdicts.get(model.id)
                return verdict.explanation if isinstance(verdict, FitVerdict) else verdict
            return str(model.path) if column in ("Name", "Source") else None
        if role == Qt.ItemDataRole.ForegroundRole and column == "Fit":
            verdict = self._verdicts.get(model.id)
            if not isinstance(verdict, FitVerdict):
                return None
            colors = chat_colors(QGuiApplication.palette())  # readable in the light and dark themes
            return {Fit.FITS: colors.success, Fit.TIGHT: colors.marker}.get(verdict.fit, colors.warning)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("Parameters", "Size", "Context"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, model: LibraryModel, column: str) -> str:
        if column == "Name":
            return model.name
        if column == "Architecture":
            return model.architecture or "?"
        if column == "Parameters":
            return format_count(model.parameters) if model.parameters else "?"
        if column == "Quantization":
            return model.file_type or "?"
        if column == "Size":
            return format_bytes(model.size_bytes)
        if column == "Context":
            return f"{model.context_length:,}" if model.context_length else "?"
        if column == "Source":
            return model.source + ("" if model.owned else " (in place)")
        verdict = self._verdicts.get(model.id)
        if verdict is None:
            return "…"
        return verdict.fit.value if isinstance(verdict, FitVerdict) else "unreadable"

    def _sort_key(self, model: LibraryModel, column: str) -> object:
        if column == "Parameters":
            return model.parameters or 0
        if column == "Size":
            return model.size_bytes
        if column == "Context":
            return model.context_length or 0
        return self._display(model, column).lower()

"""What a model is made of and what it needs: summary, parameter breakdown, memory fit, tensor table."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSpinBox,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.units import format_bytes, format_count
from app.engine.fit import estimate_memory, judge_fit
from app.engine.hardware import Hardware
from app.gguf.header import TensorInfo
from app.gguf.report import BREAKDOWN_KEYS, ModelReport

_Index = QModelIndex | QPersistentModelIndex
_BREAKDOWN_LABELS = {
    "embeddings": "Embeddings",
    "attention": "Attention",
    "attention.q": "    Q",
    "attention.k": "    K",
    "attention.v": "    V",
    "attention.output": "    O (output)",
    "feed_forward": "Feed-forward",
    "feed_forward.gate": "    gate",
    "feed_forward.up": "    up",
    "feed_forward.down": "    down",
    "norms": "Norms",
    "output": "Output",
    "other": "Other",
}


class TensorTableModel(QAbstractTableModel):
    """Tensors as llama.cpp lists them: name | size 4096 x 4096 | type F16, plus bytes."""

    COLUMNS = ("Tensor", "Shape", "Type", "Bytes")

    def __init__(self, tensors: list[TensorInfo]) -> None:
        super().__init__()
        self._tensors = tensors

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._tensors)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        tensor = self._tensors[index.row()]
        return (
            tensor.name,
            " x ".join(str(d) for d in tensor.shape),
            tensor.type_name,
            format_bytes(tensor.n_bytes),
        )[index.column()]


class ModelDetailsDialog(QDialog):
    def __init__(
        self, report: ModelReport, hardware: Hardware, n_ctx: int, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._report = report
        self._hardware = hardware
        self.setWindowTitle(f"{report.name or report.paths[0].name} — Details")
        self.resize(900, 720)

        summary = QFormLayout()
        summary.addRow("File", _selectable("\n".join(str(p) for p in report.paths)))
        summary.addRow("Architecture", QLabel(report.architecture))
        summary.addRow("Parameters", QLabel(f"{report.parameters:,} ({format_count(report.parameters)})"))
        summary.addRow("Quantization", QLabel(report.file_type))
        summary.addRow(
            "Trained context", QLabel(f"{report.context_length:,}" if report.context_length else "?")
        )
        summary.addRow("Size on disk", QLabel(format_bytes(report.file_size)))
        summary.addRow("License", QLabel(report.license or "not stated in the file"))

        self.breakdown_table = QTableWidget(0, 3)
        self.breakdown_table.setHorizontalHeaderLabels(["Part", "Parameters", "Share"])
        self.breakdown_table.verticalHeader().hide()
        self.breakdown_table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        rows = [(k, v) for k, v in report.breakdown.items() if v and k in BREAKDOWN_KEYS]
        rows.append(("total", report.parameters))
        for key, count in rows:
            row = self.breakdown_table.rowCount()
            self.breakdown_table.insertRow(row)
            share = f"{100 * count / report.parameters:.1f} %" if report.parameters else ""
            for column, text in enumerate((_BREAKDOWN_LABELS.get(key, "Total"), f"{count:,}", share)):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.breakdown_table.setItem(row, column, item)
        self.breakdown_table.resizeColumnsToContents()
        _compact_rows(self.breakdown_table)

        self.context_spin = QSpinBox()
        self.context_spin.setRange(256, max(report.context_length or 0, 256))
        self.context_spin.setSingleStep(1024)
        self.context_spin.setGroupSeparatorShown(True)
        self.context_spin.setValue(min(n_ctx, self.context_spin.maximum()))
        self.memory_label = QLabel()
        self.memory_label.setWordWrap(True)
        self.memory_label.setTextFormat(Qt.TextFormat.RichText)
        fit_box = QGroupBox("Memory")
        fit_layout = QFormLayout(fit_box)
        fit_layout.addRow("Context length", self.context_spin)
        fit_layout.addRow(self.memory_label)
        self.context_spin.valueChanged.connect(self._update_fit)
        self._update_fit()

        self.tensor_view = QTableView()
        self.tensor_view.setModel(TensorTableModel(report.tensors))
        self.tensor_view.verticalHeader().hide()
        self.tensor_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.tensor_view.setAlternatingRowColors(True)
        _compact_rows(self.tensor_view)
        tensors_box = QGroupBox(f"Tensors ({len(report.tensors):,})")
        QVBoxLayout(tensors_box).addWidget(self.tensor_view)

        top = QHBoxLayout()
        left = QVBoxLayout()
        left.addLayout(summary)
        left.addWidget(fit_box)
        top.addLayout(left, 1)
        breakdown_box = QGroupBox("Parameters by part")
        QVBoxLayout(breakdown_box).addWidget(self.breakdown_table)
        top.addWidget(breakdown_box, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(tensors_box, 1)
        layout.addWidget(buttons)

    def _update_fit(self) -> None:
        estimate = estimate_memory(self._report, self.context_spin.value())
        verdict = judge_fit(self._report, estimate, self._hardware)
        gpu = (
            f"<br>Suggested GPU layers: {verdict.gpu_layers} of {verdict.n_layers}"
            if verdict.gpu_layers
            else ""
        )
        weights, cache = format_bytes(estimate.weights_bytes), format_bytes(estimate.kv_cache_bytes)
        compute, total = format_bytes(estimate.compute_bytes), format_bytes(estimate.total_bytes)
        self.memory_label.setText(
            f"Weights {weights} + KV cache {cache} + compute ≈{compute} = <b>{total}</b>"
            f"<br><b>{verdict.fit.value.capitalize()}</b>: {verdict.explanation.split(': ', 1)[-1]}{gpu}"
        )


def _compact_rows(view: QTableView) -> None:
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 6)


def _selectable(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setWordWrap(True)
    return label

"""Guards against known defects of the Qt binding that would crash the app, not just misbehave."""

from __future__ import annotations

import gc
import sys

import pytest
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt


class _SparseModel(QAbstractListModel):
    """Like every model of ours: data() answers None for the roles it does not provide."""

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 1

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        return "text" if role == Qt.ItemDataRole.DisplayRole else None


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on")
def test_returning_none_from_data_keeps_none_alive() -> None:
    """PySide6 6.12.0 dropped a reference to None on every such call; views make thousands a second."""
    model = _SparseModel()
    index = model.index(0)
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(2000):
        index.data(Qt.ItemDataRole.ToolTipRole)
    gc.collect()
    assert sys.getrefcount(None) - before > -100

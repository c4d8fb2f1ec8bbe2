"""The Model manager offscreen: listing with fit badges, import, delete (refused while in use), details."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.core.data_home import DataHome
from app.library.store import LibraryModel
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama, write_small_gguf
from ui.chat.window import ChatWindow
from ui.gui import open_chat_window
from ui.models.library_table_model import COLUMNS
from ui.models.manager import ModelManagerWindow
from ui.services import AppServices

TIMEOUT_MS = 60_000


def cell(manager: ModelManagerWindow, row: int, column: str) -> str:
    proxy = manager.table.model()
    return str(proxy.index(row, COLUMNS.index(column)).data())


def names(manager: ModelManagerWindow) -> list[str]:
    return [cell(manager, row, "Name") for row in range(manager.table.model().rowCount())]


def yes_to_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(QMessageBox, "question", lambda *_a, **_k: QMessageBox.StandardButton.Yes)


def test_lists_the_starter_with_a_fit_badge(qtbot: QtBot, manager: ModelManagerWindow) -> None:
    assert names(manager) == ["SmolLM2 135M Instruct (starter)"]
    assert cell(manager, 0, "Parameters") == "135M"
    assert cell(manager, 0, "Quantization") == "Q4_1"
    qtbot.waitUntil(lambda: cell(manager, 0, "Fit") == "fits", timeout=TIMEOUT_MS)
    tooltip = manager.table.model().index(0, COLUMNS.index("Fit")).data(Qt.ItemDataRole.ToolTipRole)
    assert "needs about" in tooltip and "free of" in tooltip
    assert "1 model(s)" in manager.total_label.text()
    assert "RAM" in manager.machine_label.text()


def test_import_by_copy_updates_the_list(
    qtbot: QtBot, manager: ModelManagerWindow, tmp_path: Path, data_home: DataHome
) -> None:
    source = write_small_gguf(tmp_path / "tiny.gguf")
    manager.import_paths([source], copy=True)
    qtbot.waitUntil(lambda: not manager.is_importing and len(names(manager)) == 2, timeout=TIMEOUT_MS)
    assert "fuzz seed" in names(manager)
    assert (data_home.models_dir / "tiny.gguf").read_bytes() == source.read_bytes()
    assert "Imported fuzz seed" in manager.message_text()
    assert not manager.progress.isVisible()
    assert manager.selected_model() is not None and manager.selected_model().name == "fuzz seed"  # type: ignore[union-attr]


def test_import_of_a_damaged_file_is_reported(
    qtbot: QtBot, manager: ModelManagerWindow, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(write_small_gguf(tmp_path / "ok.gguf").read_bytes()[:200])
    manager.import_paths([bad], copy=True)
    qtbot.waitUntil(
        lambda: not manager.is_importing and "broken.gguf" in manager.message_text(), timeout=TIMEOUT_MS
    )
    assert len(names(manager)) == 1


def test_dropping_gguf_files_offers_to_import_them(
    manager: ModelManagerWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[list[Path]] = []
    monkeypatch.setattr(manager, "offer_import", offered.append)
    mime = QMimeData()
    mime.setUrls(
        [QUrl.fromLocalFile(str(tmp_path / "a.gguf")), QUrl.fromLocalFile(str(tmp_path / "notes.txt"))]
    )
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    manager.dropEvent(event)
    assert offered == [[tmp_path / "a.gguf"]]


def test_sorting_by_size(
    qtbot: QtBot, manager: ModelManagerWindow, context: AppContext, tmp_path: Path
) -> None:
    context.library.import_model(write_small_gguf(tmp_path / "tiny.gguf"))
    manager.reload()
    manager.table.sortByColumn(COLUMNS.index("Size"), Qt.SortOrder.AscendingOrder)
    assert names(manager) == ["fuzz seed", "SmolLM2 135M Instruct (starter)"]
    manager.table.sortByColumn(COLUMNS.index("Size"), Qt.SortOrder.DescendingOrder)
    assert names(manager) == ["SmolLM2 135M Instruct (starter)", "fuzz seed"]


def test_details_show_the_breakdown_tensors_and_memory(
    qtbot: QtBot, manager: ModelManagerWindow, context: AppContext, tmp_path: Path
) -> None:
    shaped = context.library.import_model(
        write_header_only_llama(tmp_path / "l3.gguf", LLAMA_SHAPES["Llama-3-8B"], name="Llama 3 shape"),
        hash_in_place=False,
    )
    manager.reload()
    qtbot.waitUntil(lambda: manager.report(shaped.id) is not None, timeout=TIMEOUT_MS)
    manager.select_model(shaped.id)
    dialog = manager.show_details()
    assert dialog is not None
    table = dialog.breakdown_table
    last = table.rowCount() - 1
    assert (table.item(last, 0).text(), table.item(last, 1).text()) == ("Total", "8,030,261,248")
    assert dialog.tensor_view.model().rowCount() == 2 + 32 * 9 + 1
    dialog.context_spin.setValue(8192)
    assert "KV cache 1.0 GiB" in dialog.memory_label.text()
    dialog.context_spin.setValue(4096)
    assert "KV cache 512.0 MiB" in dialog.memory_label.text()
    dialog.close()


def _chat_on(qtbot: QtBot, services: AppServices, model: LibraryModel) -> ChatWindow:
    chat = open_chat_window(services, None)
    qtbot.addWidget(chat)
    qtbot.waitUntil(lambda: chat.model_info is not None, timeout=TIMEOUT_MS)
    assert chat.switch_model(model)
    qtbot.waitUntil(
        lambda: chat.model_info is not None and chat.model_info.path == model.path, timeout=TIMEOUT_MS
    )
    return chat


def test_delete_is_refused_while_a_chat_uses_the_model(
    qtbot: QtBot,
    manager: ModelManagerWindow,
    context: AppContext,
    services: AppServices,
    starter_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    yes_to_questions(monkeypatch)
    copy = context.library.import_model(
        shutil.copy(starter_path, tmp_path / "smol-copy.gguf"), copy=True, name="Smol copy"
    )
    manager.reload()
    chat = _chat_on(qtbot, services, copy)
    try:
        manager.select_model(copy.id)
        assert not manager.delete_selected()
        assert "loaded in an open chat" in manager.message_text()
        assert copy.path.exists()

        starter = next(m for m in context.library.models() if m.source == "starter")
        assert chat.switch_model(starter)
        qtbot.waitUntil(
            lambda: chat.model_info is not None and chat.model_info.path == starter.path, timeout=TIMEOUT_MS
        )
        manager.select_model(copy.id)
        assert manager.delete_selected()
        assert not copy.path.exists(), "deleting an owned model frees its disk space"
        assert "freed 93.8 MiB" in manager.message_text()
        assert "Smol copy" not in names(manager)
    finally:
        chat.shutdown()


def test_the_starter_cannot_be_deleted(manager: ModelManagerWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    yes_to_questions(monkeypatch)
    manager.select_model(1)
    assert not manager.delete_selected()
    assert "part of the installation" in manager.message_text()


def test_chat_window_picks_its_model_from_the_library(
    qtbot: QtBot, context: AppContext, services: AppServices, starter_path: Path, tmp_path: Path
) -> None:
    other = context.library.import_model(
        shutil.copy(starter_path, tmp_path / "other.gguf"), name="Other model"
    )
    chat = open_chat_window(services, None)
    qtbot.addWidget(chat)
    try:
        qtbot.waitUntil(lambda: chat.model_info is not None, timeout=TIMEOUT_MS)
        picker = chat.model_picker
        assert [picker.itemText(i) for i in range(picker.count())] == [
            "SmolLM2 135M Instruct (starter)",
            "Other model",
        ]
        picker.setCurrentIndex(1)
        picker.activated.emit(1)
        qtbot.waitUntil(
            lambda: chat.model_info is not None and chat.model_info.name == "Other model", timeout=TIMEOUT_MS
        )
        assert context.library.usage.is_in_use(other.path)
        assert not context.library.usage.is_in_use(starter_path)
        manager = chat.show_model_manager()
        manager.select_model(1)
        manager.chat_button.click()
        qtbot.waitUntil(
            lambda: chat.model_info is not None and chat.model_info.path == starter_path.resolve(),
            timeout=TIMEOUT_MS,
        )
        assert picker.currentText() == "SmolLM2 135M Instruct (starter)"
    finally:
        chat.shutdown()
    assert not context.library.usage.is_in_use(starter_path)

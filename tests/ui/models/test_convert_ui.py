"""Converting a checkpoint folder from the Model manager: staged progress, Cancel, the result listed."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from app.convert.into_library import ConversionRequest
from app.core.data_home import DataHome
from tests.support.convert_checkpoints import write_hf_llama, write_meta_llama2
from tests.ui.models.test_model_manager import names
from ui.models.manager import ModelManagerWindow

TIMEOUT_MS = 120_000


def test_a_converted_checkpoint_appears_in_the_library(
    qtbot: QtBot, manager: ModelManagerWindow, tmp_path: Path, data_home: DataHome
) -> None:
    folder = tmp_path / "Llama-3.2-Tiny-Instruct"
    write_hf_llama(folder, llama32=True)
    stages: list[str] = []
    manager._worker.conversion_progress.connect(lambda stage, *_: stages.append(stage))
    assert manager.convert_folder(ConversionRequest(folder, "Q8_0"))
    assert manager.progress.isVisibleTo(manager) and manager.cancel_button.isVisibleTo(manager)
    qtbot.waitUntil(lambda: not manager.is_importing, timeout=TIMEOUT_MS)
    assert "Imported Llama-3.2-Tiny-Instruct" in manager.message_text()
    assert any(n.startswith("Llama-3.2-Tiny-Instruct") for n in names(manager))
    assert {"Reading the checkpoint", "Converting to GGUF", "Quantizing"} <= set(stages)
    assert [p.name for p in data_home.models_dir.iterdir()] == ["Llama-3.2-Tiny-Instruct-Q8_0.gguf"]


def test_cancel_leaves_nothing_behind(
    qtbot: QtBot, manager: ModelManagerWindow, tmp_path: Path, data_home: DataHome
) -> None:
    write_meta_llama2(tmp_path)
    folder = tmp_path / "llama-2-tiny-chat"
    manager._worker.conversion_progress.connect(lambda *_: manager.cancel_button.click())
    manager.convert_folder(ConversionRequest(folder, "Q4_K_M"))
    qtbot.waitUntil(lambda: not manager.is_importing, timeout=TIMEOUT_MS)
    assert "Cancelled" in manager.message_text()
    assert names(manager) == ["SmolLM2 135M Instruct (starter)"]
    assert list(data_home.models_dir.iterdir()) == []

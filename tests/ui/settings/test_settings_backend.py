"""Settings shows the backend and GPUs llama.cpp reports, and edits the saved GPU layers choice."""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import llama_cpp
import pytest
from keyrings.alt.file import PlaintextKeyring
from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.core.data_home import DataHome
from app.core.settings import Settings
from app.engine.backends import BackendReport, GpuDevice
from ui.settings.dialog import SettingsDialog

GIB = 1 << 30


@pytest.mark.skipif(bool(llama_cpp.llama_supports_gpu_offload()), reason="llama.cpp here is a GPU build")
def test_this_cpu_build_is_shown_with_the_reason(qtbot: QtBot, data_home: DataHome) -> None:
    context = AppContext.open(data_home)
    dialog = SettingsDialog(
        context.tokens, "http://127.0.0.1:9", settings=context.settings, save_settings=context.save_settings
    )
    qtbot.addWidget(dialog)
    assert dialog.backend_label.text() == "CPU"  # llama.cpp's real report on this machine
    assert dialog.gpu_label.text() == "None: this build of llama.cpp has no GPU support"
    assert "Models run on the CPU (this build of llama.cpp has no GPU support)" in dialog.gpu_note.text()
    assert dialog.gpu_layers() is None and not dialog.gpu_count.isEnabled()
    context.close()


def test_gpu_layers_choice_is_saved_and_announced(qtbot: QtBot, data_home: DataHome) -> None:
    context = AppContext.open(data_home)
    gpu = GpuDevice("CUDA", "CUDA0", "Test GPU", 80 * GIB, 20 * GIB, False)
    dialog = SettingsDialog(
        context.tokens,
        "http://127.0.0.1:9",
        settings=context.settings,
        save_settings=context.save_settings,
        backend=BackendReport(True, ("CUDA", "CPU"), (gpu,)),
    )
    qtbot.addWidget(dialog)
    assert dialog.backend_label.text() == "CUDA"
    assert dialog.gpu_label.text() == "Test GPU (20.0 GiB free of 80.0 GiB)"

    def saved() -> object:
        return json.loads(data_home.settings_file.read_text(encoding="utf-8"))["gpu_layers"]

    with qtbot.waitSignal(dialog.gpu_layers_changed, check_params_cb=lambda v: v == 0):
        dialog.gpu_mode.setCurrentIndex(1)  # CPU only
    assert context.settings.gpu_layers == 0 and saved() == 0
    dialog.gpu_mode.setCurrentIndex(2)
    assert dialog.gpu_count.isEnabled()
    with qtbot.waitSignal(dialog.gpu_layers_changed, check_params_cb=lambda v: v == 12):
        dialog.gpu_count.setValue(12)
    assert saved() == 12 and Settings.load(data_home.settings_file).gpu_layers == 12
    dialog.gpu_mode.setCurrentIndex(0)
    assert saved() is None and not dialog.gpu_count.isEnabled()
    context.close()


def test_settings_without_the_field_load_as_auto(data_home: DataHome) -> None:
    data_home.settings_file.write_text(json.dumps({"context_length": 2048}), encoding="utf-8")
    loaded = Settings.load(data_home.settings_file)
    assert loaded.gpu_layers is None and loaded.context_length == 2048


def test_settings_say_plainly_when_the_keyring_would_store_plaintext(
    qtbot: QtBot, data_home: DataHome, tmp_path: Path
) -> None:
    plaintext = PlaintextKeyring()
    plaintext.file_path = str(tmp_path / "plain.cfg")  # type: ignore[misc]
    previous = keyring.get_keyring()
    keyring.set_keyring(plaintext)
    try:
        context = AppContext.open(data_home)
        dialog = SettingsDialog(
            context.tokens,
            "http://127.0.0.1:9",
            settings=context.settings,
            save_settings=context.save_settings,
        )
        qtbot.addWidget(dialog)
        assert not dialog.save_button.isEnabled()
        assert "No secure keyring" in dialog.token_state.text()
        dialog.token_edit.setText("hf_secret_should_not_land_anywhere")
        dialog._save_token()
        assert not (tmp_path / "plain.cfg").exists()
        context.close()
    finally:
        keyring.set_keyring(previous)

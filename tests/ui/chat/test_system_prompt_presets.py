"""System prompt presets: pick a built-in one, save your own for other chats, delete it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.chat.presets import BUILT_IN_PRESETS, all_presets, delete_preset, save_preset
from app.core.errors import PresetNameError
from app.core.settings import Settings
from ui.chat.system_prompt_dialog import SystemPromptDialog


def test_saved_presets_survive_a_restart(tmp_path: Path) -> None:
    settings = Settings()
    assert save_preset(settings, "  Pirate   voice ", "Talk like a pirate.") == "Pirate voice"
    settings.save(tmp_path / "settings.json")
    reloaded = Settings.load(tmp_path / "settings.json")
    assert all_presets(reloaded)["Pirate voice"] == "Talk like a pirate."
    assert list(all_presets(reloaded))[: len(BUILT_IN_PRESETS)] == list(BUILT_IN_PRESETS)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("", "x", "needs a name"),
        ("Concise", "x", "built-in"),
        ("Mine", "  ", "empty"),
        ("n" * 61, "x", "at most"),
    ],
)
def test_bad_preset_names_are_refused_with_a_reason(name: str, text: str, problem: str) -> None:
    settings = Settings()
    with pytest.raises(PresetNameError, match=problem):
        save_preset(settings, name, text)
    assert settings.system_prompt_presets == {}
    with pytest.raises(PresetNameError, match="built in"):
        delete_preset(settings, "Concise")


def test_dialog_picks_saves_and_deletes_presets(qtbot: QtBot) -> None:
    settings = Settings()
    dialog = SystemPromptDialog("", settings)
    qtbot.addWidget(dialog)
    changes: list[None] = []
    dialog.presets_changed.connect(lambda: changes.append(None))

    row = dialog.preset_box.findText("Coding helper")
    dialog.preset_box.activated.emit(row)
    assert dialog.text() == BUILT_IN_PRESETS["Coding helper"]
    assert not dialog.delete_preset_button.isEnabled()  # built in

    dialog.editor.setPlainText("Answer in French.")
    assert dialog.preset_box.currentText() == "(custom)"
    assert dialog.save_preset_button.isEnabled()
    assert not dialog.save_as_preset("Concise")
    assert dialog.error_label.isVisibleTo(dialog) and "built-in" in dialog.error_label.text()
    assert dialog.save_as_preset("French")
    assert settings.system_prompt_presets == {"French": "Answer in French."}
    assert dialog.preset_box.currentText() == "French"
    assert dialog.delete_preset_button.isEnabled()

    dialog.delete_current_preset()
    assert settings.system_prompt_presets == {}
    assert dialog.preset_box.currentText() == "(custom)"
    assert dialog.text() == "Answer in French."  # deleting the preset keeps the chat's text
    assert len(changes) == 2

"""A chat's system prompt, with named presets to start from and to save for other chats."""

from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.chat.presets import all_presets, delete_preset, is_built_in, save_preset
from app.core.errors import PresetNameError
from app.core.settings import Settings

_CUSTOM = "(custom)"


class SystemPromptDialog(QDialog):
    """Signals:
    presets_changed(): the user saved or deleted a preset (the settings need saving).
    """

    presets_changed = Signal()

    def __init__(self, text: str, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self.setWindowTitle("System prompt for this chat")
        self.resize(560, 360)
        self.preset_box = QComboBox()
        self.preset_box.setToolTip("Start from a saved system prompt")
        self.save_preset_button = QPushButton("Save as preset…")
        self.delete_preset_button = QPushButton("Delete preset")
        self.editor = QPlainTextEdit(text)
        self.editor.setPlaceholderText("e.g. You are a patient tutor who explains step by step.")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        presets_row = QHBoxLayout()
        presets_row.addWidget(QLabel("Preset:"))
        presets_row.addWidget(self.preset_box, 1)
        presets_row.addWidget(self.save_preset_button)
        presets_row.addWidget(self.delete_preset_button)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel("Instructions the model follows in this chat (kept even when old messages no longer fit):")
        )
        layout.addLayout(presets_row)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

        self._fill_presets()
        self.preset_box.activated.connect(self._on_preset_chosen)
        self.editor.textChanged.connect(self._sync_preset_box)
        self.save_preset_button.clicked.connect(self._ask_preset_name)
        self.delete_preset_button.clicked.connect(self.delete_current_preset)

    def text(self) -> str:
        return self.editor.toPlainText().strip()

    def save_as_preset(self, name: str) -> bool:
        try:
            saved = save_preset(self._settings, name, self.text())
        except PresetNameError as exc:
            self._show_error(str(exc))
            return False
        self._fill_presets()
        self.preset_box.setCurrentText(saved)
        self.presets_changed.emit()
        return True

    @Slot()
    def delete_current_preset(self) -> None:
        name = self.preset_box.currentText()
        if name == _CUSTOM or is_built_in(name):
            return
        delete_preset(self._settings, name)
        self._fill_presets()
        self.presets_changed.emit()

    @Slot(int)
    def _on_preset_chosen(self, row: int) -> None:
        name = self.preset_box.itemText(row)
        if name != _CUSTOM:
            self.editor.setPlainText(all_presets(self._settings)[name])

    @Slot()
    def _ask_preset_name(self) -> None:
        name, accepted = QInputDialog.getText(self, "Save preset", "Name for this system prompt:")
        if accepted:
            self.save_as_preset(name)

    def _fill_presets(self) -> None:
        self.preset_box.blockSignals(True)
        self.preset_box.clear()
        self.preset_box.addItem(_CUSTOM)
        self.preset_box.addItems(list(all_presets(self._settings)))
        self.preset_box.blockSignals(False)
        self._sync_preset_box()

    @Slot()
    def _sync_preset_box(self) -> None:
        """Show which preset the text is, if it is one, and what can be done with it."""
        self._hide_error()
        text = self.text()
        match = next((n for n, t in all_presets(self._settings).items() if t == text), _CUSTOM)
        self.preset_box.setCurrentText(match)
        self.delete_preset_button.setEnabled(match != _CUSTOM and not is_built_in(match))
        self.save_preset_button.setEnabled(bool(text) and match == _CUSTOM)

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _hide_error(self) -> None:
        self.error_label.hide()

"""One chat's generation settings: sampling (temperature, top-p, top-k, min-p, repeat penalty, max
tokens, seed) and the context length."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.engine.generation import GenerationParams

_RANDOM_SEED = -1  # the spin box's "random" entry


class SamplingDialog(QDialog):
    def __init__(
        self,
        params: GenerationParams,
        parent: QWidget | None = None,
        *,
        default_context: int = 4096,
        max_context: int = 131072,
    ) -> None:
        """`default_context` is the app's setting (used when the chat sets none); `max_context` the
        longest the loaded model was trained for."""
        super().__init__(parent)
        self.setWindowTitle("Settings for this chat")
        self.temperature = _double(0.0, 2.0, 0.05, params.temperature)
        self.top_p = _double(0.0, 1.0, 0.01, params.top_p)
        self.top_k = _int(0, 500, params.top_k)
        self.min_p = _double(0.0, 1.0, 0.01, params.min_p)
        self.repeat_penalty = _double(1.0, 2.0, 0.01, params.repeat_penalty)
        self.max_tokens = _int(1, 32768, params.max_tokens)
        self.seed = _int(_RANDOM_SEED, 2**31 - 1, _RANDOM_SEED if params.seed is None else params.seed)
        self.seed.setSpecialValueText("random")
        self.top_k.setSpecialValueText("off")
        self._default_context = default_context
        self.context_length = _int(0, max(max_context, 256), params.context_length or 0)
        self.context_length.setSingleStep(1024)
        self.context_length.setSpecialValueText(f"app setting ({min(default_context, max_context):,})")
        self.context_length.setToolTip(
            "How many tokens of the chat the model can see at once. Longer needs more memory;"
            f" the model was trained for up to {max_context:,}."
        )
        form = QFormLayout()
        form.addRow("Temperature (0 = always the likeliest word)", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Min-p", self.min_p)
        form.addRow("Repeat penalty (1 = off)", self.repeat_penalty)
        form.addRow("Longest reply (tokens)", self.max_tokens)
        form.addRow("Seed (for repeatable replies)", self.seed)
        form.addRow("Context length (tokens)", self.context_length)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.clicked.connect(lambda: self._show(GenerationParams()))
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("These settings apply to this chat only."))
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _show(self, params: GenerationParams) -> None:
        self.temperature.setValue(params.temperature)
        self.top_p.setValue(params.top_p)
        self.top_k.setValue(params.top_k)
        self.min_p.setValue(params.min_p)
        self.repeat_penalty.setValue(params.repeat_penalty)
        self.max_tokens.setValue(params.max_tokens)
        self.seed.setValue(_RANDOM_SEED if params.seed is None else params.seed)
        self.context_length.setValue(params.context_length or 0)

    def params(self) -> GenerationParams:
        seed = self.seed.value()
        return GenerationParams(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(),
            max_tokens=self.max_tokens.value(),
            seed=None if seed == _RANDOM_SEED else seed,
            context_length=self.context_length.value() or None,
        )


def _double(low: float, high: float, step: float, value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    return box


def _int(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box

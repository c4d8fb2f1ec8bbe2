"""Settings: the Hugging Face token (stored in the OS keyring) and a check of access to a repo;
the backend llama.cpp runs on, its GPUs, and how many model layers go to the GPU."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import InsecureKeyringError, LlamaDeskError
from app.core.settings import Settings
from app.downloads.hub import HubAccess
from app.downloads.secrets import TokenStore, backend_problem
from app.engine.backends import BackendReport, detect_backend

_ACCESS_TEXT = {
    HubAccess.GRANTED: "This token can download from {repo}.",
    HubAccess.NO_TOKEN: "{repo} is gated: save a Hugging Face token first.",
    HubAccess.NOT_ACCEPTED: (
        "Your account has no access to {repo} yet: accept its license on its page, then check again."
    ),
    HubAccess.PENDING: "You asked for access to {repo}; the authors have not approved it. Check again later.",
}


#: The GPU layers choices, in the combo box's order; "layers" enables the number next to it.
_GPU_AUTO, _GPU_CPU_ONLY, _GPU_LAYERS = range(3)
_MAX_GPU_LAYERS = 999


class SettingsDialog(QDialog):
    """Signals:
    access_check_requested(str): check the stored token against this repo (answered by `show_access`).
    gpu_layers_changed(object): the GPU layers setting is now this (None: auto, 0: CPU only, N);
        it is saved already and applies to models loaded from now on.
    """

    access_check_requested = Signal(str)
    gpu_layers_changed = Signal(object)

    def __init__(
        self,
        tokens: TokenStore,
        hub_endpoint: str,
        parent: QWidget | None = None,
        *,
        settings: Settings | None = None,
        save_settings: Callable[[], None] | None = None,
        backend: BackendReport | None = None,
    ) -> None:
        """`settings` and `save_settings` (the app context's) make the GPU layers choice editable."""
        super().__init__(parent)
        self._tokens = tokens
        self._endpoint = hub_endpoint
        self._settings = settings
        self._save_settings = save_settings
        self.backend = backend or detect_backend()
        self.setWindowTitle("Settings — Llama Desk")
        self.resize(620, 360)
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("hf_… (kept in your system keyring, never in a file)")
        self.save_button = QPushButton("Save token")
        self.remove_button = QPushButton("Remove token")
        self.token_state = QLabel()
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(self.save_button)
        token_row.addWidget(self.remove_button)

        self.repo_edit = QLineEdit("meta-llama/Llama-3.2-1B-Instruct")
        self.check_button = QPushButton("Check access")
        self.open_page_button = QPushButton("Open repo page")
        self.access_label = QLabel()
        self.access_label.setWordWrap(True)
        self.access_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        check_row = QHBoxLayout()
        check_row.addWidget(self.repo_edit, 1)
        check_row.addWidget(self.check_button)
        check_row.addWidget(self.open_page_button)

        form = QFormLayout()
        form.addRow("Hugging Face token", token_row)
        form.addRow("", self.token_state)
        form.addRow("Gated repo", check_row)
        form.addRow("", self.access_label)
        self._build_backend_rows(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        layout.addWidget(buttons)

        self.save_button.clicked.connect(self._save_token)
        self.remove_button.clicked.connect(self._remove_token)
        self.check_button.clicked.connect(
            lambda: self.access_check_requested.emit(self.repo_edit.text().strip())
        )
        self.open_page_button.clicked.connect(self._open_repo_page)
        self._show_token_state()

    def _build_backend_rows(self, form: QFormLayout) -> None:
        self.backend_label = QLabel(self.backend.name)
        gpus = self.backend.gpus
        why_cpu = self.backend.why_cpu
        self.gpu_label = QLabel("\n".join(gpu.label for gpu in gpus) if gpus else f"None: {why_cpu}")
        self.gpu_label.setWordWrap(True)
        self.gpu_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.gpu_mode = QComboBox()
        self.gpu_mode.addItems(["Auto (as many as fit in free VRAM)", "CPU only", "This many layers:"])
        self.gpu_count = QSpinBox()
        self.gpu_count.setRange(1, _MAX_GPU_LAYERS)
        self.gpu_note = QLabel()
        self.gpu_note.setWordWrap(True)
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_count)
        form.addRow("Backend", self.backend_label)
        form.addRow("GPU" if len(gpus) <= 1 else "GPUs", self.gpu_label)
        form.addRow("GPU layers", gpu_row)
        form.addRow("", self.gpu_note)
        chosen = self._settings.gpu_layers if self._settings else None
        self.gpu_mode.setCurrentIndex(
            _GPU_AUTO if chosen is None else _GPU_CPU_ONLY if chosen == 0 else _GPU_LAYERS
        )
        self.gpu_count.setValue(chosen if chosen else 32)
        editable = self._settings is not None and self._save_settings is not None
        self.gpu_mode.setEnabled(editable)
        if why_cpu is not None:
            self.gpu_note.setText(
                f"Models run on the CPU ({why_cpu}). The setting applies when a GPU build of "
                "llama.cpp runs on a machine with a GPU (see README, Installers and GPU backends)."
            )
        else:
            self.gpu_note.setText("Applies to models loaded from now on; fewer layers leave VRAM free.")
        self._show_gpu_count()
        self.gpu_mode.currentIndexChanged.connect(self._on_gpu_setting_edited)
        self.gpu_count.valueChanged.connect(self._on_gpu_setting_edited)

    def gpu_layers(self) -> int | None:
        """The GPU layers choice shown: None for auto, 0 for CPU only, else a layer count."""
        mode = self.gpu_mode.currentIndex()
        return None if mode == _GPU_AUTO else 0 if mode == _GPU_CPU_ONLY else self.gpu_count.value()

    def _show_gpu_count(self) -> None:
        self.gpu_count.setEnabled(self.gpu_mode.isEnabled() and self.gpu_mode.currentIndex() == _GPU_LAYERS)

    @Slot()
    def _on_gpu_setting_edited(self) -> None:
        self._show_gpu_count()
        if self._settings is None or self._save_settings is None:
            return
        value = self.gpu_layers()
        if value == self._settings.gpu_layers:
            return
        self._settings.gpu_layers = value
        self._save_settings()
        self.gpu_layers_changed.emit(value)

    def _show_token_state(self, problem: str | None = None) -> None:
        insecure = backend_problem()
        has_token = self._tokens.get() is not None
        if problem is not None:
            text = problem
        elif self._tokens.from_environment:
            text = "Using the token in HF_TOKEN for this run (nothing is stored)."
        elif insecure is not None:
            text = str(InsecureKeyringError(insecure))
        else:
            text = "A token is saved in the system keyring." if has_token else "No token saved."
        self.token_state.setText(text)
        self.token_state.setWordWrap(True)
        self.save_button.setEnabled(insecure is None)
        self.remove_button.setEnabled(has_token and not self._tokens.from_environment and insecure is None)

    @Slot()
    def _save_token(self) -> None:
        token = self.token_edit.text().strip()
        problem = None
        if token:
            try:
                self._tokens.set(token)
            except LlamaDeskError as exc:
                problem = str(exc)
            self.token_edit.clear()  # the widget does not keep it
        self._show_token_state(problem)

    @Slot()
    def _remove_token(self) -> None:
        try:
            self._tokens.delete()
        except LlamaDeskError as exc:
            self._show_token_state(str(exc))
            return
        self._show_token_state()

    def _open_repo_page(self) -> None:
        QDesktopServices.openUrl(QUrl(f"{self._endpoint}/{self.repo_edit.text().strip()}"))

    def show_access(self, repo_id: str, access: HubAccess) -> None:
        self.access_label.setText(_ACCESS_TEXT[access].format(repo=repo_id))

    def show_problem(self, message: str) -> None:
        self.access_label.setText(message)

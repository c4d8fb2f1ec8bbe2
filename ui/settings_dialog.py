"""Settings: the Hugging Face token (stored in the OS keyring) and a check of access to a repo."""

from __future__ import annotations

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.hub import HubAccess
from app.secrets import TokenStore

_ACCESS_TEXT = {
    HubAccess.GRANTED: "This token can download from {repo}.",
    HubAccess.NO_TOKEN: "{repo} is gated: save a Hugging Face token first.",
    HubAccess.NOT_ACCEPTED: (
        "Your account has no access to {repo} yet: accept its license on its page, then check again."
    ),
    HubAccess.PENDING: "You asked for access to {repo}; the authors have not approved it. Check again later.",
}


class SettingsDialog(QDialog):
    """Signals:
    access_check_requested(str): check the stored token against this repo (answered by `show_access`).
    """

    access_check_requested = Signal(str)

    def __init__(self, tokens: TokenStore, hub_endpoint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tokens = tokens
        self._endpoint = hub_endpoint
        self.setWindowTitle("Settings — Llama Desk")
        self.resize(620, 260)
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

    def _show_token_state(self) -> None:
        has_token = self._tokens.get() is not None
        self.token_state.setText(
            "A token is saved in the system keyring." if has_token else "No token saved."
        )
        self.remove_button.setEnabled(has_token)

    @Slot()
    def _save_token(self) -> None:
        token = self.token_edit.text().strip()
        if token:
            self._tokens.set(token)
            self.token_edit.clear()  # the widget does not keep it
        self._show_token_state()

    @Slot()
    def _remove_token(self) -> None:
        self._tokens.delete()
        self._show_token_state()

    def _open_repo_page(self) -> None:
        QDesktopServices.openUrl(QUrl(f"{self._endpoint}/{self.repo_edit.text().strip()}"))

    def show_access(self, repo_id: str, access: HubAccess) -> None:
        self.access_label.setText(_ACCESS_TEXT[access].format(repo=repo_id))

    def show_problem(self, message: str) -> None:
        self.access_label.setText(message)

"""Shows a model license in full; the download starts only after an explicit acceptance."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from app.downloads.licenses import License


class LicenseDialog(QDialog):
    def __init__(self, license: License, model_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(license.title)
        self.resize(720, 640)
        intro = QLabel(
            f"<b>{model_name}</b> is distributed under the <b>{license.title}</b> "
            f"(version of {license.version}). Read it, then accept it to download. Declining: no download."
        )
        intro.setWordWrap(True)
        self.text_view = QTextBrowser()
        self.text_view.setOpenExternalLinks(True)
        text = license.text()
        if license.file.endswith(".md"):
            self.text_view.setMarkdown(text)
        else:
            self.text_view.setPlainText(text)
        self.agree_box = QCheckBox("I have read the license and I accept its terms")
        self.buttons = QDialogButtonBox()
        self.accept_button = self.buttons.addButton(
            "Accept and download", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.buttons.addButton("Decline", QDialogButtonBox.ButtonRole.RejectRole)
        self.accept_button.setEnabled(False)
        self.agree_box.toggled.connect(self.accept_button.setEnabled)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.text_view, 1)
        layout.addWidget(self.agree_box)
        layout.addWidget(self.buttons)

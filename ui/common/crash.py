"""A bug says so: an exception nothing caught is logged with its traceback and shown in a dialog.

Without this, an exception that escapes a slot is only printed to a terminal nobody watches. The
hook may run on any thread; the dialog is always shown on the GUI thread, once per burst of errors.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QMessageBox

log = logging.getLogger("ui")


class CrashReporter(QObject):
    """Signals: crashed(str): an uncaught exception, summarised, for the dialog."""

    crashed = Signal(str)

    def __init__(self, log_folder: Path) -> None:
        super().__init__()
        self._log_folder = log_folder
        self.dialog: QMessageBox | None = None
        self.crashed.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        sys.excepthook = self.report
        threading.excepthook = lambda args: self.report(args.exc_type, args.exc_value, args.exc_traceback)

    def report(
        self, kind: type[BaseException], value: BaseException | None, tb: TracebackType | None
    ) -> None:
        log.critical("uncaught exception", exc_info=(kind, value or kind(), tb))
        sys.__excepthook__(kind, value or kind(), tb)  # and on the terminal, for developers
        self.crashed.emit(f"{kind.__name__}: {value}")

    @Slot(str)
    def _show(self, summary: str) -> None:
        if self.dialog is not None and self.dialog.isVisible():
            return  # one dialog for a burst of errors
        self.dialog = QMessageBox(
            QMessageBox.Icon.Critical,
            "Llama Desk hit a bug",
            "Something went wrong that Llama Desk did not expect. Your chats and models are safe, and "
            "you can go on using the app; if something looks stuck, close that window and open it again.",
        )
        self.dialog.setInformativeText(summary[:500])
        self.dialog.setDetailedText(f"The full report is in the log file in {self._log_folder}.")
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.open()

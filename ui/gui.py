"""Start the Qt application: build the app context, open a chat window, run the event loop."""

from __future__ import annotations

import logging
import sys
from contextlib import closing
from pathlib import Path

from PySide6.QtCore import QObject, QPoint, QTimer, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from app.chat.store import ChatStore
from app.context import AppContext
from app.core.data_home import DataHome
from app.core.logs import configure_logging
from app.core.resources import RESOURCES_DIR
from ui.chat.window import ChatWindow
from ui.common.crash import CrashReporter
from ui.common.theme import apply_theme
from ui.services import AppServices

log = logging.getLogger("ui")

ICON_PATH = RESOURCES_DIR / "icons" / "llama-desk.svg"


def create_application() -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("Llama Desk")
    app.setOrganizationName("Llama Desk")
    app.setDesktopFileName("llama-desk")
    if ICON_PATH.is_file():
        app.setWindowIcon(QIcon(str(ICON_PATH)))
    apply_theme(app)  # Fusion, light or dark as the OS is, and following it
    return app


def open_chat_window(services: AppServices, model_path: Path | None, *, new_chat: bool = False) -> ChatWindow:
    """The window for `model_path`, or for the library's default model when None."""
    context = services.context
    if model_path is not None:
        return ChatWindow(services, model_path, context.library_name_of(model_path), new_chat=new_chat)
    default = context.default_model()
    return ChatWindow(
        services, default.path if default else None, default.name if default else None, new_chat=new_chat
    )


def settings_message(problems: list[str]) -> str:
    return "Some settings in settings.json could not be used and were reset: " + " ".join(problems)


class ChatWindows(QObject):
    """The chat windows of this process. Each has its own context on its own worker thread; windows
    on the same file share its weights, and the memory check (app/engine/usage.py) sees them all."""

    def __init__(self, services: AppServices) -> None:
        super().__init__()
        self._services = services
        self._windows: list[ChatWindow] = []

    @property
    def windows(self) -> list[ChatWindow]:
        return list(self._windows)

    def open(self, model_path: Path | None = None) -> ChatWindow:
        # A second window starts on a chat of its own, not on the one the first window shows.
        window = open_chat_window(self._services, model_path, new_chat=bool(self._windows))
        window.new_window_requested.connect(self._open_next_to)
        window.closed.connect(lambda: self._forget(window))
        self._windows.append(window)
        window.show()
        return window

    @Slot()
    def _open_next_to(self) -> None:
        sender = self.sender()
        window = self.open()
        if isinstance(sender, ChatWindow):
            window.move(sender.pos() + QPoint(40, 40))

    def _forget(self, window: ChatWindow) -> None:
        # Later, not now: this runs inside the window's own close event.
        QTimer.singleShot(0, lambda: self._windows.remove(window) if window in self._windows else None)

    def shutdown_all(self) -> None:
        for window in list(self._windows):
            window.shutdown()
            window.close()


def run_gui(model_path: Path | None = None, *, verbose: bool = False) -> int:
    home = DataHome.resolve().ensure()
    configure_logging(home, verbose=verbose)
    app = create_application()
    crashes = CrashReporter(home.logs_dir)
    crashes.install()
    context = AppContext.open(home)
    with closing(ChatStore(home.chats_db)) as store:
        store.recover_interrupted()  # before any window starts a reply of its own
    services = AppServices(context)
    windows = open_first_window(services, model_path)
    status = app.exec()
    windows.shutdown_all()
    services.shutdown()
    context.close()
    return status


def open_first_window(services: AppServices, model_path: Path | None) -> ChatWindows:
    """The app's windows with the first one open, telling the user of any setting that was reset."""
    windows = ChatWindows(services)
    first = windows.open(model_path)
    problems = services.context.settings_problems
    if problems:
        first.show_error(settings_message(problems))
    return windows

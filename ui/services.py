"""What the whole application shares, owned once and passed to every window (no singletons).

One AppServices exists per running app (ui/gui.py builds it; tests build one per test). It holds the
Qt-free AppContext (library, download jobs, licenses, settings, the keyring token) and the one Model
manager window with its library, Hub and download workers: every chat window opens that same window,
so all of them see the same download queue, no two resume one partial file, and closing a chat
window leaves downloads running. Library changes reach every model picker through `library_changed`.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.context import AppContext
from ui.models.manager import ModelManagerWindow


class AppServices(QObject):
    """Signals:
    library_changed(): a model was added to or removed from the library (by any window).
    chat_requested(LibraryModel): the user asked, in the Model manager, to chat with this model.
    """

    library_changed = Signal()
    chat_requested = Signal(object)

    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.context = context
        self._model_manager: ModelManagerWindow | None = None
        #: The window that opened the Model manager last: its Chat button gives the model to that one.
        self.manager_opener: QObject | None = None

    def model_manager(self, opener: QObject | None = None) -> ModelManagerWindow:
        """The app's one Model manager window, made on first use."""
        if opener is not None:
            self.manager_opener = opener
        if self._model_manager is None:
            self._model_manager = ModelManagerWindow(self.context)
            self._model_manager.library_changed.connect(self.library_changed)
            self._model_manager.chat_requested.connect(self.chat_requested)
        return self._model_manager

    @property
    def has_model_manager(self) -> bool:
        return self._model_manager is not None

    def shutdown(self) -> None:
        """At quit: pause running downloads (they resume at the next start) and end every worker."""
        if self._model_manager is not None:
            self._model_manager.shutdown()
            self._model_manager.close()
            self._model_manager.deleteLater()
            self._model_manager = None

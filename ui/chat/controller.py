"""A chat window's state and commands, without widgets: which model it has (loading, loaded, failed),
which reply is streaming and its text so far, and the request ids that make late answers harmless.

The window turns user actions into calls here and shows what the signals say; the worker runs the
model on its own thread. UI -> controller -> worker -> app service -> signals -> UI.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.chat.reply import ReplyOutcome
from app.context import AppContext
from app.engine.generation import GenerationParams
from app.engine.session import ModelInfo
from ui.chat.worker import ChatWorker
from ui.common.workers import WorkerThread

#: How long closing waits for the worker to free its model: a token or a batch of the prompt at most.
WORKER_SHUTDOWN_TIMEOUT_MS = 30_000


class ChatController(QObject):
    """Signals (to the view; answers to replaced requests never reach them):
    load_started(): a model is being loaded.
    model_ready(ModelInfo): it is loaded.
    model_failed(str): it could not be loaded; why.
    load_needs_confirmation(str): it may not fit in memory; `load_anyway()` goes on.
    reply_started(int, int): conversation id and message id of the reply being written.
    prompt_progress(int, int): prompt tokens read and in all.
    text_arrived(str): more reply text (also in `streaming_text`).
    reply_finished(ReplyOutcome): the reply ended, complete or stopped, and is saved.
    reply_failed(str, int): why, and the conversation it was for.

    Commands to the worker (queued): load_requested(int, str, str, bool), reply_requested(int, int,
    GenerationParams), shutdown_requested().
    """

    load_started = Signal()
    model_ready = Signal(object)
    model_failed = Signal(str)
    load_needs_confirmation = Signal(str)
    reply_started = Signal(int, int)
    prompt_progress = Signal(int, int)
    text_arrived = Signal(str)
    reply_finished = Signal(object)
    reply_failed = Signal(str, int)

    load_requested = Signal(int, str, str, bool)
    reply_requested = Signal(int, int, object)
    shutdown_requested = Signal()

    def __init__(self, context: AppContext, model_path: Path | None, model_name: str | None) -> None:
        super().__init__()
        self._context = context
        self.model_path = model_path
        self.model_name = model_name
        self.model_info: ModelInfo | None = None
        self.streaming_conversation: int | None = None
        self.streaming_message: int | None = None
        self._streaming_text: list[str] = []
        self._closed = False
        self._requests = itertools.count(1)
        self.load_request = 0  # the latest load asked for; answers to older ones are ignored
        self.reply_request = 0
        self._loaded_path: Path | None = None  # counted in the library's usage while loaded
        self._worker = ChatWorker(
            context.home.chats_db, context.home.chat_cache_dir, context.settings, context.library.usage
        )
        self.load_requested.connect(self._worker.load_model)
        self.reply_requested.connect(self._worker.generate_reply)
        self.shutdown_requested.connect(self._worker.shutdown)
        self._worker.model_loaded.connect(self._on_model_loaded)
        self._worker.model_load_failed.connect(self._on_model_load_failed)
        self._worker.model_load_needs_confirmation.connect(self._on_model_load_needs_confirmation)
        self._worker.reply_started.connect(self._on_reply_started)
        self._worker.prompt_progress.connect(self._on_prompt_progress)
        self._worker.text_received.connect(self._on_text_received)
        self._worker.reply_finished.connect(self._on_reply_finished)
        self._worker.reply_failed.connect(self._on_reply_failed)
        self._thread = WorkerThread(self, self._worker, "chat-worker")

    # -- state ------------------------------------------------------------------------------------

    @property
    def is_generating(self) -> bool:
        return self.streaming_message is not None or self.streaming_conversation is not None

    @property
    def is_loading(self) -> bool:
        return self._loaded_path is not None and self.model_info is None

    @property
    def streaming_text(self) -> str:
        """The streaming reply's text as far as it has arrived (ahead of its last save)."""
        return "".join(self._streaming_text)

    @property
    def worker_thread(self) -> QThread:
        return self._thread.thread

    def is_current_model(self, path: Path) -> bool:
        return self.model_path is not None and path == self.model_path.resolve()

    # -- commands ---------------------------------------------------------------------------------

    def load(self, model_path: Path | None = None, model_name: str | None = None) -> bool:
        """Load `model_path` (or the current one again); False when there is no model to load."""
        if model_path is not None:
            self.release_model()
            self.model_path, self.model_name = model_path, model_name
        if self.model_path is None:
            return False
        # Counted as in use from the request on, so the file cannot be deleted while it loads.
        self._loaded_path = self.model_path.resolve()
        self._context.library.usage.acquire(self._loaded_path)
        self._request_load(confirmed=False)
        return True

    def load_anyway(self) -> bool:
        """The user read the memory warning and wants the model loaded regardless."""
        if self.model_path is None or self._loaded_path is None:
            return False
        self._request_load(confirmed=True)
        return True

    def _request_load(self, confirmed: bool) -> None:
        assert self.model_path is not None
        self.load_request = next(self._requests)
        self.load_started.emit()
        self.load_requested.emit(self.load_request, str(self.model_path), self.model_name or "", confirmed)

    def request_reply(self, conversation_id: int, params: GenerationParams) -> None:
        """Ask the worker for the next reply at the end of the chat's active branch."""
        self.streaming_conversation = conversation_id
        self._streaming_text = []
        self._worker.expect_request()  # armed here, so a Stop pressed before the worker starts counts
        self.reply_request = next(self._requests)
        self.reply_requested.emit(self.reply_request, conversation_id, params)

    def stop(self) -> None:
        """Stop the reply before its next token (a thread-safe flag: the worker is busy)."""
        self._worker.request_stop()

    def release_model(self) -> None:
        self.model_info = None
        if self._loaded_path is not None:
            self._context.library.usage.release(self._loaded_path)
            self._loaded_path = None

    def shutdown(self) -> None:
        """Stop any reply, free the model on its own thread and wait (bounded) for the thread to end."""
        if self._closed:
            return
        self._closed = True
        self._worker.request_stop()
        self.shutdown_requested.emit()
        self._thread.wait(WORKER_SHUTDOWN_TIMEOUT_MS)
        self.release_model()

    # -- worker answers ---------------------------------------------------------------------------

    def _answers_load(self, request_id: int) -> bool:
        return not self._closed and request_id == self.load_request

    def _answers_reply(self, request_id: int) -> bool:
        return not self._closed and request_id == self.reply_request

    @Slot(int, object)
    def _on_model_loaded(self, request_id: int, info: ModelInfo) -> None:
        if self._answers_load(request_id):
            self.model_info = info
            self.model_ready.emit(info)

    @Slot(int, str)
    def _on_model_load_needs_confirmation(self, request_id: int, message: str) -> None:
        if self._answers_load(request_id):
            self.load_needs_confirmation.emit(message)

    @Slot(int, str)
    def _on_model_load_failed(self, request_id: int, message: str) -> None:
        if self._answers_load(request_id):
            self.release_model()
            self.model_failed.emit(message)

    @Slot(int, int, int)
    def _on_reply_started(self, request_id: int, conversation_id: int, message_id: int) -> None:
        if self._answers_reply(request_id):
            self.streaming_message = message_id
            self.reply_started.emit(conversation_id, message_id)

    @Slot(int, int, int)
    def _on_prompt_progress(self, request_id: int, done: int, total: int) -> None:
        if self._answers_reply(request_id):
            self.prompt_progress.emit(done, total)

    @Slot(int, str)
    def _on_text_received(self, request_id: int, text: str) -> None:
        if self._answers_reply(request_id):
            self._streaming_text.append(text)
            self.text_arrived.emit(text)

    @Slot(int, object)
    def _on_reply_finished(self, request_id: int, outcome: ReplyOutcome) -> None:
        if self._answers_reply(request_id):
            self._end_streaming()
            self.reply_finished.emit(outcome)

    @Slot(int, str)
    def _on_reply_failed(self, request_id: int, message: str) -> None:
        if self._answers_reply(request_id):
            conversation_id = self.streaming_conversation
            self._end_streaming()
            self.reply_failed.emit(message, -1 if conversation_id is None else conversation_id)

    def _end_streaming(self) -> None:
        self.streaming_conversation = None
        self.streaming_message = None
        self._streaming_text = []

"""The QObject that owns a chat's llama.cpp session on its own QThread.

Commands arrive as queued slot calls; results leave as signals, each with the id of the request it
answers, so a window ignores a late answer to a request it has since replaced (a failed load of
model A must not clear model B's state). Every slot ends with a result or a failure signal, whatever
it raises. Stopping is a thread-safe flag (`request_stop`) checked by the engine before every token,
since the worker's event loop is busy while it generates. Settings (context length, threads, GPU
layers) are read at each load, so a change applies to the next load.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.chat.reply import write_reply
from app.chat.saved_state import ChatStateCache
from app.chat.store import ChatStore
from app.core.settings import Settings
from app.engine.fit import estimate_memory
from app.engine.generation import GenerationParams
from app.engine.hardware import probe_hardware
from app.engine.session import ModelSession
from app.engine.usage import LoadedModel, ModelUsage, memory_warning
from app.gguf.report import inspect_model
from ui.common.workers import reports_failure

log = logging.getLogger("ui.worker")

#: Reply text is handed to the GUI at most this often, so a fast model cannot flood its event loop.
#: At 10 Hz a model slower than 10 tokens/s (an 8B on a laptop CPU) still shows every token as it
#: comes; at 20 Hz the GUI's layout and paint work cost the starter model 5 % of its decode speed on
#: 2 cores (bench.chat: 0.95 of raw llama_decode against 0.98 at 10 Hz).
TEXT_BATCH_INTERVAL_S = 0.1


class ChatWorker(QObject):
    """Loads one model and writes replies into the chats database.

    Signals (the first int of each is the id of the request answered):
        model_loaded(int, ModelInfo): the model is ready to chat.
        model_load_failed(int, str): why loading failed, for the user.
        model_load_needs_confirmation(int, str): the model would not fit in RAM beside the other open
            chats' models; the message says so. Nothing was loaded; ask again with `confirmed`.
        reply_started(int, int, int): conversation id and the id of the reply's message row.
        prompt_progress(int, int, int): prompt tokens read so far and in all, while a long chat is read.
        text_received(int, str): new reply text, batched.
        reply_finished(int, ReplyOutcome): the reply ended (complete or stopped) and is saved.
        reply_failed(int, str): generation failed; the partial reply is saved as failed.
    """

    model_loaded = Signal(int, object)
    model_load_failed = Signal(int, str)
    model_load_needs_confirmation = Signal(int, str)
    reply_started = Signal(int, int, int)
    prompt_progress = Signal(int, int, int)
    text_received = Signal(int, str)
    reply_finished = Signal(int, object)
    reply_failed = Signal(int, str)

    def __init__(
        self,
        chats_db: Path,
        chat_cache_dir: Path,
        settings: Settings,
        usage: ModelUsage,
        text_interval_s: float = TEXT_BATCH_INTERVAL_S,
    ) -> None:
        """`settings`: the app's, read at each load. `text_interval_s`: how often text is handed over."""
        super().__init__()
        self._usage = usage
        self._settings = settings
        self._chats_db = chats_db
        self._chat_states = ChatStateCache(chat_cache_dir)
        self._text_interval_s = text_interval_s
        self._reply_request = 0
        self._session: ModelSession | None = None
        self._store: ChatStore | None = None
        self._cancel = threading.Event()
        self._pending: list[str] = []
        self._last_emit = 0.0

    def request_stop(self) -> None:
        """Stop the current reply before its next token. Safe to call from any thread."""
        self._cancel.set()

    def expect_request(self) -> None:
        """Forget an old Stop. Called by the GUI thread just before it asks for a reply, so that a
        Stop pressed before the worker picks the request up still counts."""
        self._cancel.clear()

    @Slot(int, str, str, bool)
    @reports_failure("model_load_failed", "loading the model", leading_args=1)
    def load_model(self, request_id: int, path: str, name: str, confirmed: bool = False) -> None:
        """Load the model at `path`; `name` is its library name ("" for none).

        Unless `confirmed`, first check that it fits in RAM beside the models of the other open
        chats, and ask (`model_load_needs_confirmation`) when it does not.
        """
        self._close_session()
        settings = self._settings
        report = inspect_model(Path(path))
        needs = LoadedModel.estimate(Path(path), estimate_memory(report, settings.context_length))
        if not confirmed:
            others = self._usage.loaded_by_others(id(self))
            warning = memory_warning(needs, others, probe_hardware().ram_total)
            if warning is not None:
                log.info("asking before loading %s: %s", path, warning)
                self.model_load_needs_confirmation.emit(request_id, warning)
                return
        self._session = ModelSession(
            Path(path),
            name=name or None,
            n_ctx=settings.context_length,
            n_threads=settings.threads,
            n_gpu_layers=settings.gpu_layers,
            report=report,
            weights=self._usage.weights,
        )
        self._usage.record_loaded(id(self), needs)
        self.model_loaded.emit(request_id, self._session.info)

    @Slot(int, int, object)
    @reports_failure("reply_failed", "writing the reply", leading_args=1)
    def generate_reply(self, request_id: int, conversation_id: int, params: GenerationParams) -> None:
        if self._session is None:
            self.reply_failed.emit(request_id, "No model is loaded.")
            return
        if self._store is None:
            self._store = ChatStore(self._chats_db)  # created here: connections belong to their thread
        self._pending.clear()
        self._reply_request = request_id
        try:
            self._apply_context_length(self._session, params.context_length or self._settings.context_length)
            self._chat_states.prepare(self._session, conversation_id)
            outcome = write_reply(
                self._store,
                self._session,
                conversation_id,
                params,
                on_started=lambda message_id: self.reply_started.emit(
                    request_id, conversation_id, message_id
                ),
                on_text=self._queue_text,
                cancel=self._cancel,
                on_prompt_progress=lambda done, total: self.prompt_progress.emit(request_id, done, total),
            )
        finally:
            self._flush_text()  # what streamed before a failure still reaches the window
        self.reply_finished.emit(request_id, outcome)

    @Slot()
    def shutdown(self) -> None:
        """Free the model and the database connection in this thread, then end the thread."""
        self._close_session()
        if self._store is not None:
            self._store.close()
            self._store = None
        thread = QThread.currentThread()
        thread.quit()

    def _apply_context_length(self, session: ModelSession, n_ctx: int) -> None:
        """Give the session the chat's context size; the cache it holds is saved first."""
        if min(n_ctx, session.info.n_ctx_train or n_ctx) != session.info.n_ctx:
            self._chat_states.suspend(session)
            session.set_context_length(n_ctx)

    def _queue_text(self, text: str) -> None:
        self._pending.append(text)
        now = time.monotonic()
        if now - self._last_emit >= self._text_interval_s:
            self._flush_text()
            self._last_emit = now

    def _flush_text(self) -> None:
        if self._pending:
            self.text_received.emit(self._reply_request, "".join(self._pending))
            self._pending.clear()

    def _close_session(self) -> None:
        self._usage.forget_loaded(id(self))
        if self._session is not None:
            self._chat_states.suspend(self._session)
            self._session.close()
            self._session = None

"""The QObject that owns a chat's llama.cpp session on its own QThread.

Commands arrive as queued slot calls; results leave as signals. Stopping is a
thread-safe flag (`request_stop`) checked by the engine before every token, since
the worker's event loop is busy while it generates.
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
from app.core.errors import LlamaDeskError
from app.engine.fit import estimate_memory
from app.engine.generation import GenerationParams
from app.engine.hardware import probe_hardware
from app.engine.session import ModelSession
from app.engine.usage import LoadedModel, ModelUsage, memory_warning
from app.gguf.report import inspect_model

log = logging.getLogger("ui.worker")

#: Reply text is handed to the GUI at most this often, so a fast model cannot flood its event loop.
#: At 10 Hz a model slower than 10 tokens/s (an 8B on a laptop CPU) still shows every token as it
#: comes; at 20 Hz the GUI's layout and paint work cost the starter model 5 % of its decode speed on
#: 2 cores (bench.chat: 0.95 of raw llama_decode against 0.98 at 10 Hz).
TEXT_BATCH_INTERVAL_S = 0.1


class ChatWorker(QObject):
    """Loads one model and writes replies into the chats database.

    Signals:
        model_loaded(ModelInfo): the model is ready to chat.
        model_load_failed(str): why loading failed, for the user.
        model_load_needs_confirmation(str): the model would not fit in RAM beside the other open
            chats' models; the message says so. Nothing was loaded; ask again with `confirmed`.
        reply_started(int, int): conversation id and the id of the reply's message row.
        prompt_progress(int, int): prompt tokens read so far and in all, while a long chat is read.
        text_received(str): new reply text, batched.
        reply_finished(ReplyOutcome): the reply ended (complete or stopped) and is saved.
        reply_failed(str): generation failed; the partial reply is saved as failed.
    """

    model_loaded = Signal(object)
    model_load_failed = Signal(str)
    model_load_needs_confirmation = Signal(str)
    reply_started = Signal(int, int)
    prompt_progress = Signal(int, int)
    text_received = Signal(str)
    reply_finished = Signal(object)
    reply_failed = Signal(str)

    def __init__(
        self,
        chats_db: Path,
        chat_cache_dir: Path,
        n_ctx: int,
        n_threads: int | None,
        usage: ModelUsage,
        n_gpu_layers: int | None = None,
    ) -> None:
        """`n_gpu_layers`: None offloads what fits in VRAM, 0 keeps the model on the CPU."""
        super().__init__()
        self._usage = usage
        self._n_gpu_layers = n_gpu_layers
        self._chats_db = chats_db
        self._chat_states = ChatStateCache(chat_cache_dir)
        self._n_ctx = n_ctx
        self._n_threads = n_threads
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

    @Slot(str, str, bool)
    def load_model(self, path: str, name: str, confirmed: bool = False) -> None:
        """Load the model at `path`; `name` is its library name ("" for none).

        Unless `confirmed`, first check that it fits in RAM beside the models of the other open
        chats, and ask (`model_load_needs_confirmation`) when it does not.
        """
        self._close_session()
        try:
            report = inspect_model(Path(path))
            needs = LoadedModel.estimate(Path(path), estimate_memory(report, self._n_ctx))
            if not confirmed:
                others = self._usage.loaded_by_others(id(self))
                warning = memory_warning(needs, others, probe_hardware().ram_total)
                if warning is not None:
                    log.info("asking before loading %s: %s", path, warning)
                    self.model_load_needs_confirmation.emit(warning)
                    return
            self._session = ModelSession(
                Path(path),
                name=name or None,
                n_ctx=self._n_ctx,
                n_threads=self._n_threads,
                n_gpu_layers=self._n_gpu_layers,
                report=report,
            )
        except LlamaDeskError as exc:
            log.warning("model load failed: %s", exc)
            self.model_load_failed.emit(str(exc))
            return
        self._usage.record_loaded(id(self), needs)
        self.model_loaded.emit(self._session.info)

    @Slot(int, object)
    def generate_reply(self, conversation_id: int, params: GenerationParams) -> None:
        if self._session is None:
            self.reply_failed.emit("No model is loaded.")
            return
        if self._store is None:
            self._store = ChatStore(self._chats_db)  # created here: connections belong to their thread
        self._pending.clear()
        try:
            self._apply_context_length(self._session, params.context_length or self._n_ctx)
            self._chat_states.prepare(self._session, conversation_id)
            outcome = write_reply(
                self._store,
                self._session,
                conversation_id,
                params,
                on_started=lambda message_id: self.reply_started.emit(conversation_id, message_id),
                on_text=self._queue_text,
                cancel=self._cancel,
                on_prompt_progress=self.prompt_progress.emit,
            )
        except LlamaDeskError as exc:
            self._flush_text()
            log.warning("reply failed: %s", exc)
            self.reply_failed.emit(str(exc))
            return
        self._flush_text()
        self.reply_finished.emit(outcome)

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
        if now - self._last_emit >= TEXT_BATCH_INTERVAL_S:
            self._flush_text()
            self._last_emit = now

    def _flush_text(self) -> None:
        if self._pending:
            self.text_received.emit("".join(self._pending))
            self._pending.clear()

    def _close_session(self) -> None:
        self._usage.forget_loaded(id(self))
        if self._session is not None:
            self._chat_states.suspend(self._session)
            self._session.close()
            self._session = None

"""One assistant reply in a stored conversation: generated, streamed and saved as it grows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.chat.context_window import fit_history, reply_reserve
from app.chat.store import ChatStore, MessageStatus
from app.engine.generation import ChatTurn, GenerationParams, GenerationStats, StopReason
from app.engine.session import ModelSession

#: How often a growing reply is written to the database; a crash loses at most this much text.
FLUSH_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ReplyOutcome:
    message_id: int
    conversation_id: int
    text: str
    status: MessageStatus
    stats: GenerationStats
    dropped_messages: int  # oldest messages left out because the chat outgrew the context
    context_start_id: int | None  # the first message the model saw, when some were left out
    n_ctx: int

    @property
    def context_used(self) -> int:
        return self.stats.prompt_tokens + self.stats.completion_tokens


def fitted_history(
    store: ChatStore, session: ModelSession, conversation_id: int, params: GenerationParams
) -> tuple[list[ChatTurn], int, int | None]:
    """The turns the model will see (system prompt + newest messages that fit), how many messages were
    left out, and the id of the first one kept when any were. Incomplete replies count as history.
    """
    conversation = store.conversation(conversation_id)
    system = (
        ChatTurn("system", conversation.system_prompt)
        if conversation and conversation.system_prompt
        else None
    )
    messages = [m for m in store.messages(conversation_id) if m.content]
    n_ctx = session.info.n_ctx
    budget = n_ctx - reply_reserve(n_ctx, params.max_tokens)
    fitted = fit_history(
        system, [ChatTurn(m.role, m.content) for m in messages], session.count_prompt_tokens, budget
    )
    start_id = messages[fitted.first_kept].id if fitted.dropped else None
    return fitted.turns, fitted.dropped, start_id


def write_reply(
    store: ChatStore,
    session: ModelSession,
    conversation_id: int,
    params: GenerationParams,
    *,
    on_started: Callable[[int], None],
    on_text: Callable[[str], None],
    cancel: threading.Event,
    on_prompt_progress: Callable[[int, int], None] | None = None,
    flush_interval_s: float = FLUSH_INTERVAL_S,
) -> ReplyOutcome:
    """Generate the assistant's next message in `conversation_id` and store it.

    The row is created as `streaming` before the first token and its text flushed every
    `flush_interval_s`; it ends `complete`, `stopped` (cancelled) or `failed` (whatever was raised).
    """
    turns, dropped, context_start_id = fitted_history(store, session, conversation_id, params)
    store.set_context_start(conversation_id, context_start_id)
    reply = store.add_message(
        conversation_id, "assistant", "", MessageStatus.STREAMING, model=session.info.name
    )
    on_started(reply.id)
    parts: list[str] = []
    last_flush = time.monotonic()

    def on_piece(text: str) -> None:
        nonlocal last_flush
        parts.append(text)
        on_text(text)
        now = time.monotonic()
        if now - last_flush >= flush_interval_s:
            store.update_message_text(reply.id, "".join(parts))
            last_flush = now

    try:
        result = session.generate(
            turns, params, on_text=on_piece, cancel=cancel, on_prompt_progress=on_prompt_progress
        )
    except BaseException:
        store.finish_message(reply.id, "".join(parts), MessageStatus.FAILED, None)
        raise
    cancelled = result.stats.stop_reason is StopReason.CANCELLED
    status = MessageStatus.STOPPED if cancelled else MessageStatus.COMPLETE
    store.finish_message(reply.id, result.text, status, result.stats)
    return ReplyOutcome(
        reply.id,
        conversation_id,
        result.text,
        status,
        result.stats,
        dropped,
        context_start_id,
        session.info.n_ctx,
    )

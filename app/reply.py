"""One assistant reply in a stored conversation: generated, streamed and saved as it grows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.chat_store import ChatStore, MessageStatus
from app.engine import ModelSession
from app.errors import LlamaDeskError
from app.generation import ChatTurn, GenerationParams, GenerationStats, StopReason

#: How often a growing reply is written to the database; a crash loses at most this much text.
FLUSH_INTERVAL_S = 0.5


@dataclass(frozen=True)
class ReplyOutcome:
    message_id: int
    conversation_id: int
    text: str
    status: MessageStatus
    stats: GenerationStats


def history_turns(store: ChatStore, conversation_id: int) -> list[ChatTurn]:
    """The turns the model sees: every stored message with text, incomplete replies included."""
    return [ChatTurn(m.role, m.content) for m in store.messages(conversation_id) if m.content]


def write_reply(
    store: ChatStore,
    session: ModelSession,
    conversation_id: int,
    params: GenerationParams,
    *,
    on_started: Callable[[int], None],
    on_text: Callable[[str], None],
    cancel: threading.Event,
) -> ReplyOutcome:
    """Generate the assistant's next message in `conversation_id` and store it.

    The row is created as `streaming` before the first token and flushed every
    `FLUSH_INTERVAL_S`; it ends `complete`, `stopped` (cancelled) or `failed`.
    """
    turns = history_turns(store, conversation_id)
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
        if now - last_flush >= FLUSH_INTERVAL_S:
            store.update_message_text(reply.id, "".join(parts))
            last_flush = now

    try:
        result = session.generate(turns, params, on_text=on_piece, cancel=cancel)
    except LlamaDeskError:
        store.finish_message(reply.id, "".join(parts), MessageStatus.FAILED, None)
        raise
    cancelled = result.stats.stop_reason is StopReason.CANCELLED
    status = MessageStatus.STOPPED if cancelled else MessageStatus.COMPLETE
    store.finish_message(reply.id, result.text, status, result.stats)
    return ReplyOutcome(reply.id, conversation_id, result.text, status, result.stats)

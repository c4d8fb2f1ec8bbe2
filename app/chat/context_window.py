"""Fitting a conversation into the model's context window: never silently, never a crash.

The system prompt always stays; the newest messages are kept and the oldest dropped, and
the caller learns how many, so the window can show where the model's view begins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.core.errors import PromptTooLongError
from app.engine.generation import ChatTurn

#: At most this share of the context is held back for the reply.
MAX_REPLY_SHARE = 4


@dataclass(frozen=True)
class FittedHistory:
    turns: list[ChatTurn]  # the system prompt (if any) and the kept messages, oldest first
    first_kept: int  # index in the messages given of the first one kept
    prompt_tokens: int

    @property
    def dropped(self) -> int:
        return self.first_kept


def reply_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens kept free for the reply: what was asked for, up to a quarter of the window."""
    return min(max_tokens, n_ctx // MAX_REPLY_SHARE)


def fit_history(
    system: ChatTurn | None,
    messages: Sequence[ChatTurn],
    count_tokens: Callable[[Sequence[ChatTurn]], int],
    budget: int,
) -> FittedHistory:
    """The longest suffix of `messages` that fits `budget` prompt tokens with the system prompt.

    Token counts shrink as messages are dropped, so the start is found by binary search. The
    kept part starts with a user message (chat templates expect user/assistant pairs). Raises
    PromptTooLongError when even the last message does not fit.
    """
    head = [system] if system is not None else []

    def tokens_from(start: int) -> int:
        return count_tokens(head + list(messages[start:]))

    last = len(messages) - 1
    low, high = 0, last  # find the smallest start that fits
    if tokens_from(last) > budget:
        raise PromptTooLongError(tokens_from(last), budget)
    while low < high:
        middle = (low + high) // 2
        if tokens_from(middle) <= budget:
            high = middle
        else:
            low = middle + 1
    start = low
    while start < last and messages[start].role != "user":
        start += 1
    return FittedHistory(head + list(messages[start:]), start, tokens_from(start))

"""Fitting long chats into the context: the system prompt stays, the oldest turns go, and it is said."""

from __future__ import annotations

import threading

import pytest

from app.chat.context_window import fit_history, reply_reserve
from app.chat.reply import write_reply
from app.chat.store import ChatStore, MessageStatus
from app.core.data_home import DataHome
from app.core.errors import PromptTooLongError
from app.engine.generation import ChatTurn, GenerationParams
from app.engine.session import ModelSession

SYSTEM = ChatTurn("system", "You are terse.")


def words(turns: list[ChatTurn] | tuple[ChatTurn, ...]) -> int:
    """A stand-in tokenizer: one token per word."""
    return sum(len(t.content.split()) for t in turns)


def chat(n: int) -> list[ChatTurn]:
    return [ChatTurn("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * 8) for i in range(n)]


def test_everything_is_kept_when_it_fits() -> None:
    fitted = fit_history(SYSTEM, chat(6), words, budget=1000)
    assert fitted.dropped == 0 and fitted.turns == [SYSTEM, *chat(6)]


def test_the_oldest_turns_go_and_the_system_prompt_stays() -> None:
    messages = chat(20)  # 10 words each
    fitted = fit_history(SYSTEM, messages, words, budget=73)  # system 3 + 7 messages
    assert fitted.turns[0] == SYSTEM
    assert fitted.turns[1:] == messages[fitted.first_kept :]
    assert fitted.prompt_tokens <= 73
    assert fitted.turns[1].role == "user", "the kept history starts with the user's turn"
    # Minimal loss: keeping one more message (from a user turn) would not fit.
    assert words([SYSTEM, *messages[fitted.first_kept - 2 :]]) > 73
    assert fitted.dropped == 14


def test_a_last_message_longer_than_the_window_is_a_clear_error() -> None:
    with pytest.raises(PromptTooLongError, match="Shorten the message"):
        fit_history(SYSTEM, [ChatTurn("user", "word " * 500)], words, budget=100)


def test_reply_reserve_is_capped() -> None:
    assert reply_reserve(4096, 512) == 512
    assert reply_reserve(256, 1024) == 64


def test_an_overflowing_chat_on_the_real_model_keeps_going(data_home: DataHome, starter_path) -> None:  # type: ignore[no-untyped-def]
    store = ChatStore(data_home.chats_db)
    conversation = store.create_conversation()
    store.set_system_prompt(conversation.id, "Always answer in English.")
    for i in range(12):
        store.add_message(conversation.id, "user", f"Tell me fact number {i} about the ocean, please.")
        store.add_message(
            conversation.id, "assistant", f"Fact {i}: the ocean is very large and very deep indeed."
        )
    store.add_message(conversation.id, "user", "And one about rivers?")
    params = GenerationParams(temperature=0.0, max_tokens=48)
    with ModelSession(starter_path, n_ctx=256) as session:
        prompts: list[str] = []
        original = session.format_prompt
        session.format_prompt = lambda turns: prompts.append(original(turns)) or prompts[-1]  # type: ignore[method-assign]
        outcome = write_reply(
            store,
            session,
            conversation.id,
            params,
            on_started=lambda _i: None,
            on_text=lambda _t: None,
            cancel=threading.Event(),
        )
    assert outcome.dropped_messages > 0
    assert outcome.text.strip() and outcome.status is MessageStatus.COMPLETE
    assert outcome.stats.prompt_tokens <= 256 - reply_reserve(256, 48)
    final_prompt = prompts[-1]
    assert final_prompt.startswith("<|im_start|>system\nAlways answer in English.<|im_end|>")
    assert "And one about rivers?" in final_prompt and "fact number 0 " not in final_prompt
    saved = store.conversation(conversation.id)
    assert saved is not None and saved.context_start_id == outcome.context_start_id
    first_kept = next(m for m in store.messages(conversation.id) if m.id == outcome.context_start_id)
    assert first_kept.role == "user" and first_kept.content in final_prompt

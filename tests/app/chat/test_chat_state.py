"""Per-chat saved caches: switching chats in one session does not re-read the chat switched back to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.chat.saved_state import ChatStateCache
from app.engine.generation import ChatTurn, GenerationParams
from app.engine.session import ModelSession

GREEDY = GenerationParams(temperature=0.0, max_tokens=4)


def chat(topic: str) -> list[ChatTurn]:
    return [ChatTurn("user", " ".join(f"{topic} fact {i}." for i in range(150)))]


@pytest.fixture
def session(starter_path: Path) -> Iterator[ModelSession]:
    with ModelSession(starter_path, n_ctx=2048) as s:
        yield s


def test_switching_back_restores_the_chat_instead_of_re_reading_it(
    session: ModelSession, tmp_path: Path
) -> None:
    cache = ChatStateCache(tmp_path)
    assert cache.prepare(session, 1) == 0  # nothing saved yet
    first = session.generate(chat("otters"), GREEDY)

    assert cache.prepare(session, 2) == 0  # chat 1 is saved on the way out
    session.generate(chat("badgers"), GREEDY)
    assert (tmp_path / "chat-1.state").exists()

    restored = cache.prepare(session, 1)
    assert restored >= first.stats.prompt_tokens
    again = session.generate(chat("otters"), GREEDY)
    assert again.stats.reused_prompt_tokens == again.stats.prompt_tokens - 1
    assert again.text == first.text
    assert cache.prepare(session, 1) == 0  # already held: nothing to do


def test_a_cache_saved_for_another_context_size_is_dropped(starter_path: Path, tmp_path: Path) -> None:
    cache = ChatStateCache(tmp_path)
    with ModelSession(starter_path, n_ctx=1024) as small:
        cache.prepare(small, 7)
        small.generate(chat("otters"), GREEDY)
        cache.suspend(small)
    assert (tmp_path / "chat-7.state").exists()
    with ModelSession(starter_path, n_ctx=2048) as large:
        assert cache.prepare(large, 7) == 0
    assert not (tmp_path / "chat-7.state").exists()


def test_the_folder_stays_under_its_budget_newest_kept(session: ModelSession, tmp_path: Path) -> None:
    probe = ChatStateCache(tmp_path / "probe")
    session.generate(chat("x"), GREEDY)
    one = probe.save(session, 0)
    cache = ChatStateCache(tmp_path / "cache", budget_bytes=int(one * 2.5))
    for conversation_id in range(1, 5):
        cache.prepare(session, conversation_id)
        session.generate(chat(f"topic{conversation_id}"), GREEDY)
    cache.suspend(session)
    kept = sorted(p.name for p in (tmp_path / "cache").glob("*.state"))
    assert kept == ["chat-3.state", "chat-4.state"]


def test_context_length_can_change_without_reloading(session: ModelSession) -> None:
    session.generate(chat("otters"), GREEDY)
    session.set_context_length(1024)
    assert session.info.n_ctx == 1024
    assert session.cached_tokens == []
    result = session.generate([ChatTurn("user", "Hi")], GREEDY)
    assert result.stats.completion_tokens > 0
    session.set_context_length(10**7)  # capped at what the model was trained for
    assert session.info.n_ctx == session.info.n_ctx_train

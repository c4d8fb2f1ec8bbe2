"""Long prompts: progress while read, Stop in the middle, and a saved cache that spares re-reading."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from app.engine.generation import ChatTurn, GenerationParams, StopReason
from app.engine.session import ModelSession

GREEDY = GenerationParams(temperature=0.0, max_tokens=8)


def long_chat(words: int = 500, topic: str = "lighthouses") -> list[ChatTurn]:
    text = " ".join(f"{topic}{i % 97}" for i in range(words))
    return [ChatTurn("user", f"Summarise these notes: {text}")]


@pytest.fixture
def session(starter_path: Path) -> ModelSession:
    with ModelSession(starter_path, n_ctx=4096) as s:
        yield s


def test_prompt_reading_reports_progress_up_to_the_whole_prompt(session: ModelSession) -> None:
    seen: list[tuple[int, int]] = []
    result = session.generate(long_chat(), GREEDY, on_prompt_progress=lambda d, t: seen.append((d, t)))
    total = result.stats.prompt_tokens
    assert total > 1024  # several batches
    assert len(seen) >= 3
    assert all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (total, total)


def test_stop_during_prompt_reading_returns_quickly_and_keeps_a_valid_prefix(session: ModelSession) -> None:
    cancel = threading.Event()
    progress: list[int] = []

    def on_progress(done: int, _total: int) -> None:
        progress.append(done)
        threading.Timer(0.01, cancel.set).start()  # stop inside the next batch, not between batches

    started = time.perf_counter()
    result = session.generate(long_chat(), GREEDY, cancel=cancel, on_prompt_progress=on_progress)
    assert result.stats.stop_reason is StopReason.CANCELLED
    assert result.text == ""
    assert len(progress) == 1  # the second batch was interrupted
    kept = session.cached_tokens
    assert len(kept) == progress[0]
    print(f"stopped after {time.perf_counter() - started:.3f} s with {len(kept)} tokens kept")

    # The kept prefix is reused, and the reply equals one from a fresh cache.
    resumed = session.generate(long_chat(), GREEDY)
    assert resumed.stats.reused_prompt_tokens == len(kept)
    session.load_state(Path("/nonexistent"))  # empties the cache
    assert session.cached_tokens == []
    fresh = session.generate(long_chat(), GREEDY)
    assert fresh.stats.reused_prompt_tokens == 0
    assert resumed.text == fresh.text


def test_saved_state_lets_a_chat_resume_without_re_reading(session: ModelSession, tmp_path: Path) -> None:
    chat = long_chat(300, "otters")
    first = session.generate(chat, GREEDY)
    state = tmp_path / "chat.state"
    saved_tokens = session.cached_tokens
    assert session.save_state(state) > 0

    session.generate(long_chat(300, "badgers"), GREEDY)  # another chat takes over the cache
    follow_up = [*chat, ChatTurn("assistant", first.text), ChatTurn("user", "Shorter, please.")]
    assert session.load_state(state) == len(saved_tokens)
    assert session.cached_tokens == saved_tokens
    restored = session.generate(follow_up, GREEDY)
    assert restored.stats.reused_prompt_tokens >= first.stats.prompt_tokens

    session.load_state(Path("/nonexistent"))
    reread = session.generate(follow_up, GREEDY)
    assert reread.stats.reused_prompt_tokens == 0
    assert reread.text == restored.text


def test_a_damaged_state_file_means_re_reading_not_an_error(session: ModelSession, tmp_path: Path) -> None:
    bad = tmp_path / "bad.state"
    bad.write_bytes(b"not a llama.cpp state file" * 10)
    assert session.load_state(bad) == 0
    result = session.generate([ChatTurn("user", "Hi")], GREEDY)
    assert result.stats.reused_prompt_tokens == 0 and result.stats.completion_tokens > 0

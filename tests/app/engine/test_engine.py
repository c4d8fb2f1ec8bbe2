"""The engine on the real starter model (SmolLM2-135M-Instruct, llama.cpp on the CPU)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.core.errors import ModelFileNotFoundError, NotAGGUFError, PromptTooLongError
from app.engine.generation import ChatTurn, GenerationParams, StopReason
from app.engine.session import ModelSession

GREEDY = GenerationParams(temperature=0.0, max_tokens=48)
QUESTION = [ChatTurn("user", "Name three colours of the rainbow.")]


def test_streamed_pieces_make_up_the_reply(starter_session: ModelSession) -> None:
    pieces: list[str] = []
    result = starter_session.generate(QUESTION, GREEDY, on_text=pieces.append)
    assert result.text.strip()
    assert len(pieces) > 1, "the reply should arrive piece by piece"
    assert "".join(pieces) == result.text
    assert result.stats.completion_tokens >= len(pieces) - 1
    assert result.stats.stop_reason in (StopReason.END_OF_TURN, StopReason.MAX_TOKENS)


def test_greedy_reply_is_identical_across_fresh_loads(starter_path: Path) -> None:
    texts = []
    for _ in range(2):
        with ModelSession(starter_path, n_ctx=1024) as session:
            texts.append(session.generate(QUESTION, GREEDY).text)
    assert texts[0] and texts[0] == texts[1]


def test_seeded_sampling_is_repeatable(starter_path: Path) -> None:
    params = GenerationParams(temperature=0.9, max_tokens=24, seed=1234)
    texts = []
    for _ in range(2):
        with ModelSession(starter_path, n_ctx=1024) as session:
            texts.append(session.generate(QUESTION, params).text)
    assert texts[0] == texts[1]


def test_prompt_uses_the_models_own_chat_template(starter_session: ModelSession) -> None:
    assert not starter_session.info.template_is_fallback
    prompt = starter_session.format_prompt([ChatTurn("system", "Be brief."), ChatTurn("user", "Hello there")])
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt
    assert "<|im_start|>user\nHello there<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    result = starter_session.generate([ChatTurn("user", "Hello there")], GREEDY)
    expected_tokens = starter_session.tokenize(
        starter_session.format_prompt([ChatTurn("user", "Hello there")])
    )
    assert result.stats.prompt_tokens == len(expected_tokens)


def test_role_markers_are_single_special_tokens(starter_session: ModelSession) -> None:
    prompt = starter_session.format_prompt(QUESTION)
    tokens = starter_session.tokenize(prompt)
    im_start = starter_session.tokenize("<|im_start|>")
    assert len(im_start) == 1
    assert tokens.count(im_start[0]) == 3  # system, user and the assistant header


def test_cancel_stops_within_one_token(starter_session: ModelSession) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            cancel.set()

    params = GenerationParams(temperature=0.0, max_tokens=400)
    long_task = [ChatTurn("user", "Write a long story about a lighthouse keeper.")]
    result = starter_session.generate(long_task, params, on_text=on_text, cancel=cancel)
    assert result.stats.stop_reason is StopReason.CANCELLED
    assert result.stats.completion_tokens <= 4
    assert len(seen) == 3


def test_cancel_before_start_generates_nothing(starter_session: ModelSession) -> None:
    cancel = threading.Event()
    cancel.set()
    result = starter_session.generate(QUESTION, GREEDY, cancel=cancel)
    assert result.text == ""
    assert result.stats.stop_reason is StopReason.CANCELLED


def test_cancel_from_another_thread(starter_session: ModelSession) -> None:
    cancel = threading.Event()
    first_text = threading.Event()
    results = []
    long_task = [ChatTurn("user", "Write a long story about a lighthouse keeper.")]

    def run() -> None:
        params = GenerationParams(temperature=0.0, max_tokens=1000)
        results.append(
            starter_session.generate(long_task, params, on_text=lambda _t: first_text.set(), cancel=cancel)
        )

    thread = threading.Thread(target=run)
    thread.start()
    assert first_text.wait(60)
    cancel.set()
    thread.join(60)
    assert not thread.is_alive()
    assert results[0].stats.stop_reason is StopReason.CANCELLED
    assert results[0].stats.completion_tokens < 1000


def test_follow_up_turn_evaluates_only_the_new_tokens(starter_session: ModelSession) -> None:
    first = starter_session.generate(QUESTION, GREEDY)
    follow_up = [*QUESTION, ChatTurn("assistant", first.text), ChatTurn("user", "And two more?")]
    second = starter_session.generate(follow_up, GREEDY)
    new_text = starter_session.tokenize(
        "<|im_end|>\n<|im_start|>user\nAnd two more?<|im_end|>\n<|im_start|>assistant\n"
    )
    evaluated = second.stats.prompt_tokens - second.stats.reused_prompt_tokens
    # The previous prompt and reply stay cached; only the closing of the reply and the new turn are evaluated.
    assert second.stats.reused_prompt_tokens >= first.stats.prompt_tokens
    assert evaluated <= len(new_text) + 2


def test_reused_cache_gives_the_same_reply_as_a_fresh_load(
    starter_session: ModelSession, starter_path: Path
) -> None:
    first = starter_session.generate(QUESTION, GREEDY)
    follow_up = [*QUESTION, ChatTurn("assistant", first.text), ChatTurn("user", "Now name two animals.")]
    cached = starter_session.generate(follow_up, GREEDY)
    with ModelSession(starter_path, n_ctx=2048) as fresh:
        assert fresh.generate(follow_up, GREEDY).text == cached.text


def test_max_tokens_ends_the_reply(starter_session: ModelSession) -> None:
    result = starter_session.generate(
        [ChatTurn("user", "Write a long story about a lighthouse keeper.")],
        GenerationParams(temperature=0.0, max_tokens=5),
    )
    assert result.stats.completion_tokens == 5
    assert result.stats.stop_reason is StopReason.MAX_TOKENS


def test_too_long_conversation_is_a_clear_error(starter_session: ModelSession) -> None:
    essay = "word " * 5000
    with pytest.raises(PromptTooLongError, match="context holds 2048"):  # the engine's own guard
        starter_session.generate([ChatTurn("user", essay)], GREEDY)
    # The session stays usable afterwards.
    assert starter_session.generate(QUESTION, GREEDY).text


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileNotFoundError, match="not found"):
        ModelSession(tmp_path / "nope.gguf")


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"GGUF\xff\x00\x00\x00rest"])
def test_not_a_gguf_file(tmp_path: Path, content: bytes) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(content)
    with pytest.raises(NotAGGUFError, match=r"bogus\.gguf"):
        ModelSession(bogus)


def test_model_without_template_uses_a_named_fallback(templateless_model: Path) -> None:
    with ModelSession(templateless_model, n_ctx=1024) as session:
        assert session.info.template_is_fallback
        assert session.info.template_name == "ChatML"  # its vocabulary has <|im_start|> and <|im_end|>
        assert "<|im_start|>user\nName three" in session.format_prompt(QUESTION)
        assert session.generate(QUESTION, GREEDY).text.strip()

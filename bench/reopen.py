"""Going back to a long chat: time to first token with the chat's saved llama.cpp cache, and without.

    python -m bench.reopen [--runs 3] [--words 1200] [--json out.json]

One session holds one chat's cache at a time. A long chat A is answered, then chat B takes the
cache, then A gets a follow-up question. With app/chat/saved_state.py A's cache is written to disk when
B takes over and read back for the follow-up; without it, A is read again from its first token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from app.chat.saved_state import ChatStateCache
from app.core.starter import starter_model_path
from app.engine.generation import ChatTurn, GenerationParams
from app.engine.session import ModelSession

GREEDY = GenerationParams(temperature=0.0, max_tokens=16)


def notes(topic: str, words: int) -> list[ChatTurn]:
    return [
        ChatTurn("user", "Keep these notes: " + " ".join(f"{topic} item {i}." for i in range(words // 3)))
    ]


def follow_up_ttft(session: ModelSession, cache: ChatStateCache | None, words: int) -> tuple[float, int]:
    chat_a, chat_b = notes("harbour", words), notes("forest", words)
    if cache:
        cache.prepare(session, 1)
    first = session.generate(chat_a, GREEDY)
    if cache:
        cache.prepare(session, 2)
    session.generate(chat_b, GREEDY)
    started = time.perf_counter()
    if cache:
        cache.prepare(session, 1)  # writes B's cache and reads A's: counted in the wait
    switch_s = time.perf_counter() - started
    follow_up = [*chat_a, ChatTurn("assistant", first.text), ChatTurn("user", "Which item came first?")]
    result = session.generate(follow_up, GREEDY)
    return switch_s + result.stats.ttft_s, result.stats.prompt_tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--words", type=int, default=1200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with_cache, without, prompt_tokens = [], [], 0
    with ModelSession(starter_model_path(), n_ctx=8192) as session, tempfile.TemporaryDirectory() as folder:
        for run in range(args.runs):
            cache = ChatStateCache(Path(folder) / str(run))
            ttft, prompt_tokens = follow_up_ttft(session, cache, args.words)
            with_cache.append(ttft)
            ttft, _ = follow_up_ttft(session, None, args.words)
            without.append(ttft)
    figures = {
        "reopen_ttft_ms": {
            "prompt_tokens": prompt_tokens,
            "with_saved_cache": round(statistics.median(with_cache) * 1000, 1),
            "re_reading": round(statistics.median(without) * 1000, 1),
            "speed_up": round(statistics.median(without) / statistics.median(with_cache), 1),
        }
    }
    print(f"{'follow-up in a chat of':<28}{prompt_tokens:>8,} tokens")
    print(f"{'with its saved cache':<28}{figures['reopen_ttft_ms']['with_saved_cache']:>8} ms to first token")
    print(f"{'reading it again':<28}{figures['reopen_ttft_ms']['re_reading']:>8} ms to first token")
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

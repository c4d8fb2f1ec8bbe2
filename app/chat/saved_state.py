"""Saved llama.cpp caches per chat, so going back to a long chat does not re-read all of it.

A session's cache holds one chat at a time. When a reply is wanted in another chat, the cache of
the chat it holds is written to disk first, and the wanted chat's saved cache, if any, is loaded;
the engine then reuses whatever prefix matches. Files are only valid for the same model file and
context size, and the folder is kept under a size budget, least recently used first out.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.engine.session import ModelSession

log = logging.getLogger("chat_state")

DEFAULT_BUDGET_BYTES = 2 << 30


@dataclass(frozen=True)
class CacheKey:
    """What a saved cache depends on: the exact model file and the context size."""

    model_path: str
    model_size: int
    model_mtime_ns: int
    n_ctx: int

    @classmethod
    def of(cls, session: ModelSession) -> CacheKey:
        stat = session.info.path.stat()
        return cls(str(session.info.path.resolve()), stat.st_size, stat.st_mtime_ns, session.info.n_ctx)


class ChatStateCache:
    """The saved caches of one worker, whose one session at a time holds one chat."""

    def __init__(self, folder: Path, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._folder = folder
        self._budget = budget_bytes
        self._held: int | None = None  # the conversation the session's cache holds

    def prepare(self, session: ModelSession, conversation_id: int) -> int:
        """Make `session`'s cache hold `conversation_id` if it can be had cheaper than re-reading.

        Returns the number of tokens restored from disk (0 when the cache already held this chat or
        nothing usable was saved).
        """
        held, self._held = self._held, conversation_id
        if held == conversation_id:
            return 0
        if held is not None:
            self.save(session, held)
        return self.restore(session, conversation_id)

    def suspend(self, session: ModelSession) -> None:
        """Save the chat the session's cache holds (before the model is closed or swapped)."""
        held, self._held = self._held, None
        if held is not None:
            self.save(session, held)

    def save(self, session: ModelSession, conversation_id: int) -> int:
        self._folder.mkdir(parents=True, exist_ok=True)
        state, meta = self._paths(conversation_id)
        started = time.perf_counter()
        try:
            written = session.save_state(state)
        except OSError as exc:  # a full disk must not cost the user their reply
            log.warning("could not save the cache of chat %d: %s", conversation_id, exc)
            return 0
        if not written:
            state.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return 0
        meta.write_text(json.dumps(asdict(CacheKey.of(session))), encoding="utf-8")
        log.info(
            "saved the cache of chat %d: %.1f MiB in %.2f s",
            conversation_id,
            written / (1 << 20),
            time.perf_counter() - started,
        )
        self._trim()
        return written

    def restore(self, session: ModelSession, conversation_id: int) -> int:
        state, meta = self._paths(conversation_id)
        if not state.exists():
            return 0
        try:
            saved = CacheKey(**json.loads(meta.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            saved = None
        if saved != CacheKey.of(session):
            self.forget(conversation_id)  # another model or context size: useless now
            return 0
        restored = session.load_state(state)
        if restored:
            state.touch()  # recently used: kept longest
            log.info("restored %d cached tokens of chat %d", restored, conversation_id)
        return restored

    def forget(self, conversation_id: int) -> None:
        for path in self._paths(conversation_id):
            path.unlink(missing_ok=True)

    def _paths(self, conversation_id: int) -> tuple[Path, Path]:
        return self._folder / f"chat-{conversation_id}.state", self._folder / f"chat-{conversation_id}.json"

    def _trim(self) -> None:
        states = sorted(self._folder.glob("chat-*.state"), key=lambda p: p.stat().st_mtime, reverse=True)
        used = 0
        for state in states:
            used += state.stat().st_size
            if used > self._budget:
                state.unlink(missing_ok=True)
                state.with_suffix(".json").unlink(missing_ok=True)

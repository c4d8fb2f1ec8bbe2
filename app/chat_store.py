"""Conversations and messages in SQLite, written as they happen.

A reply is inserted as `streaming` when it starts and its text is flushed while it
grows, so a crash loses at most the last flush; `recover_interrupted` marks such
leftovers at the next start. One `ChatStore` per thread (sqlite3 connections are
not shared across threads); WAL mode lets the GUI read while a worker writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.generation import GenerationParams, GenerationStats

log = logging.getLogger("chats")

DEFAULT_TITLE = "New chat"
_TITLE_LENGTH = 48
_SCHEMA_VERSION = 4
# Columns added in schema 2: the chat's own system prompt, and where the model's view of the chat
# began at its last reply (older messages no longer fit the context window).
_V2_COLUMNS = (("system_prompt", "TEXT"), ("context_start_id", "INTEGER"), ("sampling", "TEXT"))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    stats TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""
# Schema 3: full-text search over every message, kept in step with `messages` by triggers.
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
"""
_SNIPPET_TOKENS = 12


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    STREAMING = "streaming"  # being written now; seen at start-up only after a crash
    STOPPED = "stopped"  # the user pressed Stop: kept, marked incomplete
    INTERRUPTED = "interrupted"  # the app died mid-reply: kept, marked incomplete
    FAILED = "failed"  # generation raised an error partway

    @property
    def is_incomplete(self) -> bool:
        return self is not MessageStatus.COMPLETE


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    created_at: float
    updated_at: float
    system_prompt: str | None = None
    context_start_id: int | None = None  # first message the model saw at the last reply; None: all
    sampling: GenerationParams | None = None  # this chat's own settings; None: the defaults


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    conversation_title: str
    message_id: int
    role: str
    snippet: str  # the matching words between [ and ]


@dataclass(frozen=True)
class ChatMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    status: MessageStatus
    model: str | None
    stats: GenerationStats | None
    created_at: float


class ChatStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            self._conn.executescript(_FTS)
            if version < 3:  # index the messages written before search existed
                self._conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            have = {row["name"] for row in self._conn.execute("PRAGMA table_info(conversations)")}
            for column, declaration in _V2_COLUMNS:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE conversations ADD COLUMN {column} {declaration}")
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    # -- conversations ---------------------------------------------------------------------------

    def create_conversation(
        self, title: str = DEFAULT_TITLE, created_at: float | None = None
    ) -> Conversation:
        now = time.time() if created_at is None else created_at
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at) VALUES (?, ?, ?)",
                (title, now, now),
            )
        assert cur.lastrowid is not None
        return Conversation(cur.lastrowid, title, now, now)

    def conversations(self) -> list[Conversation]:
        """All conversations, most recently active first."""
        rows = self._conn.execute("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC").fetchall()
        return [_conversation_from_row(r) for r in rows]

    def conversation(self, conversation_id: int) -> Conversation | None:
        r = self._conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        return None if r is None else _conversation_from_row(r)

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        title = title.strip() or DEFAULT_TITLE
        with self._conn:
            self._conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def set_system_prompt(self, conversation_id: int, prompt: str) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE conversations SET system_prompt = ? WHERE id = ?",
                (prompt.strip() or None, conversation_id),
            )

    def set_sampling(self, conversation_id: int, params: GenerationParams | None) -> None:
        value = None if params is None else json.dumps(dataclasses.asdict(params))
        with self._conn:
            self._conn.execute("UPDATE conversations SET sampling = ? WHERE id = ?", (value, conversation_id))

    def set_context_start(self, conversation_id: int, message_id: int | None) -> None:
        with self._conn:
            self._conn.execute(
                "UPDATE conversations SET context_start_id = ? WHERE id = ?", (message_id, conversation_id)
            )

    def delete_conversation(self, conversation_id: int) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages --------------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[ChatMessage]:
        rows = self._conn.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        return [_message_from_row(r) for r in rows]

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        status: MessageStatus = MessageStatus.COMPLETE,
        model: str | None = None,
        created_at: float | None = None,
    ) -> ChatMessage:
        """Append a message; the first user message also names a conversation still called "New chat".

        `created_at` is for imports, which keep the original times; new messages get the current time.
        """
        now = time.time() if created_at is None else created_at
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO messages (conversation_id, role, content, status, model, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, str(status), model, now),
            )
            self._conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
            if role == "user":
                self._conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ?",
                    (_title_from(content), conversation_id, DEFAULT_TITLE),
                )
        assert cur.lastrowid is not None
        return ChatMessage(cur.lastrowid, conversation_id, role, content, status, model, None, now)

    def update_message_text(self, message_id: int, content: str) -> None:
        """Flush the text of a reply that is still streaming."""
        with self._conn:
            self._conn.execute("UPDATE messages SET content = ? WHERE id = ?", (content, message_id))

    def finish_message(
        self, message_id: int, content: str, status: MessageStatus, stats: GenerationStats | None
    ) -> None:
        stats_json = None if stats is None else json.dumps(stats.to_json())
        with self._conn:
            self._conn.execute(
                "UPDATE messages SET content = ?, status = ?, stats = ? WHERE id = ?",
                (content, str(status), stats_json, message_id),
            )

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Messages of every chat matching all words of `text` (the last one as a prefix), best first."""
        query = fts_query(text)
        if not query:
            return []
        rows = self._conn.execute(
            "SELECT m.id, m.role, m.conversation_id, c.title,"
            f" snippet(messages_fts, 0, '[', ']', '…', {_SNIPPET_TOKENS}) AS snippet"
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
            (query, limit),
        ).fetchall()
        return [SearchHit(r["conversation_id"], r["title"], r["id"], r["role"], r["snippet"]) for r in rows]

    def recover_interrupted(self) -> int:
        """Mark replies left `streaming` by a process that died; returns how many."""
        with self._conn:
            cur = self._conn.execute(
                "UPDATE messages SET status = ? WHERE status = ?",
                (str(MessageStatus.INTERRUPTED), str(MessageStatus.STREAMING)),
            )
        if cur.rowcount:
            log.warning("marked %d reply(ies) interrupted by an earlier exit as incomplete", cur.rowcount)
        return cur.rowcount


def fts_query(text: str) -> str:
    """User text as an FTS5 query: every word quoted (so no character is syntax), the last a prefix."""
    words = [w.replace('"', '""') for w in text.split()]
    if not words:
        return ""
    return " ".join(f'"{w}"' for w in words[:-1]) + (" " if len(words) > 1 else "") + f'"{words[-1]}"*'


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _TITLE_LENGTH else line[: _TITLE_LENGTH - 1].rstrip() + "…"


def _conversation_from_row(r: sqlite3.Row) -> Conversation:
    return Conversation(
        r["id"],
        r["title"],
        r["created_at"],
        r["updated_at"],
        r["system_prompt"],
        r["context_start_id"],
        _sampling_from(r["sampling"]),
    )


def _sampling_from(value: str | None) -> GenerationParams | None:
    """Stored settings, ignoring keys a newer or older version wrote (never a crash on open)."""
    if not value:
        return None
    try:
        data = json.loads(value)
        known = {f.name for f in dataclasses.fields(GenerationParams)}
        return GenerationParams(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError):
        log.warning("ignoring unreadable sampling settings %r", value)
        return None


def _message_from_row(r: sqlite3.Row) -> ChatMessage:
    stats = None if r["stats"] is None else GenerationStats.from_json(json.loads(r["stats"]))
    return ChatMessage(
        r["id"],
        r["conversation_id"],
        r["role"],
        r["content"],
        MessageStatus(r["status"]),
        r["model"],
        stats,
        r["created_at"],
    )

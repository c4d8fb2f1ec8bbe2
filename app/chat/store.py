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

from app.core.errors import MessageNotFoundError
from app.engine.generation import GenerationParams, GenerationStats

log = logging.getLogger("chats")

DEFAULT_TITLE = "New chat"
_TITLE_LENGTH = 48
_SCHEMA_VERSION = 6
# Columns added in schema 2: the chat's own system prompt, and where the model's view of the chat
# began at its last reply (older messages no longer fit the context window). Schema 5: the message
# the chat currently ends at (messages form a tree once a reply is regenerated or a message edited).
_CONVERSATION_COLUMNS = (
    ("system_prompt", "TEXT"),
    ("context_start_id", "INTEGER"),
    ("sampling", "TEXT"),
    ("active_leaf_id", "INTEGER"),
)
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
# Schema 5: every message points at the one it answers or follows; siblings are alternative branches.
# Before, a chat was a list: each message follows the previous one.
_V5_TREE = """
ALTER TABLE messages ADD COLUMN parent_id INTEGER;
UPDATE messages SET parent_id = (
    SELECT MAX(p.id) FROM messages p WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id
);
UPDATE conversations SET active_leaf_id = (
    SELECT MAX(m.id) FROM messages m WHERE m.conversation_id = conversations.id
);
"""
_TREE_INDEX = "CREATE INDEX IF NOT EXISTS messages_by_parent ON messages(conversation_id, parent_id, id)"
# Schema 3: full-text search over every message, kept in step with `messages` by triggers.
# Schema 6: a message is in the index only once it is no longer streaming, so the text flushed every
# half second while a reply grows does not re-index it each time; it is indexed once, when it ends.
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
DROP TRIGGER IF EXISTS messages_fts_update;
CREATE TRIGGER IF NOT EXISTS messages_fts_insert AFTER INSERT ON messages
WHEN new.status != 'streaming' BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_delete AFTER DELETE ON messages
WHEN old.status != 'streaming' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER IF NOT EXISTS messages_fts_reindex AFTER UPDATE OF content, status ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
    INSERT INTO messages_fts(rowid, content) SELECT new.id, new.content WHERE new.status != 'streaming';
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
    active_leaf_id: int | None = None  # the message the shown branch ends at; None: no messages


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


@dataclass(frozen=True)
class ImportedMessage:
    """One message of a conversation file, checked before anything is written."""

    role: str
    content: str
    status: MessageStatus
    model: str | None
    created_at: float
    stats: GenerationStats | None


class ChatStore:
    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if self._conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
            self._migrate()  # once per database, not at every connection (each worker opens one)

    def _migrate(self) -> None:
        with self._conn:
            self._conn.executescript(_SCHEMA)
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            self._conn.executescript(_FTS)
            if version < 6:  # index what was written before (search, or this rule), streaming rows aside
                self._conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
                self._conn.execute(
                    "INSERT INTO messages_fts(messages_fts, rowid, content)"
                    " SELECT 'delete', id, content FROM messages WHERE status = 'streaming'"
                )
            have = {row["name"] for row in self._conn.execute("PRAGMA table_info(conversations)")}
            for column, declaration in _CONVERSATION_COLUMNS:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE conversations ADD COLUMN {column} {declaration}")
            message_columns = {row["name"] for row in self._conn.execute("PRAGMA table_info(messages)")}
            if "parent_id" not in message_columns:
                for statement in _V5_TREE.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
            self._conn.execute(_TREE_INDEX)
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

    def import_conversation(
        self, title: str, created_at: float, system_prompt: str | None, messages: list[ImportedMessage]
    ) -> Conversation:
        """A whole conversation, messages in order, in one transaction: a kill or an error on the way
        leaves all of it or nothing, never a half-imported chat."""
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO conversations (title, created_at, updated_at, system_prompt)"
                " VALUES (?, ?, ?, ?)",
                (
                    title.strip() or DEFAULT_TITLE,
                    created_at,
                    created_at,
                    (system_prompt or "").strip() or None,
                ),
            )
            conversation_id = cur.lastrowid
            parent: int | None = None
            updated = created_at
            for m in messages:
                stats_json = None if m.stats is None else json.dumps(m.stats.to_json())
                row = self._conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, status, model, stats,"
                    " created_at, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        m.role,
                        m.content,
                        str(m.status),
                        m.model,
                        stats_json,
                        m.created_at,
                        parent,
                    ),
                )
                parent = row.lastrowid
                updated = max(updated, m.created_at)
            self._conn.execute(
                "UPDATE conversations SET active_leaf_id = ?, updated_at = ? WHERE id = ?",
                (parent, updated, conversation_id),
            )
        assert conversation_id is not None
        imported = self.conversation(conversation_id)
        assert imported is not None
        return imported

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
        """The chat as shown and as the model sees it: the active branch, from the first message on."""
        rows = self._conn.execute(
            "WITH RECURSIVE path(id) AS ("
            " SELECT active_leaf_id FROM conversations WHERE id = ? AND active_leaf_id IS NOT NULL"
            " UNION ALL SELECT m.parent_id FROM messages m JOIN path ON m.id = path.id"
            " WHERE m.parent_id IS NOT NULL)"
            " SELECT messages.* FROM messages JOIN path USING (id) ORDER BY messages.id",
            (conversation_id,),
        ).fetchall()
        return [_message_from_row(r) for r in rows]

    def message(self, message_id: int) -> ChatMessage | None:
        r = self._conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if r is None else _message_from_row(r)

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        status: MessageStatus = MessageStatus.COMPLETE,
        model: str | None = None,
        created_at: float | None = None,
    ) -> ChatMessage:
        """Append a message after the end of the active branch; it becomes the new end.

        The first user message also names a conversation still called "New chat". `created_at` is
        for imports, which keep the original times; new messages get the current time.
        """
        now = time.time() if created_at is None else created_at
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO messages (conversation_id, role, content, status, model, created_at, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?, (SELECT active_leaf_id FROM conversations WHERE id = ?))",
                (conversation_id, role, content, str(status), model, now, conversation_id),
            )
            self._conn.execute(
                "UPDATE conversations SET updated_at = ?, active_leaf_id = ? WHERE id = ?",
                (now, cur.lastrowid, conversation_id),
            )
            if role == "user":
                self._conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ? AND title = ?",
                    (_title_from(content), conversation_id, DEFAULT_TITLE),
                )
        assert cur.lastrowid is not None
        return ChatMessage(cur.lastrowid, conversation_id, role, content, status, model, None, now)

    # -- branches --------------------------------------------------------------------------------

    def rewind_to_parent_of(self, message_id: int) -> None:
        """End the active branch just before `message_id`, so the next message added becomes its
        alternative (regenerate a reply, edit and resend a message). The old branch is kept.
        """
        message = self._require(message_id)
        with self._conn:
            self._conn.execute(
                "UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                (self._parent_of(message_id), message.conversation_id),
            )

    def branches(self, conversation_id: int) -> dict[int, tuple[int, int]]:
        """For each message that has alternatives: (its 1-based position among them, how many)."""
        rows = self._conn.execute(
            "SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        ).fetchall()
        siblings: dict[int | None, list[int]] = {}
        for r in rows:
            siblings.setdefault(r["parent_id"], []).append(r["id"])
        return {
            message_id: (position, len(group))
            for group in siblings.values()
            if len(group) > 1
            for position, message_id in enumerate(group, start=1)
        }

    def switch_branch(self, message_id: int, step: int) -> int | None:
        """Show the alternative `step` places before or after `message_id` (wrapping around), down to
        its newest end. Returns the alternative's id, or None when the message has none.
        """
        message = self._require(message_id)
        parent = self._parent_of(message_id)
        siblings = [
            r["id"]
            for r in self._conn.execute(
                "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? ORDER BY id",
                (message.conversation_id, parent),
            )
        ]
        if len(siblings) < 2:
            return None
        chosen = siblings[(siblings.index(message_id) + step) % len(siblings)]
        self.show_branch_of(chosen)
        return chosen

    def show_branch_of(self, message_id: int) -> None:
        """Make the active branch pass through `message_id` (e.g. a search hit in another branch),
        continuing to the newest message below it.
        """
        message = self._require(message_id)
        leaf = self._leaf_below(message.conversation_id, message_id)
        with self._conn:
            self._conn.execute(
                "UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (leaf, message.conversation_id)
            )

    def delete_message(self, message_id: int) -> None:
        """Remove one message; what followed it now follows its predecessor. When it ended the active
        branch, the chat ends at its newest alternative, or else at its predecessor. One transaction.
        """
        message = self._require(message_id)
        conversation = self.conversation(message.conversation_id)
        assert conversation is not None
        with self._conn:
            parent = self._parent_of(message_id)
            self._conn.execute(
                "UPDATE messages SET parent_id = ? WHERE conversation_id = ? AND parent_id = ?",
                (parent, message.conversation_id, message_id),
            )
            self._conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if conversation.context_start_id == message_id:
                self._conn.execute(
                    "UPDATE conversations SET context_start_id = NULL WHERE id = ?",
                    (message.conversation_id,),
                )
            if conversation.active_leaf_id == message_id:
                alternative = self._conn.execute(
                    "SELECT MAX(id) FROM messages WHERE conversation_id = ? AND parent_id IS ?",
                    (message.conversation_id, parent),
                ).fetchone()[0]
                leaf = self._leaf_below(message.conversation_id, alternative) if alternative else parent
                self._conn.execute(
                    "UPDATE conversations SET active_leaf_id = ? WHERE id = ?",
                    (leaf, message.conversation_id),
                )

    def _leaf_below(self, conversation_id: int, message_id: int) -> int:
        """The newest end of the branch that goes on from `message_id`."""
        leaf = message_id
        while True:
            child = self._conn.execute(
                "SELECT MAX(id) FROM messages WHERE conversation_id = ? AND parent_id = ?",
                (conversation_id, leaf),
            ).fetchone()[0]
            if child is None:
                return leaf
            leaf = child

    def _require(self, message_id: int) -> ChatMessage:
        message = self.message(message_id)
        if message is None:
            raise MessageNotFoundError(message_id)
        return message

    def _parent_of(self, message_id: int) -> int | None:
        row = self._conn.execute("SELECT parent_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else row[0]

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
        r["active_leaf_id"],
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

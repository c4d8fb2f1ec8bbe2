"""Full-text search across conversations, and export to Markdown and JSON (with a JSON round trip)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.chat.export import import_json, to_json, to_markdown
from app.chat.store import ChatStore, MessageStatus, fts_query
from app.core.data_home import DataHome
from app.core.errors import ChatImportError
from app.engine.generation import GenerationStats, StopReason
from tests.support.cli import REPO


@pytest.fixture
def store(data_home: DataHome) -> ChatStore:
    s = ChatStore(data_home.chats_db)
    bread = s.create_conversation()
    s.set_system_prompt(bread.id, "You are a baker.")
    s.add_message(bread.id, "user", "How do I bake sourdough bread at home?")
    reply = s.add_message(bread.id, "assistant", "", MessageStatus.STREAMING, model="SmolLM2")
    stats = GenerationStats(30, 0, 12, 0.1, 0.5, StopReason.END_OF_TURN)
    s.finish_message(reply.id, "Use a lively starter and a hot Dutch oven.", MessageStatus.COMPLETE, stats)
    trip = s.create_conversation()
    s.add_message(trip.id, "user", "Plan a café crawl in Zürich")
    cut = s.add_message(trip.id, "assistant", "", MessageStatus.STREAMING, model="SmolLM2")
    s.finish_message(cut.id, "Start at the old town, then", MessageStatus.STOPPED, None)
    return s


def test_search_finds_words_across_chats_best_first(store: ChatStore) -> None:
    [hit] = store.search("dutch ov")  # the last word is a prefix
    assert hit.role == "assistant" and hit.snippet == "Use a lively starter and a hot [Dutch] [oven]."
    assert hit.conversation_title.startswith("How do I bake")
    assert [h.role for h in store.search("cafe zurich")] == ["user"], "accents do not matter"


def test_search_follows_edits_and_deletes(store: ChatStore) -> None:
    [conversation] = [c for c in store.conversations() if c.title.startswith("Plan")]
    reply = store.messages(conversation.id)[1]
    store.update_message_text(reply.id, "Start at the Lindenhof viewpoint")
    assert [h.message_id for h in store.search("lindenhof")] == [reply.id]
    store.delete_conversation(conversation.id)
    assert store.search("lindenhof") == [] and store.search("zurich") == []


@pytest.mark.parametrize("text", ['"', "AND OR NOT", "col:umn", "(((", "*", "-", "  "])
def test_any_text_is_a_safe_query(store: ChatStore, text: str) -> None:
    store.search(text)  # no FTS5 syntax error reaches the user
    assert fts_query("a b") == '"a" "b"*'


def test_an_old_database_gets_indexed_when_upgraded(data_home: DataHome) -> None:
    import sqlite3

    old = sqlite3.connect(data_home.chats_db)
    old.executescript(
        "CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created_at REAL NOT NULL,"
        " updated_at REAL NOT NULL);"
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, role TEXT NOT NULL,"
        " content TEXT NOT NULL, status TEXT NOT NULL, model TEXT, stats TEXT,"
        " created_at REAL NOT NULL);"
        "INSERT INTO conversations VALUES (1, 'Old chat', 0, 0);"
        "INSERT INTO messages VALUES (1, 1, 'user', 'an heirloom tomato', 'complete', NULL, NULL, 0);"
        "PRAGMA user_version=1;"
    )
    old.close()
    upgraded = ChatStore(data_home.chats_db)
    assert [h.message_id for h in upgraded.search("heirloom")] == [1]


def test_markdown_export_reads_well(store: ChatStore) -> None:
    [bread, trip] = sorted(store.conversations(), key=lambda c: c.id)
    text = to_markdown(bread, store.messages(bread.id))
    assert text.startswith("# How do I bake sourdough bread at home?\n")
    assert "> You are a baker." in text and "## You\n\nHow do I bake" in text
    assert "## SmolLM2\n\nUse a lively starter" in text
    assert "(stopped, incomplete)" in to_markdown(trip, store.messages(trip.id))


def test_json_export_round_trips(store: ChatStore, data_home: DataHome, tmp_path: Path) -> None:
    [bread, _trip] = sorted(store.conversations(), key=lambda c: c.id)
    exported = to_json(bread, store.messages(bread.id))
    other = ChatStore(tmp_path / "other.sqlite3")
    imported = import_json(other, exported)
    assert imported.title == bread.title and imported.system_prompt == "You are a baker."

    def essence(s: ChatStore, cid: int) -> list[tuple[object, ...]]:
        return [(m.role, m.content, m.status, m.model, m.stats) for m in s.messages(cid)]

    assert essence(other, imported.id) == essence(store, bread.id)
    assert (
        json.loads(to_json(imported, other.messages(imported.id)))["messages"]
        == json.loads(exported)["messages"]
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "other"}',
        '{"format": "llama-desk-conversation", "version": 9}',
        '{"format": "llama-desk-conversation", "version": 1, "title": "x", "messages": [{}]}',
    ],
)
def test_foreign_or_damaged_files_are_refused(store: ChatStore, text: str) -> None:
    with pytest.raises(ChatImportError):
        import_json(store, text)


def test_cli_search_export_and_import(store: ChatStore, tmp_path: Path) -> None:
    def chats(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "chats", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ},
            timeout=60,
        )

    found = chats("search", "sourdough")
    assert found.returncode == 0 and "[sourdough]" in found.stdout
    out = tmp_path / "bread.json"
    assert chats("export", "1", "--format", "json", "-o", str(out)).returncode == 0
    markdown = chats("export", "1")
    assert markdown.stdout.startswith("# How do I bake")
    imported = chats("import", str(out))
    assert imported.returncode == 0 and "as #3" in imported.stdout
    missing = chats("export", "99")
    assert missing.returncode != 0 and "No conversation #99" in missing.stderr


_KILLED_IMPORT = """
import os, signal, sys
from pathlib import Path
from app.chat.export import import_json
from app.chat.store import ChatStore
from app.engine.generation import GenerationStats

calls = [0]
real = GenerationStats.to_json
def to_json(self):
    calls[0] += 1
    if calls[0] == 25:  # mid-way through the messages, inside the import's writes
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self)
GenerationStats.to_json = to_json
store = ChatStore(Path(sys.argv[1]))
import_json(store, Path(sys.argv[2]).read_text(encoding="utf-8"))
"""


def test_a_kill_mid_import_leaves_no_half_imported_chat(
    store: ChatStore, data_home: DataHome, tmp_path: Path
) -> None:
    conversation = store.create_conversation("Long chat")
    stats = GenerationStats(30, 0, 12, 0.1, 0.5, StopReason.END_OF_TURN)
    for i in range(30):
        store.add_message(conversation.id, "user", f"question {i}")
        reply = store.add_message(conversation.id, "assistant", "", MessageStatus.STREAMING)
        store.finish_message(reply.id, f"answer {i}", MessageStatus.COMPLETE, stats)
    export = tmp_path / "long.json"
    export.write_text(to_json(conversation, store.messages(conversation.id)), encoding="utf-8")
    store.delete_conversation(conversation.id)
    before = [(c.id, c.title) for c in store.conversations()]
    store.close()

    child = subprocess.run(
        [sys.executable, "-c", _KILLED_IMPORT, str(data_home.chats_db), str(export)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -9, child.stderr
    after = ChatStore(data_home.chats_db)
    try:
        assert [(c.id, c.title) for c in after.conversations()] == before
        assert after.recover_interrupted() == 0, "no message was left 'streaming'"
        imported = import_json(after, export.read_text(encoding="utf-8"))  # and it imports whole later
        assert len(after.messages(imported.id)) == 60 and imported.title == "Long chat"
    finally:
        after.close()


def test_a_streaming_reply_is_indexed_once_when_it_ends(store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Tell me about lighthouses")
    reply = store.add_message(conversation.id, "assistant", "", MessageStatus.STREAMING)
    store.update_message_text(reply.id, "Lighthouses guide ships past the")
    assert store.search("ships") == [], "text still streaming is not indexed at every flush"
    store.finish_message(reply.id, "Lighthouses guide ships past the rocks.", MessageStatus.COMPLETE, None)
    assert [h.message_id for h in store.search("ships rocks")] == [reply.id]
    store.delete_message(reply.id)
    assert store.search("ships") == []


def test_a_store_opened_again_does_not_migrate_again(
    data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    ChatStore(data_home.chats_db).close()
    calls: list[int] = []
    real = ChatStore._migrate
    monkeypatch.setattr(ChatStore, "_migrate", lambda self: calls.append(1) or real(self))
    ChatStore(data_home.chats_db).close()
    assert calls == []

"""Regenerate, edit-and-resend and delete keep every branch of a chat; the active one is what's shown."""

from __future__ import annotations

import sqlite3

import pytest

from app.chat.store import ChatStore
from app.core.data_home import DataHome
from app.core.errors import MessageNotFoundError


@pytest.fixture
def store(data_home: DataHome) -> ChatStore:
    return ChatStore(data_home.chats_db)


def texts(store: ChatStore, conversation_id: int) -> list[str]:
    return [m.content for m in store.messages(conversation_id)]


def test_regenerating_a_reply_keeps_the_old_one_as_a_branch(store: ChatStore) -> None:
    chat = store.create_conversation().id
    store.add_message(chat, "user", "Q1")
    first = store.add_message(chat, "assistant", "A1").id

    store.rewind_to_parent_of(first)
    assert texts(store, chat) == ["Q1"]
    second = store.add_message(chat, "assistant", "A1 again").id

    assert texts(store, chat) == ["Q1", "A1 again"]
    assert store.branches(chat) == {first: (1, 2), second: (2, 2)}
    assert store.switch_branch(second, -1) == first
    assert texts(store, chat) == ["Q1", "A1"]
    assert store.switch_branch(first, -1) == second  # wraps around
    assert texts(store, chat) == ["Q1", "A1 again"]


def test_editing_an_early_message_starts_a_branch_and_switching_back_restores_the_rest(
    store: ChatStore,
) -> None:
    chat = store.create_conversation().id
    q1 = store.add_message(chat, "user", "Q1").id
    store.add_message(chat, "assistant", "A1")
    store.add_message(chat, "user", "Q2")
    store.add_message(chat, "assistant", "A2")

    store.rewind_to_parent_of(q1)
    edited = store.add_message(chat, "user", "Q1 edited").id
    store.add_message(chat, "assistant", "A1'")
    assert texts(store, chat) == ["Q1 edited", "A1'"]

    store.switch_branch(edited, +1)
    assert texts(store, chat) == ["Q1", "A1", "Q2", "A2"]  # the whole old branch, down to its end
    assert store.branches(chat) == {q1: (1, 2), edited: (2, 2)}


def test_show_branch_of_a_search_hit_in_another_branch(store: ChatStore) -> None:
    chat = store.create_conversation().id
    store.add_message(chat, "user", "Q1")
    old = store.add_message(chat, "assistant", "old answer about otters").id
    store.rewind_to_parent_of(old)
    store.add_message(chat, "assistant", "new answer")

    [hit] = store.search("otters")
    store.show_branch_of(hit.message_id)
    assert texts(store, chat) == ["Q1", "old answer about otters"]


def test_deleting_a_middle_message_keeps_what_followed(store: ChatStore) -> None:
    chat = store.create_conversation().id
    store.add_message(chat, "user", "Q1")
    a1 = store.add_message(chat, "assistant", "A1").id
    store.add_message(chat, "user", "Q2")
    store.set_context_start(chat, a1)

    store.delete_message(a1)
    assert texts(store, chat) == ["Q1", "Q2"]
    conversation = store.conversation(chat)
    assert conversation is not None and conversation.context_start_id is None
    assert store.search("A1") == []  # gone from the search index too


def test_deleting_the_shown_reply_shows_its_alternative_or_else_its_question(store: ChatStore) -> None:
    chat = store.create_conversation().id
    store.add_message(chat, "user", "Q1")
    a = store.add_message(chat, "assistant", "A").id
    store.rewind_to_parent_of(a)
    b = store.add_message(chat, "assistant", "B").id

    store.delete_message(b)
    assert texts(store, chat) == ["Q1", "A"]
    assert store.branches(chat) == {}
    store.delete_message(a)
    assert texts(store, chat) == ["Q1"]
    store.add_message(chat, "assistant", "C")
    assert texts(store, chat) == ["Q1", "C"]


def test_a_missing_message_is_a_clear_error(store: ChatStore) -> None:
    with pytest.raises(MessageNotFoundError, match="no longer exists"):
        store.delete_message(12345)


def test_chats_from_before_branches_open_as_the_same_list(data_home: DataHome) -> None:
    """A schema-4 database (no parent links) migrates to a chain in message order."""
    conn = sqlite3.connect(data_home.chats_db)
    conn.executescript(
        """
        CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL, created_at REAL NOT NULL,
            updated_at REAL NOT NULL, system_prompt TEXT, context_start_id INTEGER, sampling TEXT);
        CREATE TABLE messages (id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL, role TEXT NOT NULL,
            content TEXT NOT NULL, status TEXT NOT NULL, model TEXT, stats TEXT, created_at REAL NOT NULL);
        INSERT INTO conversations VALUES (1, 'old', 0, 0, NULL, NULL, NULL),
            (2, 'other', 0, 0, NULL, NULL, NULL);
        INSERT INTO messages VALUES (1, 1, 'user', 'a', 'complete', NULL, NULL, 0),
            (2, 2, 'user', 'x', 'complete', NULL, NULL, 0),
            (3, 1, 'assistant', 'b', 'complete', NULL, NULL, 0),
            (4, 1, 'user', 'c', 'complete', NULL, NULL, 0);
        PRAGMA user_version=4;
        """
    )
    conn.close()

    store = ChatStore(data_home.chats_db)
    assert texts(store, 1) == ["a", "b", "c"]
    assert texts(store, 2) == ["x"]
    assert store.branches(1) == {}
    store.add_message(1, "assistant", "d")
    assert texts(store, 1) == ["a", "b", "c", "d"]

"""Conversations in SQLite: round trips, titles, deletion, crash recovery, replies saved as they grow."""

from __future__ import annotations

import threading

import pytest

from app.chat.reply import write_reply
from app.chat.store import DEFAULT_TITLE, ChatStore, MessageStatus
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams, StopReason
from app.engine.session import ModelSession


@pytest.fixture
def store(data_home: DataHome) -> ChatStore:
    return ChatStore(data_home.chats_db)


def test_messages_survive_reopening(data_home: DataHome, store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Hello")
    store.add_message(conversation.id, "assistant", "Hi! How can I help?")
    store.close()

    reopened = ChatStore(data_home.chats_db)
    [again] = reopened.conversations()
    assert again.id == conversation.id
    assert [(m.role, m.content) for m in reopened.messages(conversation.id)] == [
        ("user", "Hello"),
        ("assistant", "Hi! How can I help?"),
    ]


def test_first_user_message_names_the_chat(store: ChatStore) -> None:
    conversation = store.create_conversation()
    assert conversation.title == DEFAULT_TITLE
    store.add_message(
        conversation.id, "user", "  Plan a three-day\ntrip to Lisbon with kids, on a budget please  "
    )
    store.add_message(conversation.id, "user", "Second message")
    title = store.conversation(conversation.id).title  # type: ignore[union-attr]
    assert title.startswith("Plan a three-day trip to Lisbon")
    assert len(title) <= 48 and title.endswith("…")


def test_rename_keeps_a_title(store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.rename_conversation(conversation.id, "Trip ideas")
    assert store.conversation(conversation.id).title == "Trip ideas"  # type: ignore[union-attr]
    store.rename_conversation(conversation.id, "   ")
    assert store.conversation(conversation.id).title == DEFAULT_TITLE  # type: ignore[union-attr]


def test_delete_removes_messages_too(store: ChatStore) -> None:
    keep = store.create_conversation()
    gone = store.create_conversation()
    store.add_message(keep.id, "user", "keep me")
    store.add_message(gone.id, "user", "delete me")
    store.delete_conversation(gone.id)
    assert [c.id for c in store.conversations()] == [keep.id]
    assert store.messages(gone.id) == []
    assert [m.content for m in store.messages(keep.id)] == ["keep me"]


def test_most_recently_active_chat_comes_first(store: ChatStore) -> None:
    older = store.create_conversation()
    newer = store.create_conversation()
    store.add_message(older.id, "user", "bump")
    assert [c.id for c in store.conversations()] == [older.id, newer.id]


def test_streaming_leftovers_are_marked_interrupted(store: ChatStore) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Hi")
    left = store.add_message(conversation.id, "assistant", "Half a rep", MessageStatus.STREAMING)
    assert store.recover_interrupted() == 1
    [_, recovered] = store.messages(conversation.id)
    assert recovered.id == left.id
    assert recovered.status is MessageStatus.INTERRUPTED
    assert recovered.content == "Half a rep"
    assert store.recover_interrupted() == 0


def test_reply_is_saved_complete_with_stats(store: ChatStore, starter_session: ModelSession) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Say hello.")
    started: list[int] = []
    streamed: list[str] = []
    outcome = write_reply(
        store,
        starter_session,
        conversation.id,
        GenerationParams(temperature=0.0, max_tokens=40),
        on_started=started.append,
        on_text=streamed.append,
        cancel=threading.Event(),
    )
    [_, saved] = store.messages(conversation.id)
    assert started == [saved.id] == [outcome.message_id]
    assert saved.status is MessageStatus.COMPLETE
    assert saved.content == outcome.text == "".join(streamed) != ""
    assert saved.stats is not None and saved.stats.completion_tokens > 0
    assert saved.model == starter_session.info.name


def test_stopped_reply_is_kept_and_marked_incomplete(store: ChatStore, starter_session: ModelSession) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Write a long story about a lighthouse keeper.")
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 5:
            cancel.set()

    outcome = write_reply(
        store,
        starter_session,
        conversation.id,
        GenerationParams(temperature=0.0, max_tokens=500),
        on_started=lambda _id: None,
        on_text=on_text,
        cancel=cancel,
    )
    [_, saved] = store.messages(conversation.id)
    assert outcome.status is MessageStatus.STOPPED
    assert saved.status is MessageStatus.STOPPED and saved.status.is_incomplete
    assert saved.content == "".join(pieces)
    assert saved.stats is not None and saved.stats.stop_reason is StopReason.CANCELLED


def test_growing_reply_is_flushed_while_streaming(
    data_home: DataHome, store: ChatStore, starter_session: ModelSession
) -> None:
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Write a long story about a lighthouse keeper.")
    observer = ChatStore(data_home.chats_db)  # another connection, like a second process would have
    seen_in_db: list[tuple[MessageStatus, str]] = []
    pieces: list[str] = []

    def on_text(text: str) -> None:
        pieces.append(text)
        if len(pieces) == 6:
            reply_row = observer.messages(conversation.id)[-1]
            seen_in_db.append((reply_row.status, reply_row.content))

    write_reply(
        store,
        starter_session,
        conversation.id,
        GenerationParams(temperature=0.0, max_tokens=12),
        on_started=lambda _id: None,
        on_text=on_text,
        cancel=threading.Event(),
        flush_interval_s=0.0,
    )
    [(status, content)] = seen_in_db
    assert status is MessageStatus.STREAMING
    assert content == "".join(pieces[:5])  # flushed up to the previous piece

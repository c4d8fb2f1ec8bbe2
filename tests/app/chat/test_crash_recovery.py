"""Killing the process mid-reply keeps every earlier message and the partial reply, marked incomplete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from app.chat.store import ChatStore, MessageStatus
from app.core.data_home import DataHome
from tests.support.cli import REPO


def test_kill_during_reply_keeps_history_and_partial_reply(data_home: DataHome) -> None:
    store = ChatStore(data_home.chats_db)
    conversation = store.create_conversation()
    store.add_message(conversation.id, "user", "Hello")
    store.add_message(conversation.id, "assistant", "Hi! What shall we write?")
    store.add_message(conversation.id, "user", "Write a long story about a lighthouse keeper.")

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.reply_until_killed",
            str(data_home.chats_db),
            str(conversation.id),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    for pieces, line in enumerate(child.stdout, start=1):
        assert line.strip() != "finished", "the reply ended before the test could kill it"
        if pieces == 8:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(30)
    assert child.returncode == -signal.SIGKILL

    reopened = ChatStore(data_home.chats_db)
    assert reopened.recover_interrupted() == 1
    messages = reopened.messages(conversation.id)
    assert [(m.role, m.content, m.status) for m in messages[:3]] == [
        ("user", "Hello", MessageStatus.COMPLETE),
        ("assistant", "Hi! What shall we write?", MessageStatus.COMPLETE),
        ("user", "Write a long story about a lighthouse keeper.", MessageStatus.COMPLETE),
    ]
    partial = messages[3]
    assert partial.role == "assistant"
    assert partial.status is MessageStatus.INTERRUPTED and partial.status.is_incomplete
    assert partial.content.strip(), "the text streamed before the kill is kept"

"""Run one reply into a chats database, slowly, printing each piece, until the test kills us.

Usage: python -m tests.helpers.reply_until_killed CHATS_DB CONVERSATION_ID
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from app.chat.reply import write_reply
from app.chat.store import ChatStore
from app.core.starter import starter_model_path
from app.engine.generation import GenerationParams
from app.engine.session import ModelSession


def main() -> None:
    db, conversation_id = Path(sys.argv[1]), int(sys.argv[2])

    def on_text(text: str) -> None:
        print("piece", flush=True)
        time.sleep(0.05)

    with ModelSession(starter_model_path(), n_ctx=1024) as session:
        write_reply(
            ChatStore(db),
            session,
            conversation_id,
            GenerationParams(temperature=0.0, max_tokens=2000),
            on_started=lambda _id: None,
            on_text=on_text,
            cancel=threading.Event(),
            flush_interval_s=0.0,
        )
    print("finished", flush=True)


if __name__ == "__main__":
    main()

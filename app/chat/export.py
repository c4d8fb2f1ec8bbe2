"""Conversations out of the app (Markdown to read, JSON to keep) and JSON back in."""

from __future__ import annotations

import datetime
import json
from typing import Any

from app.chat.store import ChatMessage, ChatStore, Conversation, ImportedMessage, MessageStatus
from app.core.errors import ChatImportError
from app.engine.generation import GenerationStats

JSON_FORMAT = "llama-desk-conversation"
JSON_VERSION = 1


def to_markdown(conversation: Conversation, messages: list[ChatMessage]) -> str:
    lines = [
        f"# {conversation.title}",
        "",
        f"*Exported from Llama Desk on {_date(conversation.updated_at)}*",
        "",
    ]
    if conversation.system_prompt:
        lines += ["**System prompt:**", "", _quote(conversation.system_prompt), ""]
    for message in messages:
        who = "You" if message.role == "user" else (message.model or "Assistant")
        note = "" if not message.status.is_incomplete else f" *({message.status.value}, incomplete)*"
        lines += [f"## {who}{note}", "", message.content, ""]
    return "\n".join(lines).rstrip() + "\n"


def to_json(conversation: Conversation, messages: list[ChatMessage]) -> str:
    payload: dict[str, Any] = {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "system_prompt": conversation.system_prompt,
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "status": m.status.value,
                "model": m.model,
                "created_at": m.created_at,
                "stats": m.stats.to_json() if m.stats else None,
            }
            for m in messages
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def import_json(store: ChatStore, text: str) -> Conversation:
    """Add a conversation exported by `to_json`; refuses other files with a clear message."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise ChatImportError(f"This is not a Llama Desk conversation file (not JSON: {exc}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != JSON_FORMAT:
        raise ChatImportError("This JSON file is not a Llama Desk conversation export.")
    if payload.get("version") != JSON_VERSION:
        raise ChatImportError(
            f"This export has version {payload.get('version')}; this app reads {JSON_VERSION}."
        )
    try:
        title = str(payload["title"])
        created_at = float(payload["created_at"])
        system_prompt = payload.get("system_prompt")
        messages = [_imported_message(m) for m in payload["messages"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ChatImportError(f"The conversation file is damaged ({type(exc).__name__}: {exc}).") from exc
    return store.import_conversation(title, created_at, str(system_prompt or "") or None, messages)


def _imported_message(m: Any) -> ImportedMessage:
    if not isinstance(m, dict):
        raise TypeError(f"a message is a {type(m).__name__}, not an object")
    role = m["role"]
    if role not in ("system", "user", "assistant"):
        raise ValueError(f"a message has the role {str(role)[:40]!r}")
    content = m["content"]
    if not isinstance(content, str):
        raise TypeError("a message's content is not text")
    status = MessageStatus(m["status"])
    if status is MessageStatus.STREAMING:  # exported mid-reply: it will never finish now
        status = MessageStatus.INTERRUPTED
    model = m.get("model")
    return ImportedMessage(
        role,
        content,
        status,
        None if model is None else str(model),
        float(m["created_at"]),
        GenerationStats.from_json(m["stats"]) if m.get("stats") else None,
    )


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines())


def _date(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")

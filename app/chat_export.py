"""Conversations out of the app (Markdown to read, JSON to keep) and JSON back in."""

from __future__ import annotations

import datetime
import json
from typing import Any

from app.chat_store import ChatMessage, ChatStore, Conversation, MessageStatus
from app.errors import ChatImportError
from app.generation import GenerationStats

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
        conversation = store.create_conversation(
            str(payload["title"]), created_at=float(payload["created_at"])
        )
        if payload.get("system_prompt"):
            store.set_system_prompt(conversation.id, str(payload["system_prompt"]))
        for m in payload["messages"]:
            added = store.add_message(
                conversation.id,
                m["role"],
                m["content"],
                MessageStatus.STREAMING,
                m.get("model"),
                created_at=float(m["created_at"]),
            )
            stats = GenerationStats.from_json(m["stats"]) if m.get("stats") else None
            store.finish_message(added.id, m["content"], MessageStatus(m["status"]), stats)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChatImportError(f"The conversation file is damaged ({type(exc).__name__}: {exc}).") from exc
    store.rename_conversation(conversation.id, str(payload["title"]))
    imported = store.conversation(conversation.id)
    assert imported is not None
    return imported


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in text.splitlines())


def _date(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")

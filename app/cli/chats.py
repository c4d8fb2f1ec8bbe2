"""`llama-desk chats ...`: list, search, export and import conversations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.chat.export import import_json, to_json, to_markdown
from app.chat.store import ChatStore
from app.core.data_home import DataHome
from app.core.errors import ConversationNotFoundError, UnreadableFileError


def add_chats_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chats = commands.add_parser("chats", help="list, search, export and import conversations")
    sub = chats.add_subparsers(dest="chats_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="every conversation, most recent first").set_defaults(handler=_cmd_list)
    search = sub.add_parser("search", help="full-text search across all conversations")
    search.add_argument("query", metavar="WORDS")
    search.set_defaults(handler=_cmd_search)
    export = sub.add_parser("export", help="write a conversation as Markdown or JSON")
    export.add_argument("conversation_id", type=int, metavar="ID")
    export.add_argument("--format", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(handler=_cmd_export)
    importing = sub.add_parser("import", help="add a conversation from a JSON export")
    importing.add_argument("path", type=Path, metavar="FILE")
    importing.set_defaults(handler=_cmd_import)


def _store() -> ChatStore:
    return ChatStore(DataHome.resolve().ensure().chats_db)


def _cmd_list(_args: argparse.Namespace) -> int:
    store = _store()
    for conversation in store.conversations():
        print(f"{conversation.id:>5}  {conversation.title}")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    hits = _store().search(args.query)
    for hit in hits:
        print(f"#{hit.conversation_id} {hit.conversation_title} — {hit.role}: {hit.snippet}")
    if not hits:
        print(f"No message matches {args.query!r}.", file=sys.stderr)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    store = _store()
    conversation = store.conversation(args.conversation_id)
    if conversation is None:
        raise ConversationNotFoundError(args.conversation_id)
    render = to_json if args.format == "json" else to_markdown
    text = render(conversation, store.messages(conversation.id))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"Wrote {args.output}.", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    try:
        text = args.path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UnreadableFileError(args.path, exc.strerror or str(exc)) from exc
    conversation = import_json(_store(), text)
    print(f"Imported “{conversation.title}” as #{conversation.id}.")
    return 0

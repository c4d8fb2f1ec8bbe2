"""Splitting a reply into Markdown blocks, without Qt: what the chat view renders block by block.

A reply is split into fenced code blocks and paragraph-ish chunks of text (a paragraph, a whole
list, a table, a heading), so a reply still streaming re-renders only its last block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-+*]|\d{1,9}[.)])(?:\s|$)")
# Anything Qt's Markdown reader (GitHub dialect) would treat as syntax; text without any is drawn
# as plain text, which looks the same and is cheaper to lay out.
_MARKDOWN_HINT = re.compile(
    r"[*_`#>|\[\]\\&~]|https?://|www\.|@|^ {0,3}(?:[-+]|\d{1,9}[.)])(?:\s|$)|^ {0,3}(?:-{3,}|={3,})\s*$"
    r"|^(?: {4}|\t)",
    re.MULTILINE,
)


def looks_like_markdown(text: str) -> bool:
    """Whether rendering `text` as Markdown could differ from showing it as plain text."""
    return _MARKDOWN_HINT.search(text) is not None


class BlockKind(StrEnum):
    TEXT = "text"
    CODE = "code"


@dataclass(frozen=True)
class Block:
    """One block of a reply: Markdown text, or the code of a fenced block (without its fences)."""

    kind: BlockKind
    source: str
    language: str = ""
    closed: bool = True  # a code block whose closing fence has arrived (lexed whole from then on)


def split_blocks(text: str) -> list[Block]:
    """Split a reply into blocks. An unclosed fence (a reply still streaming) is a code block so far."""
    blocks: list[Block] = []
    chunk: list[str] = []

    def end_chunk() -> None:
        source = "\n".join(chunk).strip("\n")
        if source.strip():
            blocks.append(Block(BlockKind.TEXT, source))
        chunk.clear()

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            end_chunk()
            marker = fence.group(1)
            code: list[str] = []
            i += 1
            closed = False
            while i < len(lines):
                stripped = lines[i].strip()
                if stripped.startswith(marker[0] * len(marker)) and not stripped.strip(marker[0]):
                    closed = True
                    break
                code.append(lines[i])
                i += 1
            blocks.append(Block(BlockKind.CODE, "\n".join(code).rstrip("\n"), fence.group(2), closed))
            i += 1
            continue
        if not line.strip() and chunk and not _continues_list(chunk, lines, i):
            end_chunk()
        else:
            chunk.append(line)
        i += 1
    end_chunk()
    return blocks


def _continues_list(chunk: list[str], lines: list[str], blank: int) -> bool:
    """Whether the blank line at `blank` sits inside a list (loose items, or an item's next paragraph)."""
    if not _LIST_ITEM.match(chunk[0]):
        return False
    for line in lines[blank + 1 :]:
        if line.strip():
            return bool(_LIST_ITEM.match(line) or line.startswith(("  ", "\t")))
    return False

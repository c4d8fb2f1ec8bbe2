"""Syntax highlighting of fenced code blocks with Pygments, into a QTextDocument.

Lexers and character formats are cached, and adjacent tokens of the same format are inserted
as one run, so re-highlighting the code block that is still streaming stays cheap.
"""

from __future__ import annotations

import functools
import re

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.style import StyleMeta
from pygments.styles import get_style_by_name
from pygments.token import Text, _TokenType
from pygments.util import ClassNotFound
from PySide6.QtGui import QBrush, QColor, QFont, QTextCharFormat, QTextCursor, QTextDocument, QTextOption

LIGHT_STYLE = "xcode"
DARK_STYLE = "github-dark"

# Names models write after ``` that Pygments knows by another name.
_ALIASES = {"py3": "python", "sh": "bash", "shell": "bash", "zsh": "bash", "console": "bash", "jsonc": "json"}


@functools.lru_cache(maxsize=64)
def lexer_for(language: str) -> Lexer:
    """The lexer for a fence's info string ("python", "js", ...); plain text when unknown or empty."""
    name = language.strip().lower()
    name = _ALIASES.get(name, name)
    if not name:
        return TextLexer(stripnl=False, ensurenl=False)
    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


@functools.lru_cache(maxsize=2)
def _style(dark: bool) -> StyleMeta:
    return get_style_by_name(DARK_STYLE if dark else LIGHT_STYLE)


@functools.lru_cache(maxsize=1024)
def _format(token: _TokenType, dark: bool, default_color: str) -> QTextCharFormat:
    style = _style(dark).style_for_token(token)
    fmt = QTextCharFormat()
    fmt.setForeground(QBrush(QColor(f"#{style['color']}" if style["color"] else default_color)))
    if style["bold"]:
        fmt.setFontWeight(QFont.Weight.Bold)
    if style["italic"]:
        fmt.setFontItalic(True)
    return fmt


Run = tuple[str, QTextCharFormat]
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n)")


def code_document(
    code: str, language: str, font: QFont, text_color: QColor, dark: bool, *, growing: bool = False
) -> QTextDocument:
    """A document of `code` in `font`, coloured token by token, wrapping anywhere (no horizontal scroll).

    `growing`: a block still streaming in. It is lexed paragraph by paragraph (split at blank
    lines), each paragraph's tokens cached, so a batch costs the last paragraph, not the whole
    block. A construct spanning a blank line (a docstring with paragraphs) may be coloured wrongly
    until the fence closes and the block is lexed whole.
    """
    document = QTextDocument()
    document.setDocumentMargin(0)
    document.setDefaultFont(font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    document.setDefaultTextOption(option)
    cursor = QTextCursor(document)
    cursor.beginEditBlock()  # one layout for all the runs, not one per run
    if growing:
        _insert_paragraphs(cursor, code, language, dark, text_color.name())
    else:
        for text, fmt in _lex(code, language, dark, text_color.name()):
            cursor.insertText(text, fmt)
    cursor.endEditBlock()
    return document


def extend_code_document(
    document: QTextDocument, old_code: str, code: str, language: str, text_color: QColor, dark: bool
) -> None:
    """Grow a growing block's document from `old_code` to `code` (which starts with it) in place.

    Only the old last paragraph and what follows are replaced, so Qt re-lays out just those lines.
    """
    breaks = list(_PARAGRAPH_BREAK.finditer(old_code))
    start = breaks[-1].end() if breaks else 0
    cursor = QTextCursor(document)
    cursor.beginEditBlock()
    cursor.setPosition(len(code[:start].encode("utf-16-le")) // 2)  # Qt counts UTF-16 units
    cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
    cursor.removeSelectedText()
    _insert_paragraphs(cursor, code[start:], language, dark, text_color.name())
    cursor.endEditBlock()


def _insert_paragraphs(cursor: QTextCursor, code: str, language: str, dark: bool, default_color: str) -> None:
    parts = _PARAGRAPH_BREAK.split(code)  # paragraphs at even positions, breaks at odd ones
    for number, part in enumerate(parts):
        if number % 2:
            cursor.insertText(part, _format(Text, dark, default_color))
        elif part:
            for text, fmt in _runs(part, language, dark, default_color):
                cursor.insertText(text, fmt)


@functools.lru_cache(maxsize=512)
def _runs(code: str, language: str, dark: bool, default_color: str) -> tuple[Run, ...]:
    return tuple(_lex(code, language, dark, default_color))


def _lex(code: str, language: str, dark: bool, default_color: str) -> list[Run]:
    """The tokens of `code` as runs of text, adjacent tokens of the same format joined."""
    runs: list[Run] = []
    pending: list[str] = []
    pending_format: QTextCharFormat | None = None
    for token, value in lexer_for(language).get_tokens(code):
        fmt = _format(token, dark, default_color)
        if fmt is not pending_format and pending and pending_format is not None:
            runs.append(("".join(pending), pending_format))
            pending = []
        pending_format = fmt
        pending.append(value)
    if pending and pending_format is not None:
        runs.append(("".join(pending), pending_format))
    return runs

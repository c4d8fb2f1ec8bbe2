"""Markdown replies, rendered block by block so a streaming reply only re-renders its last block.

A reply is split into blocks: fenced code blocks and paragraph-ish chunks of text (a paragraph,
a whole list, a table, a heading). Each block becomes its own QTextDocument, text through Qt's
Markdown reader (GitHub dialect, raw HTML shown as text), code through Pygments. Rendered
blocks are kept per (message id, block index) and reused while their source is unchanged, so
a reply growing every 50 ms re-renders one block per batch, however long it is.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QBrush,
    QFont,
    QFontDatabase,
    QFontInfo,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPalette,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
    QTextLength,
    QTextTable,
    QTextTableFormat,
)

from app.chat.markdown import Block, BlockKind, split_blocks
from ui.chat.code_highlight import code_document, extend_code_document
from ui.common.theme import ChatColors

BLOCK_GAP = 8.0  # between two blocks of a reply
CODE_PADDING = 8.0  # inside a code block, around the code
CODE_RADIUS = 6.0
QUOTE_INDENT = 14.0
LIST_INDENT = 22.0
CACHED_MESSAGES = 200  # rendered replies kept; heights of all the others stay in the delegate's cache

_RESTYLED_MARKS = ("`", "[", ">", "http", "www.", "@")  # inline code, links, quotes
_MARKDOWN_FEATURES = (
    QTextDocument.MarkdownFeature.MarkdownDialectGitHub | QTextDocument.MarkdownFeature.MarkdownNoHTML
)


_MONOSPACE_FAMILIES = (
    "DejaVu Sans Mono",
    "Noto Sans Mono",
    "Liberation Mono",
    "Menlo",
    "Consolas",
    "Courier New",
)


def is_monospace(font: QFont) -> bool:
    """Whether every character really takes one width (Qt's fixedPitch() is a heuristic that calls
    some monospace families, Noto Sans Mono among them, proportional)."""
    metrics = QFontMetricsF(font)
    return metrics.horizontalAdvance("iiii") == metrics.horizontalAdvance("WWWW")


def code_font() -> QFont:
    """The platform's fixed-width font, or the first monospace family installed if it is not one."""
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    if is_monospace(font):
        return font
    for family in _MONOSPACE_FAMILIES:
        candidate = QFont(family, font.pointSize())
        if QFontInfo(candidate).family() == family and is_monospace(candidate):
            return candidate
    font.setStyleHint(QFont.StyleHint.Monospace)
    return font


def _with_hard_breaks(source: str) -> str:
    """Line breaks stay line breaks, as in chat apps (plain Markdown would join the lines)."""
    return re.sub(r"(?<=\S)\n(?=[^\n])", "  \n", source)


def _set_text_width(document: QTextDocument, width: float) -> None:
    """Qt lays the whole document out again on every setTextWidth, even to the same width."""
    if document.textWidth() != width:
        document.setTextWidth(width)


@dataclass
class RenderedBlock:
    """A block laid out at a width; `top` is its offset from the top of the message's text area."""

    block: Block
    document: QTextDocument
    highlighted: bool = False  # code blocks are measured plain and highlighted when first painted
    top: float = 0.0
    height: float = 0.0
    header_height: float = 0.0  # code blocks: the strip with the language and the Copy button

    @property
    def code_origin(self) -> QPointF:
        return QPointF(CODE_PADDING, self.top + self.header_height + CODE_PADDING)


@dataclass
class RenderedMessage:
    blocks: list[RenderedBlock]
    text: str = ""
    highlighted: bool = False  # all its code blocks are
    painted: bool = False  # on screen: new code blocks are built highlighted straight away
    width: float = 0.0
    height: float = 0.0
    widest: float = 0.0


class MarkdownRenderer:
    """Renders replies into blocks of QTextDocuments and keeps the recent ones.

    `renders` counts blocks built (parsed and formatted), not relayouts at a new width: tests
    read it to check that streaming re-renders only the tail block. Code is measured as plain
    monospace text and highlighted only when painted (`highlights`): lexing is most of the cost
    of a reply, and a long chat measures every row but paints a screenful.
    """

    def __init__(self, font: QFont, caption_font: QFont, colors: ChatColors) -> None:
        self._font = QFont(font)
        self._mono = code_font()
        self._mono.setPointSizeF(font.pointSizeF() * 0.95)
        self._caption_font = caption_font
        self._colors = colors
        self._messages: OrderedDict[int, RenderedMessage] = OrderedDict()
        self.renders = 0
        self.highlights = 0

    @property
    def colors(self) -> ChatColors:
        return self._colors

    def set_colors(self, colors: ChatColors) -> None:
        """A new theme: everything is rendered again in its colours (heights do not change)."""
        if colors != self._colors:
            self._colors = colors
            self._messages.clear()

    def code_header_height(self) -> float:
        return QFontMetricsF(self._caption_font).height() + 8

    def message(
        self, message_id: int, text: str, width: float, *, highlight: bool = False
    ) -> RenderedMessage:
        """The rendered reply, reusing every block whose source is unchanged since the last call.

        `highlight`: colour its code blocks too (for painting; measuring does not need it).
        """
        rendered = self._messages.get(message_id)
        if rendered is None:
            rendered = RenderedMessage([])
            self._messages[message_id] = rendered
            while len(self._messages) > CACHED_MESSAGES:
                self._messages.popitem(last=False)
        else:
            self._messages.move_to_end(message_id)
            if rendered.text == text and rendered.width == width and (rendered.highlighted or not highlight):
                return rendered  # a repaint: nothing to split or compare
        blocks = split_blocks(text)
        changed = len(blocks) != len(rendered.blocks) or width != rendered.width
        kept: list[RenderedBlock] = []
        for index, block in enumerate(blocks):
            old = rendered.blocks[index] if index < len(rendered.blocks) else None
            if old is not None and old.block == block:  # closing a fence re-lexes the block whole, once
                kept.append(old)
                continue
            if old is not None and self._extend(old, block):
                kept.append(old)
                changed = True
                continue
            colour = rendered.painted and block.kind is BlockKind.CODE
            kept.append(RenderedBlock(block, self._render(block, highlight=colour), highlighted=colour))
            changed = True
        if highlight:
            for item in kept:
                if item.block.kind is BlockKind.CODE and not item.highlighted:
                    self.highlights += 1
                    item.document = self._code(item.block, highlight=True)
                    item.highlighted = True
                    changed = True
        if changed:
            rendered.blocks = kept
            self._lay_out(rendered, width)
        rendered.text = text
        rendered.painted = rendered.painted or highlight
        rendered.highlighted = all(item.highlighted for item in kept if item.block.kind is BlockKind.CODE)
        return rendered

    def _lay_out(self, rendered: RenderedMessage, width: float) -> None:
        top = 0.0
        widest = 0.0
        for item in rendered.blocks:
            item.top = top
            if item.block.kind is BlockKind.CODE:
                _set_text_width(item.document, max(width - 2 * CODE_PADDING, 10.0))
                item.header_height = self.code_header_height()
                item.height = item.header_height + item.document.size().height() + 2 * CODE_PADDING
                widest = width
            else:
                _set_text_width(item.document, width)
                item.height = item.document.size().height()
                widest = max(widest, min(item.document.idealWidth(), width))
            top += item.height + BLOCK_GAP
        rendered.width = width
        rendered.height = max(top - BLOCK_GAP, 0.0)
        rendered.widest = widest

    # -- building the documents ------------------------------------------------------------------

    def _render(self, block: Block, *, highlight: bool = False) -> QTextDocument:
        self.renders += 1
        if block.kind is BlockKind.CODE:
            return self._code(block, highlight=highlight)
        document = QTextDocument()
        document.setDocumentMargin(0)
        document.setDefaultFont(self._font)
        document.setIndentWidth(LIST_INDENT)
        document.setMarkdown(_with_hard_breaks(block.source), _MARKDOWN_FEATURES)
        cursor = QTextCursor(document)
        cursor.beginEditBlock()  # one layout after restyling, not one per change
        self._restyle(document, block.source)
        cursor.endEditBlock()
        return document

    def _extend(self, old: RenderedBlock, block: Block) -> bool:
        """Grow a streaming code block's document in place, when it only gained text at its end."""
        before = old.block
        if not (
            before.kind is block.kind is BlockKind.CODE
            and not before.closed
            and not block.closed
            and before.language == block.language
            and block.source.startswith(before.source)
        ):
            return False
        self.renders += 1
        language = block.language if old.highlighted else ""
        colors = self._colors
        extend_code_document(old.document, before.source, block.source, language, colors.text, colors.dark)
        old.block = block
        return True

    def _code(self, block: Block, *, highlight: bool) -> QTextDocument:
        language = block.language if highlight else ""  # no lexer: the same text, in the same font
        return code_document(
            block.source, language, self._mono, self._colors.text, self._colors.dark, growing=not block.closed
        )

    def _restyle(self, document: QTextDocument, source: str) -> None:
        """Qt's Markdown reader gives structure; this gives it the theme's look.

        Walking the fragments is most of a block's cost, so it is done only when the source has
        something to restyle (inline code, a link, a quote).
        """
        colors = self._colors
        cursor = QTextCursor(document)
        first_block = document.begin()
        cursor.setPosition(first_block.position())
        head = QTextBlockFormat(first_block.blockFormat())
        head.setTopMargin(0)
        cursor.setBlockFormat(head)
        walk = any(mark in source for mark in _RESTYLED_MARKS)
        block = first_block if walk else document.end()
        while block.isValid():
            fmt = block.blockFormat()
            quote_level = fmt.property(QTextFormat.Property.BlockQuoteLevel)
            if quote_level:
                cursor.setPosition(block.position())
                new = QTextBlockFormat(fmt)
                new.setLeftMargin(QUOTE_INDENT * int(quote_level))
                cursor.setBlockFormat(new)
            iterator = block.begin()
            while not iterator.atEnd():
                fragment = iterator.fragment()
                char = fragment.charFormat()
                extra = QTextCharFormat()
                if char.fontFixedPitch():
                    extra.setFontFamilies(self._mono.families())
                    extra.setFontPointSize(self._mono.pointSizeF())
                    extra.setBackground(QBrush(colors.inline_code_background))
                if char.isAnchor():
                    extra.setForeground(QBrush(colors.link))
                    extra.setFontUnderline(True)
                if quote_level:
                    extra.setForeground(QBrush(colors.caption))
                if extra.properties():
                    cursor.setPosition(fragment.position())
                    cursor.setPosition(
                        fragment.position() + fragment.length(), QTextCursor.MoveMode.KeepAnchor
                    )
                    cursor.mergeCharFormat(extra)
                iterator += 1
            block = block.next()
        last = document.lastBlock()
        cursor.setPosition(last.position())
        tail = QTextBlockFormat(last.blockFormat())
        tail.setBottomMargin(0)
        cursor.setBlockFormat(tail)
        for frame in document.rootFrame().childFrames() if "|" in source else []:
            if isinstance(frame, QTextTable):
                self._restyle_table(frame)

    def _restyle_table(self, table: QTextTable) -> None:
        fmt = QTextTableFormat(table.format())
        fmt.setBorderCollapse(True)
        fmt.setBorder(1)
        fmt.setBorderBrush(QBrush(self._colors.table_border))
        fmt.setBorderStyle(QTextTableFormat.BorderStyle.BorderStyle_Solid)
        fmt.setCellPadding(5)
        fmt.setCellSpacing(0)
        fmt.setHeaderRowCount(1)
        fmt.setWidth(QTextLength(QTextLength.Type.VariableLength, 0))
        table.setFormat(fmt)
        bold = QTextCharFormat()
        bold.setFontWeight(QFont.Weight.Bold)
        for column in range(table.columns()):
            cell = table.cellAt(0, column)
            shaded = cell.format()
            shaded.setBackground(QBrush(self._colors.code_header))
            cell.setFormat(shaded)
            cursor = cell.firstCursorPosition()
            cursor.setPosition(cell.lastCursorPosition().position(), QTextCursor.MoveMode.KeepAnchor)
            cursor.mergeCharFormat(bold)

    # -- painting ----------------------------------------------------------------------------------

    def paint(self, painter: QPainter, rendered: RenderedMessage, origin: QPointF, palette: QPalette) -> None:
        """Draw the blocks with their top-left at `origin` (code blocks' headers are drawn by the caller)."""
        colors = self._colors
        context = QAbstractTextDocumentLayout.PaintContext()
        text_palette = QPalette(palette)
        text_palette.setColor(QPalette.ColorRole.Text, colors.text)
        text_palette.setColor(QPalette.ColorRole.Link, colors.link)
        context.palette = text_palette
        for item in rendered.blocks:
            painter.save()
            if item.block.kind is BlockKind.CODE:
                self._paint_code_box(
                    painter, item, QRectF(origin.x(), origin.y() + item.top, rendered.width, item.height)
                )
                painter.translate(origin + item.code_origin)
            else:
                self._paint_quote_bars(painter, item, origin)
                painter.translate(origin.x(), origin.y() + item.top)
            item.document.documentLayout().draw(painter, context)
            painter.restore()

    def _paint_code_box(self, painter: QPainter, item: RenderedBlock, box: QRectF) -> None:
        """The frame of a code block with its header strip and language (its Copy button is the caller's)."""
        colors = self._colors
        box = box.adjusted(0.5, 0.5, -0.5, -0.5)
        header = QRectF(box.left(), box.top(), box.width(), item.header_height)
        path = QPainterPath()
        path.addRoundedRect(box, CODE_RADIUS, CODE_RADIUS)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillPath(path, colors.code_background)
        painter.setClipPath(path)
        painter.fillRect(header, colors.code_header)
        painter.setClipping(False)
        painter.setPen(colors.code_border)
        painter.drawLine(header.bottomLeft(), header.bottomRight())
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(colors.caption)
        painter.setFont(self._caption_font)
        painter.drawText(
            header.adjusted(CODE_PADDING + 2, 0, 0, 0),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            item.block.language or "code",
        )
        painter.restore()

    def _paint_quote_bars(self, painter: QPainter, item: RenderedBlock, origin: QPointF) -> None:
        layout = item.document.documentLayout()
        block = item.document.begin()
        while block.isValid():
            level = block.blockFormat().property(QTextFormat.Property.BlockQuoteLevel)
            if level:
                rect = layout.blockBoundingRect(block)
                painter.fillRect(
                    QRectF(origin.x(), origin.y() + item.top + rect.top(), 3, rect.height()),
                    self._colors.quote_bar,
                )
            block = block.next()

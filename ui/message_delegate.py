"""Paints chat messages as bubbles: the user's on the right, the model's on the left with its stats.

Text is laid out with QTextLayout (wrapping long words too) and the layout heights are
cached per message, width and length, so scrolling a long chat does not re-measure it.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPalette, QPen, QTextLayout, QTextOption
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.chat_store import ChatMessage, MessageStatus
from ui.message_model import DROPPED_BEFORE_ROLE, MESSAGE_ROLE

_Index = QModelIndex | QPersistentModelIndex

MARGIN = 10  # around each bubble
PADDING = 10  # inside each bubble
CAPTION_GAP = 3
BUBBLE_WIDTH = 0.78  # of the view's width
RADIUS = 10.0
MARKER_HEIGHT = 28  # the "earlier messages are outside the context" divider

_STATUS_NOTES = {
    MessageStatus.STREAMING: "generating…",
    MessageStatus.STOPPED: "stopped — incomplete",
    MessageStatus.INTERRUPTED: "interrupted when the app closed — incomplete",
    MessageStatus.FAILED: "failed — incomplete",
}


def caption_text(message: ChatMessage) -> str:
    """The small line under a bubble: who wrote it and, for replies, how it went."""
    if message.role == "user":
        return "You"
    parts = [message.model or "Assistant"]
    note = _STATUS_NOTES.get(message.status)
    if note:
        parts.append(note)
    if message.stats is not None and message.stats.completion_tokens:
        stats = message.stats
        parts.append(f"{stats.ttft_s:.2f} s to first token")
        parts.append(f"{stats.tokens_per_s:.1f} tok/s")
        parts.append(f"{stats.completion_tokens} tokens")
    return " · ".join(parts)


class MessageDelegate(QStyledItemDelegate):
    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view
        self._caption_font = QFont(view.font())
        self._caption_font.setPointSizeF(max(view.font().pointSizeF() * 0.85, 7.0))
        self._heights: dict[tuple[int, int], float] = {}  # (message id, text length) -> text height
        # The last layout made, reused by paint() right after sizeHint() measured the same text.
        self._last_layout: tuple[tuple[int, int, float], tuple[QTextLayout, float, float]] | None = None
        self._heights_width = 0.0
        view.model().dataChanged.connect(self._on_data_changed)  # a growing reply changes its height

    def _on_data_changed(self, top_left: QModelIndex, _bottom_right: QModelIndex) -> None:
        self.sizeHintChanged.emit(top_left)

    # -- geometry --------------------------------------------------------------------------------

    def _bubble_text_width(self) -> float:
        return max(self._view.viewport().width() * BUBBLE_WIDTH - 2 * PADDING, 40.0)

    def _layout_for(self, message: ChatMessage, width: float) -> tuple[QTextLayout, float, float]:
        key = (message.id, len(message.content), width)
        if self._last_layout is not None and self._last_layout[0] == key:
            return self._last_layout[1]
        result = self._layout(message.content, width)
        self._last_layout = (key, result)
        return result

    def _layout(self, text: str, width: float) -> tuple[QTextLayout, float, float]:
        """Lay out `text` wrapped at `width`; returns the layout, its height and its widest line."""
        layout = QTextLayout(text or " ", self._view.font())
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        layout.beginLayout()
        height = 0.0
        widest = 0.0
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(width)
            line.setPosition(QPointF(0, height))
            height += line.height()
            widest = max(widest, line.naturalTextWidth())
        layout.endLayout()
        return layout, height, widest

    def _caption_height(self) -> float:
        return QFontMetricsF(self._caption_font).height()

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        message: ChatMessage = index.data(MESSAGE_ROLE)
        width = self._bubble_text_width()
        if width != self._heights_width:
            self._heights.clear()
            self._heights_width = width
        key = (message.id, len(message.content))
        height = self._heights.get(key)
        if height is None:
            _, height, _ = self._layout_for(message, width)
            self._heights[key] = height
        total = MARGIN + 2 * PADDING + height + CAPTION_GAP + self._caption_height() + MARGIN / 2
        if index.data(DROPPED_BEFORE_ROLE):
            total += MARKER_HEIGHT
        return QSize(self._view.viewport().width(), int(total + 0.5))

    # -- painting --------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        message: ChatMessage = index.data(MESSAGE_ROLE)
        rect = QRectF(option.rect)
        dropped = index.data(DROPPED_BEFORE_ROLE)
        if dropped:
            self._paint_marker(
                painter, QRectF(rect.left(), rect.top(), rect.width(), MARKER_HEIGHT), dropped, option
            )
            rect.setTop(rect.top() + MARKER_HEIGHT)
        width = self._bubble_text_width()
        layout, text_height, widest = self._layout_for(message, width)
        bubble_width = min(widest, width) + 2 * PADDING
        is_user = message.role == "user"
        left = rect.right() - MARGIN - bubble_width if is_user else rect.left() + MARGIN
        bubble = QRectF(left, rect.top() + MARGIN, bubble_width, text_height + 2 * PADDING)

        palette = option.palette
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        if is_user:
            fill = QColor("#2f5d9e") if dark else QColor("#d7e6fb")
        else:
            fill = QColor("#3a3d42") if dark else QColor("#eef0f3")
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(bubble, RADIUS, RADIUS)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(bubble, RADIUS, RADIUS)

        painter.setPen(palette.color(QPalette.ColorRole.Text))
        layout.draw(painter, bubble.topLeft() + QPointF(PADDING, PADDING))

        caption = caption_text(message)
        painter.setFont(self._caption_font)
        incomplete = message.role == "assistant" and message.status.is_incomplete
        caption_color = (
            QColor("#c0392b")
            if incomplete and message.status != MessageStatus.STREAMING
            else (palette.color(QPalette.ColorRole.PlaceholderText))
        )
        painter.setPen(caption_color)
        caption_rect = QRectF(
            rect.left() + MARGIN,
            bubble.bottom() + CAPTION_GAP,
            rect.width() - 2 * MARGIN,
            self._caption_height(),
        )
        alignment = Qt.AlignmentFlag.AlignRight if is_user else Qt.AlignmentFlag.AlignLeft
        painter.drawText(caption_rect, int(alignment | Qt.AlignmentFlag.AlignVCenter), caption)
        painter.restore()

    def _paint_marker(
        self, painter: QPainter, rect: QRectF, dropped: int, option: QStyleOptionViewItem
    ) -> None:
        """A dashed divider: the messages above it no longer fit the model's context window."""
        painter.save()
        color = QColor("#a15c00")
        painter.setPen(QPen(color, 1, Qt.PenStyle.DashLine))
        middle = rect.center().y()
        painter.drawLine(QPointF(rect.left() + MARGIN, middle), QPointF(rect.right() - MARGIN, middle))
        text = marker_text(dropped)
        painter.setFont(self._caption_font)
        metrics = QFontMetricsF(self._caption_font)
        label = QRectF(0, 0, metrics.horizontalAdvance(text) + 16, metrics.height() + 4)
        label.moveCenter(rect.center())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(option.palette.color(QPalette.ColorRole.Base))
        painter.drawRect(label)
        painter.setPen(color)
        painter.drawText(label, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()


def marker_text(dropped: int) -> str:
    earlier = "1 earlier message is" if dropped == 1 else f"{dropped} earlier messages are"
    return f"{earlier} beyond the model's context window and not used for replies"

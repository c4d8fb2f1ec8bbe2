"""Paints chat messages as bubbles: the user's on the right, the model's on the left with its stats.

User messages and replies without Markdown syntax are laid out with one QTextLayout; replies with
Markdown go through `MarkdownRenderer`, block by block. Heights are cached per message id and text
length (and width), so scrolling a long chat never re-measures it, and only painted or measured
rows are rendered at all. Hover buttons under each bubble (Copy, Edit, Regenerate, Delete, the
branch switcher) and each code block's Copy button are painted here and hit-tested in
`editorEvent`; their tooltips come from `helpEvent`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRectF,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
)

from app.chat.actions import BRANCH_ACTIONS, MessageAction, message_actions
from app.chat.markdown import BlockKind, looks_like_markdown
from app.chat.store import ChatMessage, MessageStatus
from ui.chat.markdown_view import (
    CODE_PADDING,
    MarkdownRenderer,
    RenderedMessage,
)
from ui.chat.message_model import BRANCH_ROLE, DROPPED_BEFORE_ROLE, MESSAGE_ROLE
from ui.common.theme import ChatColors, chat_colors

log = logging.getLogger("ui")

_Index = QModelIndex | QPersistentModelIndex

MARGIN = 10  # around each bubble
PADDING = 10  # inside each bubble
CAPTION_GAP = 3
BUBBLE_WIDTH = 0.78  # of the view's width
RADIUS = 10.0
MARKER_HEIGHT = 28  # the "earlier messages are outside the context" divider
BUTTON_PADDING = 7.0  # left and right of a button's label
BUTTON_SPACING = 2.0
COPIED_FEEDBACK_MS = 1500

_STATUS_NOTES = {
    MessageStatus.STREAMING: "generating…",
    MessageStatus.STOPPED: "stopped — incomplete",
    MessageStatus.INTERRUPTED: "interrupted when the app closed — incomplete",
    MessageStatus.FAILED: "failed — incomplete",
}

# label, tooltip
_ACTION_LABELS = {
    MessageAction.COPY: ("Copy", "Copy this message (Ctrl+C)"),
    MessageAction.EDIT: ("Edit", "Edit and resend as a new version (F2)"),
    MessageAction.REGENERATE: ("Regenerate", "Write a new reply; this one stays as a version"),
    MessageAction.DELETE: ("Delete", "Delete this message (Del)"),
    MessageAction.PREVIOUS_BRANCH: ("‹", "Previous version (Alt+Left)"),
    MessageAction.NEXT_BRANCH: ("›", "Next version (Alt+Right)"),
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


@dataclass(frozen=True)
class Hit:
    """Something clickable in a row: a message action, or a code block's Copy button."""

    rect: QRectF
    label: str
    tooltip: str
    action: MessageAction | None = None
    code: str | None = None  # the code a code block's Copy button copies
    copy_key: tuple[int, int] | None = None  # (message id, block index) of that code block
    enabled: bool = True
    hover_only: bool = True  # shown only while the row is hovered or selected


@dataclass
class _Geometry:
    """Where everything of one row goes, for painting and for hit-testing alike."""

    message: ChatMessage
    bubble: QRectF
    caption: QRectF
    text_origin: QPointF
    layout: QTextLayout | None = None  # plain text
    rendered: RenderedMessage | None = None  # Markdown
    caption_text: str = ""  # elided when the row is too narrow for it and the buttons
    branch_label: QRectF | None = None
    branch_text: str = ""
    hits: list[Hit] = field(default_factory=list)


class MessageDelegate(QStyledItemDelegate):
    """Signals:
    action_requested(int, MessageAction): the user clicked an action button of the message at a row.
    """

    action_requested = Signal(int, MessageAction)

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self._view = view
        self._caption_font = QFont(view.font())
        self._caption_font.setPointSizeF(max(view.font().pointSizeF() * 0.85, 7.0))
        self._caption_metrics = QFontMetricsF(self._caption_font)
        self._heights: dict[tuple[int, int], float] = {}  # (message id, text length) -> text height
        # The last plain layout made, reused by paint() right after sizeHint() measured the same text.
        self._last_layout: tuple[tuple[int, int, float], tuple[QTextLayout, float, float]] | None = None
        self._heights_width = 0.0
        self._palette_key = -1
        self._colors = chat_colors(view.palette())
        self.markdown = MarkdownRenderer(view.font(), self._caption_font, self._colors)
        self._hover: QPointF | None = None
        self._copied: tuple[int, int] | None = None  # the code block whose Copy button says "Copied"
        self._copied_timer = QTimer(self)
        self._copied_timer.setSingleShot(True)
        self._copied_timer.setInterval(COPIED_FEEDBACK_MS)
        self._copied_timer.timeout.connect(self._on_copied_expired)
        view.setMouseTracking(True)
        view.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        view.viewport().installEventFilter(self)
        view.model().dataChanged.connect(self._on_data_changed)  # a growing reply changes its height

    def _on_data_changed(self, top_left: QModelIndex, _bottom_right: QModelIndex) -> None:
        self.sizeHintChanged.emit(top_left)

    def _theme(self, palette: QPalette) -> ChatColors:
        if palette.cacheKey() != self._palette_key:
            self._palette_key = palette.cacheKey()
            self._colors = chat_colors(palette)
            self.markdown.set_colors(self._colors)
        return self._colors

    # -- geometry --------------------------------------------------------------------------------

    def _bubble_text_width(self) -> float:
        return max(self._view.viewport().width() * BUBBLE_WIDTH - 2 * PADDING, 40.0)

    def _uses_markdown(self, message: ChatMessage) -> bool:
        return message.role == "assistant" and looks_like_markdown(message.content)

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

    def _button_height(self) -> float:
        return self._caption_metrics.height() + 6

    def _caption_row_height(self) -> float:
        return max(self._caption_metrics.height(), self._button_height())

    def _button_width(self, label: str) -> float:
        return self._caption_metrics.horizontalAdvance(label) + 2 * BUTTON_PADDING

    def sizeHint(self, option: QStyleOptionViewItem, index: _Index) -> QSize:
        message: ChatMessage = index.data(MESSAGE_ROLE)
        width = self._bubble_text_width()
        if width != self._heights_width:
            self._heights.clear()
            self._heights_width = width
        key = (message.id, len(message.content))
        height = self._heights.get(key)
        if height is None:
            if self._uses_markdown(message):
                self._theme(self._view.palette())
                height = self.markdown.message(message.id, message.content, width).height
            else:
                _, height, _ = self._layout_for(message, width)
            self._heights[key] = height
        total = MARGIN + 2 * PADDING + height + CAPTION_GAP + self._caption_row_height() + MARGIN / 2
        if index.data(DROPPED_BEFORE_ROLE):
            total += MARKER_HEIGHT
        return QSize(self._view.viewport().width(), int(total + 0.5))

    def _geometry(self, row_rect: QRectF, index: _Index, *, painting: bool = False) -> _Geometry:
        message: ChatMessage = index.data(MESSAGE_ROLE)
        rect = QRectF(row_rect)
        if index.data(DROPPED_BEFORE_ROLE):
            rect.setTop(rect.top() + MARKER_HEIGHT)
        width = self._bubble_text_width()
        layout: QTextLayout | None = None
        rendered: RenderedMessage | None = None
        if self._uses_markdown(message):
            rendered = self.markdown.message(message.id, message.content, width, highlight=painting)
            text_height, widest = rendered.height, rendered.widest
        else:
            layout, text_height, widest = self._layout_for(message, width)
        bubble_width = min(widest, width) + 2 * PADDING
        is_user = message.role == "user"
        left = rect.right() - MARGIN - bubble_width if is_user else rect.left() + MARGIN
        bubble = QRectF(left, rect.top() + MARGIN, bubble_width, text_height + 2 * PADDING)
        caption = QRectF(
            rect.left() + MARGIN,
            bubble.bottom() + CAPTION_GAP,
            rect.width() - 2 * MARGIN,
            self._caption_row_height(),
        )
        geometry = _Geometry(
            message, bubble, caption, bubble.topLeft() + QPointF(PADDING, PADDING), layout, rendered
        )
        self._place_controls(geometry, index.data(BRANCH_ROLE), is_user)
        if rendered is not None:
            self._place_code_buttons(geometry, rendered)
        return geometry

    def _place_controls(self, geometry: _Geometry, branch: tuple[int, int] | None, is_user: bool) -> None:
        """The caption row: the caption, then (away from the bubble's edge) branch switcher and buttons."""
        caption = geometry.caption
        button_height = self._button_height()
        top = caption.top() + (caption.height() - button_height) / 2
        text = caption_text(geometry.message)
        caption_width = self._caption_metrics.horizontalAdvance(text)
        items: list[tuple[float, Hit | str]] = []  # width, hit or the branch label
        for state in message_actions(geometry.message, versions=branch):
            label = _ACTION_LABELS[state.action][0]
            items.append((self._button_width(label), self._action_hit(state.action, state.enabled)))
            if state.action is MessageAction.PREVIOUS_BRANCH and branch is not None:  # "2/3" between ‹ ›
                position_text = f"{branch[0]}/{branch[1]}"
                items.append((self._caption_metrics.horizontalAdvance(position_text) + 4, position_text))
        buttons_width = sum(width for width, _ in items) + BUTTON_SPACING * max(len(items) - 1, 0)
        room = caption.width() - buttons_width - 10
        if caption_width > room:  # a narrow window: the buttons stay whole, the caption gives way
            text = self._caption_metrics.elidedText(text, Qt.TextElideMode.ElideRight, max(room, 0.0))
            caption_width = self._caption_metrics.horizontalAdvance(text)
        geometry.caption_text = text
        if is_user:  # they end left of the caption "You", at the bubble's right edge
            x = caption.right() - caption_width - 10 - buttons_width
        else:
            x = caption.left() + caption_width + 10
        for width, item in items:
            self._place(geometry, item, QRectF(x, top, width, button_height))
            x += width + BUTTON_SPACING

    def _action_hit(self, action: MessageAction, enabled: bool = True) -> Hit:
        label, tooltip = _ACTION_LABELS[action]
        branch = action in BRANCH_ACTIONS
        return Hit(QRectF(), label, tooltip, action=action, enabled=enabled, hover_only=not branch)

    @staticmethod
    def _place(geometry: _Geometry, item: Hit | str, rect: QRectF) -> None:
        if isinstance(item, str):
            geometry.branch_label, geometry.branch_text = rect, item
        else:
            geometry.hits.append(dataclasses.replace(item, rect=rect))

    def _place_code_buttons(self, geometry: _Geometry, rendered: RenderedMessage) -> None:
        button_height = self._button_height() - 2
        for number, item in enumerate(rendered.blocks):
            if item.block.kind is not BlockKind.CODE:
                continue
            key = (geometry.message.id, number)
            label = "Copied ✓" if key == self._copied else "Copy"
            width = self._button_width(label)
            rect = QRectF(
                geometry.text_origin.x() + rendered.width - CODE_PADDING / 2 - width,
                geometry.text_origin.y() + item.top + (item.header_height - button_height) / 2,
                width,
                button_height,
            )
            geometry.hits.append(
                Hit(rect, label, "Copy this code", code=item.block.source, copy_key=key, hover_only=False)
            )

    # -- painting --------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _Index) -> None:
        colors = self._theme(option.palette)
        rect = QRectF(option.rect)
        dropped = index.data(DROPPED_BEFORE_ROLE)
        if dropped:
            self._paint_marker(
                painter, QRectF(rect.left(), rect.top(), rect.width(), MARKER_HEIGHT), dropped, colors
            )
        geometry = self._geometry(rect, index, painting=True)
        message = geometry.message
        is_user = message.role == "user"
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colors.user_bubble if is_user else colors.reply_bubble)
        painter.drawRoundedRect(geometry.bubble, RADIUS, RADIUS)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.setPen(QPen(colors.highlight, 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(geometry.bubble, RADIUS, RADIUS)

        if geometry.rendered is not None:
            self.markdown.paint(painter, geometry.rendered, geometry.text_origin, option.palette)
        elif geometry.layout is not None:
            painter.setPen(colors.text)
            geometry.layout.draw(painter, geometry.text_origin)

        painter.setFont(self._caption_font)
        incomplete = message.role == "assistant" and message.status.is_incomplete
        failed = incomplete and message.status != MessageStatus.STREAMING
        painter.setPen(colors.warning if failed else colors.caption)
        alignment = Qt.AlignmentFlag.AlignRight if is_user else Qt.AlignmentFlag.AlignLeft
        painter.drawText(
            geometry.caption, int(alignment | Qt.AlignmentFlag.AlignVCenter), geometry.caption_text
        )
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver) or selected
        if geometry.branch_label is not None:
            painter.setPen(colors.caption)
            painter.drawText(geometry.branch_label, int(Qt.AlignmentFlag.AlignCenter), geometry.branch_text)
        for hit in geometry.hits:  # code blocks' Copy and the branch switcher always; the rest on hover
            if hovered or not hit.hover_only:
                self._paint_button(painter, hit, colors)
        painter.restore()

    def _paint_button(self, painter: QPainter, hit: Hit, colors: ChatColors) -> None:
        hovered = self._hover is not None and hit.enabled and hit.rect.contains(self._hover)
        if hovered or hit.code is not None:  # a code block's button is framed, to read as a button
            painter.setPen(QPen(colors.code_border, 1) if hit.code is not None else Qt.PenStyle.NoPen)
            painter.setBrush(colors.button_hover if hovered else Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(hit.rect.adjusted(0.5, 0.5, -0.5, -0.5), 5, 5)
        text = QColor(colors.text if hit.enabled else colors.caption)
        if not hit.enabled:
            text.setAlphaF(0.45)
        painter.setPen(text)
        painter.setFont(self._caption_font)
        painter.drawText(hit.rect, int(Qt.AlignmentFlag.AlignCenter), hit.label)

    def _paint_marker(self, painter: QPainter, rect: QRectF, dropped: int, colors: ChatColors) -> None:
        """A dashed divider: the messages above it no longer fit the model's context window."""
        painter.save()
        painter.setPen(QPen(colors.marker, 1, Qt.PenStyle.DashLine))
        middle = rect.center().y()
        painter.drawLine(QPointF(rect.left() + MARGIN, middle), QPointF(rect.right() - MARGIN, middle))
        text = marker_text(dropped)
        painter.setFont(self._caption_font)
        label = QRectF(
            0, 0, self._caption_metrics.horizontalAdvance(text) + 16, self._caption_metrics.height() + 4
        )
        label.moveCenter(rect.center())
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(self._view.palette().color(QPalette.ColorRole.Base))
        painter.drawRect(label)
        painter.setPen(colors.marker)
        painter.drawText(label, int(Qt.AlignmentFlag.AlignCenter), text)
        painter.restore()

    # -- interaction -----------------------------------------------------------------------------

    def hits(self, row: int) -> list[Hit]:
        """The clickable things of a row as painted now, in viewport coordinates (empty when not laid out)."""
        index = self._view.model().index(row, 0)
        rect = self._view.visualRect(index)
        return self._geometry(QRectF(rect), index).hits if rect.isValid() else []

    def hit_at(self, pos: QPoint) -> tuple[int, Hit] | None:
        """The row and clickable thing at `pos` (viewport coordinates), if any."""
        index = self._view.indexAt(pos)
        if not index.isValid():
            return None
        geometry = self._geometry(QRectF(self._view.visualRect(index)), index)
        point = QPointF(pos)
        for hit in geometry.hits:
            if hit.rect.contains(point):
                return index.row(), hit
        return None

    def _link_at(self, pos: QPoint) -> str | None:
        index = self._view.indexAt(pos)
        if not index.isValid():
            return None
        geometry = self._geometry(QRectF(self._view.visualRect(index)), index)
        if geometry.rendered is None:
            return None
        for item in geometry.rendered.blocks:
            if item.block.kind is BlockKind.TEXT:
                local = QPointF(pos) - geometry.text_origin - QPointF(0, item.top)
                href = item.document.documentLayout().anchorAt(local)
                if href:
                    return href
        return None

    def editorEvent(
        self, event: QEvent, model: QAbstractItemModel, option: QStyleOptionViewItem, index: _Index
    ) -> bool:
        if not isinstance(event, QMouseEvent) or event.button() != Qt.MouseButton.LeftButton:
            return super().editorEvent(event, model, option, index)
        pos = event.position().toPoint()
        found = self.hit_at(pos)
        if event.type() == QEvent.Type.MouseButtonPress:
            return found is not None or self._link_at(pos) is not None  # a button press does not select
        if event.type() != QEvent.Type.MouseButtonRelease:
            return found is not None
        if found is None:
            link = self._link_at(pos)
            if link is not None and QUrl(link).scheme() in ("http", "https", "mailto"):
                QDesktopServices.openUrl(QUrl(link))
                return True
            return False
        row, hit = found
        if hit.code is not None:
            QGuiApplication.clipboard().setText(hit.code)
            self._copied = hit.copy_key
            self._copied_timer.start()
            self._view.viewport().update()
        elif hit.action is not None and hit.enabled:
            log.debug("message action %s on row %d", hit.action, row)
            self.action_requested.emit(row, hit.action)
        return True

    def helpEvent(
        self, event: QHelpEvent, view: QAbstractItemView, option: QStyleOptionViewItem, index: _Index
    ) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            found = self.hit_at(event.pos())
            text = found[1].tooltip if found is not None else self._link_at(event.pos())
            if text:
                QToolTip.showText(event.globalPos(), text, view)
                return True
            QToolTip.hideText()
            return True
        return super().helpEvent(event, view, option, index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Track the mouse over the viewport, to highlight the button under it and show a hand cursor."""
        if event.type() == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            self._set_hover(event.position())
        elif event.type() == QEvent.Type.Leave:
            self._set_hover(None)
        return False

    def _set_hover(self, point: QPointF | None) -> None:
        before = self.hit_at(self._hover.toPoint()) if self._hover is not None else None
        self._hover = point
        after = self.hit_at(point.toPoint()) if point is not None else None
        clickable = after is not None or (point is not None and self._link_at(point.toPoint()) is not None)
        viewport = self._view.viewport()
        if clickable:
            viewport.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            viewport.unsetCursor()
        for found in (before, after):
            if found is not None:
                viewport.update(found[1].rect.toAlignedRect().adjusted(-2, -2, 2, 2))

    @Slot()
    def _on_copied_expired(self) -> None:
        self._copied = None
        self._view.viewport().update()


def marker_text(dropped: int) -> str:
    earlier = "1 earlier message is" if dropped == 1 else f"{dropped} earlier messages are"
    return f"{earlier} beyond the model's context window and not used for replies"

"""Markdown replies: what Qt builds from them, the code block's Copy button, streaming, both themes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QTextDocument
from PySide6.QtWidgets import QApplication, QListView
from pytestqt.qtbot import QtBot

from app.chat.markdown import BlockKind, looks_like_markdown, split_blocks
from app.chat.store import ChatMessage, MessageStatus
from tests.ui.chat.chat_helpers import show_message_view
from ui.chat.markdown_view import RenderedMessage, is_monospace
from ui.chat.message_delegate import MessageDelegate
from ui.chat.message_model import MessageListModel
from ui.common.theme import ChatColors, ThemeController, apply_theme, chat_colors, palette_for

CODE = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"  # a comment'
REPLY = f"""Some **bold** text with `inline code` and a [link](https://example.com).

```python
{CODE}
```

- first item
- second item

| name | size |
|------|------|
| a    | 1    |
| b    | 2    |
"""


def message(
    message_id: int, role: str, content: str, status: MessageStatus = MessageStatus.COMPLETE
) -> ChatMessage:
    return ChatMessage(
        id=message_id,
        conversation_id=1,
        role=role,
        content=content,
        status=status,
        model="SmolLM2 135M",
        stats=None,
        created_at=time.time(),
    )


@pytest.fixture
def chat_view(qtbot: QtBot) -> Iterator[tuple[QListView, MessageListModel, MessageDelegate]]:
    model = MessageListModel()
    view, delegate = show_message_view(qtbot, model, 700)
    yield view, model, delegate


def render(view: QListView, delegate: MessageDelegate, text: str, message_id: int = 1) -> RenderedMessage:
    """The reply as painted; measuring it first (code not yet highlighted) gives the same height."""
    width = view.viewport().width() * 0.7
    measured = delegate.markdown.message(message_id, text, width).height
    highlights = delegate.markdown.highlights
    rendered = delegate.markdown.message(message_id, text, width, highlight=True)
    assert rendered.height == measured
    assert delegate.markdown.highlights - highlights == (text.count("```") + 1) // 2  # one per code block
    return rendered


def test_a_reply_splits_into_text_code_and_text_blocks() -> None:
    blocks = split_blocks(REPLY)
    assert [b.kind for b in blocks] == [BlockKind.TEXT, BlockKind.CODE, BlockKind.TEXT, BlockKind.TEXT]
    assert blocks[1].source == CODE and blocks[1].language == "python" and blocks[1].closed
    assert blocks[2].source == "- first item\n- second item"
    # A loose list (blank lines between items) stays one block, so its numbering is not restarted.
    assert len(split_blocks("1. one\n\n2. two\n\n3. three")) == 1


def test_an_unclosed_fence_is_a_code_block_so_far(
    chat_view: tuple[QListView, MessageListModel, MessageDelegate],
) -> None:
    view, _model, delegate = chat_view
    text = "Here you go:\n\n```js\nconst a = 1;\nconst b"
    blocks = split_blocks(text)
    assert blocks[-1].kind is BlockKind.CODE and not blocks[-1].closed
    assert (blocks[-1].language, blocks[-1].source) == ("js", "const a = 1;\nconst b")
    code = render(view, delegate, text).blocks[-1].document
    assert code.toPlainText() == "const a = 1;\nconst b" and is_monospace(code.defaultFont())


def test_plain_text_skips_the_markdown_reader() -> None:
    assert not looks_like_markdown("Answer 3: Whiskers of the Tide. Whiskers of the Tide.\nA second line.")
    for text in (
        "**bold**",
        "- item",
        "1. item",
        "# Title",
        "a `code` span",
        "| a | b |",
        "see https://x.org",
    ):
        assert looks_like_markdown(text), text


def test_the_rendered_reply_has_a_table_a_list_a_link_and_highlighted_code(
    chat_view: tuple[QListView, MessageListModel, MessageDelegate],
) -> None:
    view, _model, delegate = chat_view
    rendered = render(view, delegate, REPLY)
    text, code, items, table = (item.document for item in rendered.blocks)

    anchors = []
    block = text.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            fmt = iterator.fragment().charFormat()
            if fmt.isAnchor():
                anchors.append(fmt.anchorHref())
            if iterator.fragment().text() == "inline code":
                assert is_monospace(fmt.font())
            iterator += 1
        block = block.next()
    assert anchors == ["https://example.com"]

    assert code.toPlainText() == CODE
    colours = set()
    block = code.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            colours.add(iterator.fragment().charFormat().foreground().color().name())
            iterator += 1
        block = block.next()
    assert len(colours) >= 3, colours  # keywords, strings, comments and names are told apart
    assert is_monospace(code.defaultFont())

    first = items.begin()
    assert first.textList() is not None and first.textList().count() == 2

    tables = [frame for frame in table.rootFrame().childFrames() if frame.__class__.__name__ == "QTextTable"]
    assert len(tables) == 1
    assert (tables[0].rows(), tables[0].columns()) == (3, 2)  # type: ignore[attr-defined]
    assert tables[0].cellAt(2, 0).firstCursorPosition().block().text() == "b"  # type: ignore[attr-defined]


def test_html_in_a_reply_is_shown_as_text(
    chat_view: tuple[QListView, MessageListModel, MessageDelegate],
) -> None:
    view, _model, delegate = chat_view
    rendered = render(view, delegate, "Use <b>tags</b> *carefully*.")
    assert "<b>tags</b>" in rendered.blocks[0].document.toPlainText()


def test_the_code_copy_button_copies_exactly_the_code(
    qtbot: QtBot, chat_view: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, model, delegate = chat_view
    model.set_messages([message(1, "user", "Show me a function."), message(2, "assistant", REPLY)])
    qtbot.waitUntil(lambda: any(hit.code for hit in delegate.hits(1)))
    QGuiApplication.clipboard().setText("something else")
    [copy] = [hit for hit in delegate.hits(1) if hit.code is not None]
    assert copy.label == "Copy"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=copy.rect.center().toPoint())
    assert QGuiApplication.clipboard().text() == CODE
    [copied] = [hit for hit in delegate.hits(1) if hit.code is not None]
    assert copied.label.startswith("Copied")  # feedback on the button itself, for a moment
    assert not view.selectionModel().hasSelection()  # the click was the button's, not the row's


def test_streaming_re_renders_only_the_tail_block(
    qtbot: QtBot, chat_view: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, model, delegate = chat_view
    model.set_messages([message(1, "user", "Go."), message(2, "assistant", "", MessageStatus.STREAMING)])
    pieces = [REPLY[i : i + 7] for i in range(0, len(REPLY), 7)]  # 50 ms batches of a few tokens
    built: list[tuple[QTextDocument, int]] = []  # each block's document and its revision
    total = 0
    for piece in pieces:
        before = delegate.markdown.renders
        model.append_text(2, piece)
        view.viewport().repaint()  # measure and paint, as the view does after each batch
        QApplication.processEvents()
        rendered = delegate.markdown.message(2, model.message(1).content, delegate._bubble_text_width())
        now = [(item.document, item.document.revision()) for item in rendered.blocks]
        # Complete blocks are neither rebuilt nor edited: only the tail (and any block the batch
        # started) is, so a batch renders at most those.
        complete = max(len(built) - 1, 0)
        assert all(now[i][0] is built[i][0] and now[i][1] == built[i][1] for i in range(complete))
        renders = delegate.markdown.renders - before
        assert renders <= len(now) - complete
        total += renders
        built = now
    assert len(built) == 4
    assert total < len(pieces) + len(built)  # against 4 blocks x 60 batches for a full re-render


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours."""

    def luminance(c: QColor) -> float:
        channels = [v / 255 for v in (c.red(), c.green(), c.blue())]
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_both_themes_are_readable(dark: bool) -> None:
    palette = palette_for(dark)
    colors: ChatColors = chat_colors(palette)
    assert colors.dark is dark
    base = palette.color(QPalette.ColorRole.Base)
    for background in (colors.user_bubble, colors.reply_bubble, colors.code_background, colors.code_header):
        assert contrast(colors.text, background) >= 7, background.name()
    for background in (base, colors.reply_bubble, colors.code_header):
        assert contrast(colors.caption, background) >= 3.5, background.name()
    for status in (colors.marker, colors.warning, colors.success):
        assert (
            contrast(status, base) >= 4.5
            and contrast(status, palette.color(QPalette.ColorRole.Window)) >= 4.5
        )
    assert contrast(colors.link, colors.reply_bubble) >= 4.5
    assert (
        contrast(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window)) >= 7
    )


@pytest.fixture
def restored_app_theme(qapp: QApplication) -> Iterator[QApplication]:
    style, palette = qapp.style().name(), QPalette(qapp.palette())
    yield qapp
    for controller in qapp.findChildren(ThemeController):
        controller.setParent(None)
        controller.deleteLater()
    qapp.setStyle(style)
    qapp.setPalette(palette)


def test_the_theme_follows_the_os_colour_scheme(
    qtbot: QtBot,
    restored_app_theme: QApplication,
    chat_view: tuple[QListView, MessageListModel, MessageDelegate],
) -> None:
    app = restored_app_theme
    view, model, delegate = chat_view
    model.set_messages([message(1, "user", "Hi"), message(2, "assistant", REPLY)])
    controller = apply_theme(app)
    assert apply_theme(app) is controller and app.style().name().lower() == "fusion"

    hints = QGuiApplication.styleHints()
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert controller.dark and app.palette().color(QPalette.ColorRole.Base).lightness() < 64
    qtbot.waitUntil(lambda: delegate.markdown.colors.dark)  # repainted in the dark colours
    dark_image = view.grab().toImage()

    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert not controller.dark and app.palette().color(QPalette.ColorRole.Base).lightness() > 192
    qtbot.waitUntil(lambda: not delegate.markdown.colors.dark)
    light_image = view.grab().toImage()

    corner = view.viewport().geometry().topLeft() + QPoint(3, 3)  # the view's background
    assert dark_image.pixelColor(corner).lightness() < 80 and light_image.pixelColor(corner).lightness() > 200


def test_repainting_and_scrolling_back_render_nothing_again(
    qtbot: QtBot, chat_view: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, model, delegate = chat_view
    model.set_messages([message(i, "assistant" if i % 2 else "user", REPLY) for i in range(1, 41)])
    view.scrollToBottom()
    view.viewport().repaint()
    view.scrollToTop()
    view.viewport().repaint()
    renders, highlights = delegate.markdown.renders, delegate.markdown.highlights
    assert renders == 20 * 4  # each reply was built once, block by block; user messages stay plain text
    for _ in range(3):
        view.scrollToBottom()
        view.viewport().repaint()
        view.scrollToTop()
        view.viewport().repaint()
    assert (delegate.markdown.renders, delegate.markdown.highlights) == (renders, highlights)

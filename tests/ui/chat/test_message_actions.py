"""The hover buttons under each message: which show, what a click emits, the branch switcher, tooltips."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QHelpEvent
from PySide6.QtWidgets import QApplication, QListView, QToolTip
from pytestqt.qtbot import QtBot

from app.chat.actions import MessageAction
from app.chat.store import MessageStatus
from app.engine.generation import GenerationStats, StopReason
from tests.ui.chat.chat_helpers import show_message_view
from tests.ui.chat.test_markdown_rendering import REPLY, message
from ui.chat.message_delegate import Hit, MessageDelegate
from ui.chat.message_model import MessageListModel

A = MessageAction


@pytest.fixture
def chat(qtbot: QtBot) -> Iterator[tuple[QListView, MessageListModel, MessageDelegate]]:
    model = MessageListModel()
    model.set_messages(
        [
            message(1, "user", "Write a poem."),
            message(2, "assistant", "Roses are red."),  # the second of three versions
            message(3, "user", "Now in Markdown, with code."),
            message(4, "assistant", REPLY),
            message(5, "user", "And another?"),
            message(6, "assistant", "Violets", MessageStatus.STREAMING),
        ],
        branches={2: (2, 3), 3: (1, 2)},
    )
    view, delegate = show_message_view(qtbot, model, 1400)
    qtbot.waitUntil(lambda: bool(delegate.hits(5)))
    yield view, model, delegate


def actions(hits: list[Hit]) -> list[MessageAction | None]:
    return [hit.action for hit in hits if hit.code is None]


def test_each_message_shows_the_buttons_that_fit_it(
    chat: tuple[QListView, MessageListModel, MessageDelegate],
) -> None:
    _view, _model, delegate = chat
    assert actions(delegate.hits(0)) == [A.EDIT, A.COPY, A.DELETE]
    assert actions(delegate.hits(1)) == [A.PREVIOUS_BRANCH, A.NEXT_BRANCH, A.COPY, A.REGENERATE, A.DELETE]
    assert actions(delegate.hits(2)) == [A.PREVIOUS_BRANCH, A.NEXT_BRANCH, A.EDIT, A.COPY, A.DELETE]
    assert actions(delegate.hits(3)) == [A.COPY, A.REGENERATE, A.DELETE]
    assert [hit.label for hit in delegate.hits(3) if hit.code] == ["Copy"]  # the code block's own button
    assert actions(delegate.hits(5)) == [A.COPY]  # a reply still streaming can only be copied
    # The switcher is at the message's side: left for replies, right for the user's messages.
    reply_hits, user_hits = delegate.hits(1), delegate.hits(2)
    assert reply_hits[0].rect.left() < delegate._view.viewport().width() / 2 < user_hits[-1].rect.right()


def test_clicking_each_button_emits_its_action_and_row(
    qtbot: QtBot, chat: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, _model, delegate = chat
    emitted: list[tuple[int, MessageAction]] = []
    delegate.action_requested.connect(lambda row, action: emitted.append((row, action)))
    expected = []
    for row in range(6):
        for hit in delegate.hits(row):
            if hit.code is None and hit.enabled:
                qtbot.mouseMove(view.viewport(), hit.rect.center().toPoint())
                qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=hit.rect.center().toPoint())
                expected.append((row, hit.action))
    assert emitted == expected
    assert len(expected) == 3 + 5 + 4 + 3 + 3 + 1  # all but the disabled ‹ of version 1/2
    assert not view.selectionModel().hasSelection()  # clicking a button does not select the message


def test_the_branch_switcher_stops_at_the_first_and_last_version(
    qtbot: QtBot, chat: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, model, delegate = chat
    emitted: list[tuple[int, MessageAction]] = []
    delegate.action_requested.connect(lambda row, action: emitted.append((row, action)))
    first, _last = (hit for hit in delegate.hits(2) if hit.action in (A.PREVIOUS_BRANCH, A.NEXT_BRANCH))
    assert not first.enabled  # version 1 of 2: there is no previous one
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=first.rect.center().toPoint())
    assert emitted == []

    model.set_branches({2: (2, 3)})  # the user message has no alternatives any more
    assert A.PREVIOUS_BRANCH not in actions(delegate.hits(2))
    model.set_branches({2: (3, 3), 3: (1, 2)})
    assert [h.enabled for h in delegate.hits(1) if h.action in (A.PREVIOUS_BRANCH, A.NEXT_BRANCH)] == [
        True,
        False,
    ]


def test_buttons_show_on_hover_and_have_tooltips(
    qtbot: QtBot, chat: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, _model, delegate = chat
    [regenerate] = [hit for hit in delegate.hits(3) if hit.action is A.REGENERATE]
    area = regenerate.rect.toAlignedRect()
    qtbot.mouseMove(view.viewport(), QPoint(5, view.viewport().height() - 5))  # away from the row
    QApplication.processEvents()
    away = view.viewport().grab(area).toImage()
    qtbot.mouseMove(view.viewport(), regenerate.rect.center().toPoint())
    qtbot.waitUntil(lambda: view.viewport().grab(area).toImage() != away)  # the button is drawn

    point = regenerate.rect.center().toPoint()
    event = QHelpEvent(QEvent.Type.ToolTip, point, view.viewport().mapToGlobal(point))
    QApplication.sendEvent(view.viewport(), event)
    assert QToolTip.text() == "Write a new reply; this one stays as a version"
    QToolTip.hideText()


def test_in_a_narrow_window_the_caption_gives_way_to_the_buttons(
    qtbot: QtBot, chat: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, model, delegate = chat
    stats = GenerationStats(120, 0, 240, 0.35, 6.0, StopReason.MAX_TOKENS)
    reply = dataclasses.replace(
        model.message(1), model="SmolLM2 135M Instruct (a long model name)", stats=stats
    )
    model.set_messages([model.message(0), reply], branches={reply.id: (2, 3)})
    view.resize(460, 600)
    qtbot.waitUntil(lambda: bool(delegate.hits(1)) and delegate.hits(1)[-1].rect.right() < 460)
    hits = delegate.hits(1)
    assert actions(hits) == [A.PREVIOUS_BRANCH, A.NEXT_BRANCH, A.COPY, A.REGENERATE, A.DELETE]
    assert all(hit.rect.left() >= 0 and hit.rect.right() <= view.viewport().width() for hit in hits)


class UrlCatcher(QObject):
    """Receives the URLs Qt's desktop services would open in the browser."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def test_clicking_a_link_opens_it_and_its_tooltip_shows_the_address(
    qtbot: QtBot, chat: tuple[QListView, MessageListModel, MessageDelegate]
) -> None:
    view, _model, delegate = chat
    handler = UrlCatcher()
    opened = handler.opened
    QDesktopServices.setUrlHandler("https", handler, "open")
    try:
        rect = view.visualRect(view.model().index(3, 0))
        link = next(  # find the link by hit-testing the painted reply, as a user's pointer would
            QPoint(x, y)
            for y in range(rect.top(), rect.top() + 80, 2)
            for x in range(rect.left(), rect.right(), 4)
            if delegate._link_at(QPoint(x, y)) is not None
        )
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=link)
        assert opened == ["https://example.com"]
        QApplication.sendEvent(
            view.viewport(), QHelpEvent(QEvent.Type.ToolTip, link, view.viewport().mapToGlobal(link))
        )
        assert QToolTip.text() == "https://example.com"
        QToolTip.hideText()
    finally:
        QDesktopServices.unsetUrlHandler("https")

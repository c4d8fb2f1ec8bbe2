"""Fixtures the GUI tests share: the app context, a chat window on the starter model, the Model manager."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.core.data_home import DataHome
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, make_window
from ui.chat.window import ChatWindow
from ui.models.manager import ModelManagerWindow


@pytest.fixture
def context(data_home: DataHome) -> Iterator[AppContext]:
    ctx = AppContext.open(data_home)
    yield ctx
    ctx.close()


@pytest.fixture
def window(qtbot: QtBot, context: AppContext) -> Iterator[ChatWindow]:
    """A chat window with the starter model loaded."""
    win = make_window(qtbot, context)
    qtbot.waitUntil(lambda: win.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    yield win
    win.shutdown()
    assert win.worker_thread.isFinished(), "the worker thread must end with its window"


@pytest.fixture
def manager(qtbot: QtBot, context: AppContext) -> Iterator[ModelManagerWindow]:
    window = ModelManagerWindow(context)
    qtbot.addWidget(window)
    window.show()
    yield window
    window.shutdown()

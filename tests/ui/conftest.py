"""Fixtures the GUI tests share: the app context and services, a chat window on the starter model, the
Model manager."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from app.context import AppContext
from app.core.data_home import DataHome
from tests.ui.chat.chat_helpers import LOAD_TIMEOUT_MS, make_window
from ui.chat.window import ChatWindow
from ui.common.workers import running_worker_threads
from ui.gui import ChatWindows
from ui.models.manager import ModelManagerWindow
from ui.services import AppServices


@pytest.fixture(autouse=True)
def no_worker_thread_left() -> Iterator[None]:
    """Fail any test that leaves a worker thread running (set up first, so it checks last: after
    qtbot has closed the test's windows and the other fixtures have shut their services down)."""
    yield
    assert running_worker_threads() == [], "a worker thread outlived its test"


@pytest.fixture
def context(data_home: DataHome) -> Iterator[AppContext]:
    ctx = AppContext.open(data_home)
    yield ctx
    ctx.close()


@pytest.fixture
def services(context: AppContext) -> Iterator[AppServices]:
    """The app-wide services, owned once per test as the application owns them once."""
    app_services = AppServices(context)
    yield app_services
    app_services.shutdown()


@pytest.fixture
def windows(services: AppServices) -> Iterator[ChatWindows]:
    """The app's chat windows, as the application keeps them."""
    keeper = ChatWindows(services)
    yield keeper
    keeper.shutdown_all()


@pytest.fixture
def window(qtbot: QtBot, services: AppServices) -> Iterator[ChatWindow]:
    """A chat window with the starter model loaded."""
    win = make_window(qtbot, services)
    qtbot.waitUntil(lambda: win.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    yield win
    win.shutdown()
    assert win.worker_thread.isFinished(), "the worker thread must end with its window"


@pytest.fixture
def manager(qtbot: QtBot, services: AppServices) -> Iterator[ModelManagerWindow]:
    window = services.model_manager()
    window.show()
    yield window
    services.shutdown()

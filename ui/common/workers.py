"""Workers on QThreads: one way to start and stop them, and slots that always answer.

A worker is a QObject whose slots run on its own QThread (commands arrive as queued calls). Every
slot must end with a result or a failure signal: an exception that escapes a slot is only printed by
Qt, the window never hears of it and stays "generating" or "downloading" for ever. `reports_failure`
turns every exception into the slot's failure signal (a bug also goes to the log with its traceback).
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QThread

from app.core.errors import LlamaDeskError

log = logging.getLogger("ui.workers")

#: How long quitting waits for a worker's current step (a token, a chunk, a header read) to end.
SHUTDOWN_TIMEOUT_MS = 10_000

W = TypeVar("W", bound=QObject)
F = TypeVar("F", bound=Callable[..., Any])

_started: weakref.WeakSet[QThread] = weakref.WeakSet()


def failure_message(exc: BaseException, what: str) -> str:
    """What the user reads when `what` ("loading the model") failed with `exc`."""
    if isinstance(exc, LlamaDeskError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"Failed while {what}: {exc.strerror or exc}."
    return (
        f"Something went wrong while {what} ({type(exc).__name__}: {exc}). This is a bug in Llama Desk; "
        "the log file has the details. You can go on using the app."
    )


def reports_failure(signal: str, what: str, *, leading_args: int = 0) -> Callable[[F], F]:
    """Make a worker slot end with `signal` whatever it raises.

    The signal is emitted with the slot's first `leading_args` arguments (a request id, say), then
    the message. Expected errors (LlamaDeskError) are logged as warnings, anything else as a bug.
    """

    def wrap(slot: F) -> F:
        @functools.wraps(slot)
        def run(self: QObject, *args: Any) -> Any:
            try:
                return slot(self, *args)
            except Exception as exc:
                if isinstance(exc, LlamaDeskError):
                    log.warning("%s failed: %s", what, exc)
                else:
                    log.exception("bug while %s", what)
                getattr(self, signal).emit(*args[:leading_args], failure_message(exc, what))
                return None

        return run  # type: ignore[return-value]

    return wrap


class WorkerThread(Generic[W]):
    """`worker` moved to a QThread of its own (a child of `parent`), started at once."""

    def __init__(self, parent: QObject, worker: W, name: str) -> None:
        self.worker = worker
        self.thread = QThread(parent)
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.finished.connect(worker.deleteLater)
        self.thread.start()
        _started.add(self.thread)

    def stop(self, timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> bool:
        """Ask the thread's event loop to end and wait at most `timeout_ms`; False if it did not."""
        if self.thread.isRunning():
            self.thread.quit()
        return self.wait(timeout_ms)

    def wait(self, timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> bool:
        """Wait at most `timeout_ms` for a thread told to end (by its worker's own shutdown slot)."""
        if self.thread.wait(timeout_ms):
            return True
        log.error("worker thread %s did not stop within %d ms", self.thread.objectName(), timeout_ms)
        return False


def running_worker_threads() -> list[str]:
    """Names of the worker threads still running (a test fixture fails a test that leaves any)."""
    alive = []
    for thread in list(_started):
        try:
            if thread.isRunning():
                alive.append(thread.objectName())
        except RuntimeError:  # its C++ object is gone: it is not running
            continue
    return alive

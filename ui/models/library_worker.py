"""Runs model-library work (reading headers, importing, copying, hashing) off the GUI thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.convert.into_library import ConversionRequest, convert_into_library
from app.convert.pipeline import ConversionProgress, Stage
from app.core.errors import LlamaDeskError
from app.gguf.report import inspect_model
from app.library.store import LibraryModel, ModelLibrary
from ui.common.workers import failure_message

log = logging.getLogger("ui.library")

_PROGRESS_INTERVAL_S = 0.1


class LibraryWorker(QObject):
    """Signals:
    report_ready(int, ModelReport): the header of library model `id` was read.
    report_failed(int, str): it could not be read (moved, damaged).
    import_progress(int, int): bytes done and total of the current import.
    import_finished(LibraryModel): the model is in the library.
    import_failed(str): why not, for the user (cancelled imports say so too).
    conversion_progress(str, int, int): the stage of a checkpoint conversion, its done and total;
        a conversion then ends with import_finished or import_failed like an import.
    """

    report_ready = Signal(int, object)
    report_failed = Signal(int, str)
    import_progress = Signal(int, int)
    import_finished = Signal(object)
    import_failed = Signal(str)
    conversion_progress = Signal(str, int, int)

    def __init__(self, library: ModelLibrary) -> None:
        super().__init__()
        self._library = library
        self._cancel = threading.Event()
        self._last_progress = 0.0

    def expect_request(self) -> None:
        """Forget an old Cancel; the GUI thread calls it just before it queues an import or a conversion,
        so a Cancel pressed before the worker starts still counts."""
        self._cancel.clear()

    def cancel_import(self) -> None:
        """Stop the running import; thread-safe."""
        self._cancel.set()

    @Slot(object)
    def read_reports(self, models: list[tuple[int, Path]]) -> None:
        for model_id, path in models:
            try:
                self.report_ready.emit(model_id, inspect_model(path))
            except Exception as exc:  # one unreadable model must not hide the others' reports
                if not isinstance(exc, LlamaDeskError):
                    log.exception("bug while reading the header of %s", path)
                self.report_failed.emit(model_id, failure_message(exc, f"reading {path.name}"))

    @Slot(str, bool)
    def import_model(self, path: str, copy: bool) -> None:
        self._into_library(
            "import",
            path,
            lambda: self._library.import_model(
                Path(path), copy=copy, progress=self._report, cancel=self._cancel
            ),
        )

    @Slot(object)
    def convert_folder(self, request: ConversionRequest) -> None:
        """Convert a Meta or Hugging Face checkpoint folder into a library model."""
        self._into_library(
            "convert",
            str(request.folder),
            lambda: convert_into_library(
                self._library, request, progress=self._report_conversion, cancel=self._cancel
            ),
        )

    def _into_library(self, verb: str, source: str, work: Callable[[], LibraryModel]) -> None:
        """Run an import or a conversion; it ends with import_finished or import_failed."""
        try:
            model = work()
        except Exception as exc:
            if isinstance(exc, LlamaDeskError | OSError):
                log.info("%s of %s failed: %s", verb, source, exc)
            else:
                log.exception("bug in the %s of %s", verb, source)
            self.import_failed.emit(failure_message(exc, f"{verb}ing {source}"))
            return
        self.import_finished.emit(model)

    def _report_conversion(self, progress: ConversionProgress) -> None:
        if self._progress_due(progress.done, progress.total):
            stage = "Checking the result" if progress.stage is Stage.DONE else progress.stage.value
            self.conversion_progress.emit(stage, progress.done, progress.total)

    def _report(self, done: int, total: int) -> None:
        if self._progress_due(done, total):
            self.import_progress.emit(done, total)

    def _progress_due(self, done: int, total: int) -> bool:
        """At most one progress signal per interval, and always the last one."""
        now = time.monotonic()
        if done == total or now - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = now
            return True
        return False

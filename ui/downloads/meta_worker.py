"""Runs a Meta signed-link download on its own QThread; pause and cancel are thread-safe flags."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.core.errors import LlamaDeskError, OperationCancelledError
from app.downloads.downloader import DownloadControl, DownloadPaused, RetryPolicy
from app.downloads.meta.download import MetaDownloader, MetaProgress
from app.downloads.meta.link import MetaLink
from app.downloads.meta.models import MetaModel
from ui.common.workers import failure_message

log = logging.getLogger("ui.meta_download")

_PROGRESS_INTERVAL_S = 0.1


class MetaDownloadWorker(QObject):
    """Signals:
    files_listed(list[MetaFileStatus]): every file with its size, once the server told them.
    progress(MetaProgress): per-file and total bytes, at most every 100 ms (and the last one).
    download_finished(MetaDownloadResult): every file is in the folder, md5-verified.
    download_stopped(str, str): "paused", "cancelled" or "failed", and a message for the user.
    """

    files_listed = Signal(object)
    progress = Signal(object)
    download_finished = Signal(object)
    download_stopped = Signal(str, str)

    def __init__(self, dest_root: Path, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self._downloader = MetaDownloader(dest_root, policy)
        self._control = DownloadControl()
        self._last_progress = 0.0
        self._latest: MetaProgress | None = None

    def pause(self) -> None:
        """Thread-safe: the running download stops at its next chunk and keeps its partial file."""
        self._control.pause()

    def cancel(self) -> None:
        """Thread-safe: the running download stops and removes its partial files."""
        self._control.cancel()

    def expect_request(self) -> None:
        """Forget an old Pause; the dialog calls it just before it queues a download, so a Pause or
        Cancel pressed before the worker starts still counts."""
        self._control.reset()

    @Slot(object, object, bool)
    def download(self, link: MetaLink, model: MetaModel, allow_unlisted: bool = False) -> None:
        self._latest = None
        try:
            result = self._downloader.download(
                link,
                model,
                control=self._control,
                progress=self._report,
                on_files=self.files_listed.emit,
                allow_unlisted=allow_unlisted,
            )
        except DownloadPaused as paused:
            self._flush_progress()
            self.download_stopped.emit("paused", f"{paused} Press Resume to continue.")
        except OperationCancelledError:
            self.download_stopped.emit(
                "cancelled", "Cancelled; verified files are kept, partial ones removed."
            )
        except Exception as exc:
            self._flush_progress()
            if isinstance(exc, LlamaDeskError):
                log.info("Meta download of %s stopped: %s", model.name, exc)
            else:
                log.exception("bug in the Meta download of %s", model.name)
            self.download_stopped.emit("failed", failure_message(exc, "downloading from Meta"))
        else:
            self.download_finished.emit(result)

    def _flush_progress(self) -> None:
        """Report where the download stopped, even if the throttle held that report back."""
        if self._latest is not None:
            self.progress.emit(self._latest)

    def _report(self, progress: MetaProgress) -> None:
        self._latest = progress
        now = time.monotonic()
        last = progress.done_bytes == progress.total_bytes or progress.file_done == progress.file_total
        if last or now - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.progress.emit(progress)

"""Runs download jobs one at a time on its own thread; pause and cancel are thread-safe flags."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Signal, Slot

from app.core.errors import LlamaDeskError
from app.downloads.downloader import DownloadControl, Downloader, DownloadPaused, DownloadProgress
from app.downloads.hub import HubClient
from app.downloads.jobs import DownloadJobs, JobState
from app.downloads.secrets import TokenStore
from app.library.store import ModelLibrary
from ui.common.workers import failure_message

log = logging.getLogger("ui.downloads")

_PROGRESS_INTERVAL_S = 0.1


class DownloadWorker(QObject):
    """Signals:
    job_progress(int, DownloadProgress): bytes, speed and ETA of job `id`, at most every 100 ms.
    job_state_changed(int, str, str): the job's new JobState and a message for the user ("" if none).
    download_finished(int, LibraryModel): the verified model is in the library.
    """

    job_progress = Signal(int, object)
    job_state_changed = Signal(int, str, str)
    download_finished = Signal(int, object)

    def __init__(self, library: ModelLibrary, jobs: DownloadJobs, tokens: TokenStore) -> None:
        super().__init__()
        self._library = library
        self._jobs = jobs
        self._tokens = tokens
        self._controls: dict[int, DownloadControl] = {}
        self._last_progress = 0.0

    def control(self, job_id: int) -> DownloadControl:
        """The pause/cancel switch of a job; thread-safe, created before the job starts."""
        return self._controls.setdefault(job_id, DownloadControl())

    def expect_run(self, job_id: int) -> None:
        """Forget an old Pause of this job. Called by the GUI thread just before it queues the run, so
        that a Pause or Cancel pressed before the worker picks the run up still counts."""
        self.control(job_id).reset()

    def pause(self, job_id: int) -> None:
        self.control(job_id).pause()

    def pause_all(self) -> None:
        """Pause whatever is running (on shutdown): its partial file stays for the next start."""
        for control in list(self._controls.values()):
            if control.request.value != "cancel":
                control.pause()

    def cancel(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        self.control(job_id).cancel()
        if job is not None and job.state is not JobState.RUNNING:
            # Not running: nothing will notice the flag, so drop its partial file here.
            self._downloader(HubClient()).discard_partial(job.remote)
            self._jobs.set_state(job_id, JobState.CANCELLED)
            self.job_state_changed.emit(job_id, str(JobState.CANCELLED), "Cancelled.")

    @Slot(int)
    def run_job(self, job_id: int) -> None:
        job = self._jobs.get(job_id)
        control = self.control(job_id)
        if job is None or not job.state.is_open or control.request.value == "cancel":
            return
        if control.request.value == "pause":  # paused before the run began: it stays paused
            self._jobs.set_state(job_id, JobState.PAUSED)
            self.job_state_changed.emit(job_id, str(JobState.PAUSED), "Paused.")
            return
        self._jobs.set_state(job_id, JobState.RUNNING)
        self.job_state_changed.emit(job_id, str(JobState.RUNNING), "")
        hub = HubClient(self._tokens.get())
        try:
            hub.require_access(job.remote.repo_id)
            model = self._downloader(hub).download(
                job.remote,
                control=control,
                progress=lambda p: self._report(job_id, p),
                license_id=job.license_id,
            )
        except DownloadPaused as paused:
            self._jobs.set_state(job_id, JobState.PAUSED)
            self.job_state_changed.emit(job_id, str(JobState.PAUSED), str(paused))
        except Exception as exc:  # every failure ends the job, so it never stays "running"
            if not isinstance(exc, LlamaDeskError):
                log.exception("bug while downloading %s", job.remote.filename)
            cancelled = control.request.value == "cancel"
            state = JobState.CANCELLED if cancelled else JobState.FAILED
            message = "Cancelled." if cancelled else failure_message(exc, "downloading")
            self._jobs.set_state(job_id, state, error=None if cancelled else message)
            self.job_state_changed.emit(job_id, str(state), message)
        else:
            self._jobs.set_state(job_id, JobState.DONE, model_id=model.id)
            # The library first, then the job's state: whoever sees DONE finds the model listed.
            self.download_finished.emit(job_id, model)
            self.job_state_changed.emit(job_id, str(JobState.DONE), f"Verified and added: {model.name}")

    def _downloader(self, hub: HubClient) -> Downloader:
        return Downloader(self._library, hub, self._library.models_dir)

    def _report(self, job_id: int, progress: DownloadProgress) -> None:
        now = time.monotonic()
        if progress.done_bytes == progress.total_bytes or now - self._last_progress >= _PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.job_progress.emit(job_id, progress)

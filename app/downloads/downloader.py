"""Downloading a GGUF from the Hub into the library: resumable, verified, never half-visible.

A download writes `<models>/.partial/<key>.part`, resuming from whatever bytes are already
there (after a dropped connection, a pause, or an app restart). The key is the LFS sha256,
or for a file without one a hash of repo, file and commit; a sidecar `<key>.json` records
what the bytes are (repo, file, revision, ETag), so a resume asks for the same object
(`If-Range`) and starts over when the server's object changed, and partials of an older
version of the same file are deleted. The sha256 is computed as bytes arrive, so
verification costs no second read. Transient failures (cut connections, 5xx, 429/503 with
`Retry-After`, silence, a rate too low to ever finish) are retried with backoff, and the
retry budget starts again whenever a connection made real progress. Only a file whose hash
matches the Hub's LFS hash is moved into the library; the library records it as pending
first, so a kill at any point leaves either a resumable partial or a listed model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx2

from app.core.errors import (
    ChecksumMismatchError,
    DownloadStalledError,
    HubBusyError,
    HubError,
    HubOfflineError,
    HubServerError,
    LlamaDeskError,
    NotEnoughDiskError,
    OperationCancelledError,
)
from app.core.safe_names import child_path, is_sha256, safe_basename
from app.downloads.hub import HubClient, RemoteFile
from app.gguf.report import inspect_model
from app.library.store import LibraryModel, ModelLibrary

log = logging.getLogger("downloads")

DISK_MARGIN_BYTES = 64 << 20
HUGGINGFACE_SOURCE = "huggingface"


class StopRequest(StrEnum):
    NONE = ""
    PAUSE = "pause"  # keep the partial file to resume later
    CANCEL = "cancel"  # delete the partial file


@dataclass(frozen=True)
class DownloadProgress:
    done_bytes: int
    total_bytes: int
    bytes_per_s: float
    attempt: int

    @property
    def eta_s(self) -> float | None:
        if self.bytes_per_s <= 0:
            return None
        return (self.total_bytes - self.done_bytes) / self.bytes_per_s


class DownloadControl:
    """Pause or cancel a running download from another thread."""

    def __init__(self) -> None:
        self._request = StopRequest.NONE
        self._lock = threading.Lock()

    def pause(self) -> None:
        with self._lock:
            self._request = StopRequest.PAUSE

    def cancel(self) -> None:
        with self._lock:
            self._request = StopRequest.CANCEL

    def reset(self) -> None:
        with self._lock:
            self._request = StopRequest.NONE

    @property
    def request(self) -> StopRequest:
        with self._lock:
            return self._request


class DownloadPaused(LlamaDeskError):
    """The user paused; the partial file is kept and the download resumes from it."""

    exit_code = 130

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"Paused at {done / 2**20:.0f} of {total / 2**20:.0f} MiB.")
        self.done = done


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # failed connections in a row without progress; progress starts the count again
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    stall_timeout_s: float = 30.0  # no byte for this long counts as a dropped connection
    #: Slower than this over `min_rate_window_s` counts as a dropped connection too: a trickle would
    #: otherwise keep a download "running" for ever (8 KiB/s moves a 4 GB model in six days).
    min_rate_bytes_s: float = 8 * 1024
    min_rate_window_s: float = 60.0
    #: A connection that moved at least this much before failing was progress, not a failure in a row.
    progress_bytes: int = 1 << 20

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))


class RateWatchdog:
    """Raises DownloadStalledError when fewer bytes than the minimum rate arrive over a whole window."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._window_start = clock()
        self._window_bytes = 0

    def count(self, n: int) -> None:
        self._window_bytes += n
        elapsed = self._clock() - self._window_start
        if elapsed < self._policy.min_rate_window_s:
            return
        rate = self._window_bytes / elapsed
        if rate < self._policy.min_rate_bytes_s:
            raise DownloadStalledError(
                f"the server sent only {rate:,.0f} bytes/s for {elapsed:.0f} s, below the "
                f"{self._policy.min_rate_bytes_s / 1024:,.0f} KiB/s a download needs to ever finish"
            )
        self._window_start, self._window_bytes = self._clock(), 0


@dataclass(frozen=True)
class PartialRecord:
    """What the bytes of a partial file are: the sidecar `<key>.json` beside `<key>.part`."""

    repo_id: str
    filename: str
    revision: str
    sha256: str | None
    etag: str | None

    def same_object(self, remote: RemoteFile) -> bool:
        """Whether `remote` is the object these bytes began: the same LFS hash, or else the same
        file at the same commit (its ETag is checked with the server on resume)."""
        if remote.sha256 is not None or self.sha256 is not None:
            return self.sha256 == remote.sha256
        return (self.repo_id, self.filename, self.revision) == (
            remote.repo_id,
            remote.filename,
            remote.revision,
        )


class Downloader:
    def __init__(
        self,
        library: ModelLibrary,
        hub: HubClient,
        models_dir: Path,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._library = library
        self._hub = hub
        self._models_dir = models_dir
        self._partial_dir = models_dir / ".partial"
        self._policy = policy or RetryPolicy()
        self._sleep = sleep

    def partial_path(self, remote: RemoteFile) -> Path:
        """`<key>.part` in the partial folder: the LFS sha256, or a hash of repo, file and commit."""
        if remote.sha256 is not None and is_sha256(remote.sha256):
            key = remote.sha256
        else:
            key = hashlib.sha256(
                f"{remote.repo_id}\0{remote.filename}\0{remote.revision}".encode()
            ).hexdigest()
        return self._partial_dir / f"{key}.part"

    def discard_partial(self, remote: RemoteFile) -> None:
        partial = self.partial_path(remote)
        partial.unlink(missing_ok=True)
        partial.with_suffix(".json").unlink(missing_ok=True)

    def download(
        self,
        remote: RemoteFile,
        *,
        control: DownloadControl | None = None,
        progress: Callable[[DownloadProgress], None] | None = None,
        license_id: str | None = None,
    ) -> LibraryModel:
        """Fetch `remote` into the library; raises DownloadPaused, OperationCancelledError or a HubError."""
        partial, digest = self.fetch(remote, control=control, progress=progress)
        return self._finish(remote, partial, digest, license_id)

    def fetch(
        self,
        remote: RemoteFile,
        *,
        control: DownloadControl | None = None,
        progress: Callable[[DownloadProgress], None] | None = None,
    ) -> tuple[Path, str]:
        """Fetch `remote` into its partial file, resuming, retrying, and checking its sha256 when the
        Hub has one. Returns the complete partial file (the caller moves it) and its sha256.
        """
        control = control or DownloadControl()
        self._partial_dir.mkdir(parents=True, exist_ok=True)
        partial = self.partial_path(remote)
        self._drop_stale_partials(remote)
        record = self._read_record(partial)
        if record is not None and not record.same_object(remote):
            log.info("%s holds another version of %s; starting over", partial.name, remote.filename)
            self.discard_partial(remote)
            record = None
        hasher = hashlib.sha256()
        done = rehash_partial(partial, hasher, remote.size)
        if done and record is None:  # bytes of unknown origin (an older version of the app): keep them
            record = PartialRecord(remote.repo_id, remote.filename, remote.revision, remote.sha256, None)
        if done:
            log.info("resuming %s from %d bytes", partial.name, done)
        self._check_disk(remote.size - done)
        failures = 0
        while done < remote.size:
            before = done
            try:
                done, record = self._fetch(
                    remote, partial, hasher, done, record, control, progress, failures + 1
                )
            except _ObjectChanged as changed:
                log.warning("%s changed on the server (%s); starting over", remote.filename, changed)
                self.discard_partial(remote)
                hasher, done, record = hashlib.sha256(), 0, None
                continue
            except (HubOfflineError, HubServerError, DownloadStalledError, httpx2.TransportError) as exc:
                done = partial.stat().st_size if partial.exists() else 0
                record = self._read_record(partial)  # what the failed attempt learnt (its ETag)
                slow = isinstance(exc, DownloadStalledError)
                if done - before >= self._policy.progress_bytes and not slow:
                    failures = 0  # a flaky line that moves data is not failing: keep going
                failures += 1
                if failures >= self._policy.attempts:
                    if isinstance(exc, HubError):
                        raise
                    raise HubOfflineError(f"the connection kept failing: {type(exc).__name__}") from exc
                wait = self._policy.backoff(failures)
                if isinstance(exc, HubBusyError) and exc.retry_after_s is not None:
                    wait = exc.retry_after_s
                log.warning(
                    "download of %s interrupted (%s); retry %d in %.1f s",
                    remote.filename,
                    exc,
                    failures,
                    wait,
                )
                self._sleep(wait)
        digest = hasher.hexdigest()
        if remote.sha256 and digest != remote.sha256:
            self.discard_partial(remote)
            raise ChecksumMismatchError(remote.filename, remote.sha256, digest)
        return partial, digest

    def _drop_stale_partials(self, remote: RemoteFile) -> None:
        """Partials of other versions of this same file can never be resumed: delete them."""
        current = self.partial_path(remote)
        for sidecar in self._partial_dir.glob("*.json"):
            if sidecar.with_suffix(".part") == current:
                continue
            record = self._read_record(sidecar.with_suffix(".part"))
            if record is not None and (record.repo_id, record.filename) == (remote.repo_id, remote.filename):
                log.info("deleting %s, a partial of an older version of %s", sidecar.stem, remote.filename)
                sidecar.with_suffix(".part").unlink(missing_ok=True)
                sidecar.unlink(missing_ok=True)

    @staticmethod
    def _read_record(partial: Path) -> PartialRecord | None:
        try:
            data = json.loads(partial.with_suffix(".json").read_text(encoding="utf-8"))
            return PartialRecord(
                str(data["repo_id"]),
                str(data["filename"]),
                str(data["revision"]),
                None if data.get("sha256") is None else str(data["sha256"]),
                None if data.get("etag") is None else str(data["etag"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @staticmethod
    def _write_record(partial: Path, record: PartialRecord) -> None:
        sidecar = partial.with_suffix(".json")
        tmp = sidecar.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record.__dict__), encoding="utf-8")
        os.replace(tmp, sidecar)

    def _check_disk(self, remaining: int) -> None:
        free = shutil.disk_usage(self._partial_dir).free
        if remaining + DISK_MARGIN_BYTES > free:
            raise NotEnoughDiskError(str(self._models_dir), remaining + DISK_MARGIN_BYTES, free)

    def _fetch(
        self,
        remote: RemoteFile,
        partial: Path,
        hasher: hashlib._Hash,
        done: int,
        record: PartialRecord | None,
        control: DownloadControl,
        progress: Callable[[DownloadProgress], None] | None,
        attempt: int,
    ) -> tuple[int, PartialRecord]:
        started, started_bytes = time.monotonic(), done
        watchdog = RateWatchdog(self._policy)
        if_range = record.etag if done and record is not None else None
        try:
            with self._hub.open_bytes(remote, done, self._policy.stall_timeout_s, if_range) as response:
                etag = response.headers.get("x-linked-etag") or response.headers.get("etag")
                if done and response.status_code != 206:
                    raise _ObjectChanged("the server sent the whole file instead of the rest")
                if done and record is not None and record.etag and etag and etag != record.etag:
                    raise _ObjectChanged(f"ETag {record.etag} became {etag}")
                if record is None or record.etag != etag:
                    record = PartialRecord(
                        remote.repo_id, remote.filename, remote.revision, remote.sha256, etag
                    )
                    self._write_record(partial, record)
                with partial.open("ab") as out:
                    for chunk in response.iter_bytes():  # as received: a cut loses nothing written
                        request = control.request
                        if request is StopRequest.CANCEL:
                            raise OperationCancelledError(f"the download of {remote.filename}")
                        if request is StopRequest.PAUSE:
                            raise DownloadPaused(done, remote.size)
                        chunk = chunk[: remote.size - done]
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            if exc.errno == 28:  # ENOSPC
                                free = shutil.disk_usage(self._partial_dir).free
                                raise NotEnoughDiskError(
                                    str(self._models_dir), remote.size - done, free
                                ) from exc
                            raise
                        hasher.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            elapsed = max(time.monotonic() - started, 1e-6)
                            progress(
                                DownloadProgress(done, remote.size, (done - started_bytes) / elapsed, attempt)
                            )
                        if done >= remote.size:
                            break
                        watchdog.count(len(chunk))
        except httpx2.ReadTimeout as exc:
            raise DownloadStalledError(
                f"no data from Hugging Face for {self._policy.stall_timeout_s:.0f} s"
            ) from exc
        except OperationCancelledError:
            self.discard_partial(remote)
            raise
        return done, record

    def _finish(self, remote: RemoteFile, partial: Path, digest: str, license_id: str | None) -> LibraryModel:
        """Move the verified partial into the library. The entry is written first, as pending, and
        confirmed after the rename; `ModelLibrary` recovers a pending entry left by a kill."""
        report = inspect_model(partial)  # a GGUF, readable: or an error naming the problem
        target = self._free_target(safe_basename(Path(remote.filename).name))
        pending = self._library.add_pending(
            target,
            partial,
            report,
            source=HUGGINGFACE_SOURCE,
            origin=f"{remote.repo_id}/{remote.filename}@{remote.revision}",
            sha256=digest,
            license_id=license_id,
        )
        try:
            os.replace(partial, target)
        except BaseException:
            self._library.drop_pending(pending)
            raise
        partial.with_suffix(".json").unlink(missing_ok=True)
        return self._library.confirm_pending(pending)

    def _free_target(self, name: str) -> Path:
        if not name.lower().endswith(".gguf"):
            name += ".gguf"
        stem = name[: -len(".gguf")]
        target = child_path(self._models_dir, name)
        counter = 2
        while target.exists() or self._library.is_pending_target(target):
            target = child_path(self._models_dir, f"{stem}-{counter}.gguf")
            counter += 1
        return target


def rehash_partial(partial: Path, hasher: hashlib._Hash, total: int) -> int:
    """Feed the bytes a previous run left into `hasher`; returns their count (0 if none or too many)."""
    if not partial.exists():
        return 0
    size = partial.stat().st_size
    if size > total:  # not a prefix of this file: start over
        partial.unlink()
        return 0
    with partial.open("rb") as f:
        while chunk := f.read(8 << 20):
            hasher.update(chunk)
    return size


class _ObjectChanged(Exception):
    """The server's object is no longer the one the partial file holds the start of."""

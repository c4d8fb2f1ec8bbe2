"""Downloading a GGUF from the Hub into the library: resumable, verified, never half-visible.

A download writes `<models>/.partial/<sha-or-name>.part`, resuming from whatever bytes
are already there (after a dropped connection, a pause, or an app restart). The sha256
is computed as bytes arrive, so verification costs no second read (after a restart, the
bytes already on disk are hashed once to resume the digest). Transient failures (cut
connections, 5xx, stalls) are retried with backoff. Only a file whose hash matches the
Hub's LFS hash is moved into the library, atomically; a mismatch discards the partial.
"""

from __future__ import annotations

import hashlib
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

from app.errors import (
    ChecksumMismatchError,
    DownloadStalledError,
    HubError,
    HubOfflineError,
    HubServerError,
    LlamaDeskError,
    NotEnoughDiskError,
    OperationCancelledError,
)
from app.hub import HubClient, RemoteFile
from app.library import LibraryModel, ModelLibrary
from app.model_report import inspect_model

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

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"Paused at {done / 2**20:.0f} of {total / 2**20:.0f} MiB.")
        self.done = done


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    stall_timeout_s: float = 30.0  # no byte for this long counts as a dropped connection

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.first_backoff_s * 2 ** (attempt - 1))


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
        key = remote.sha256 or f"{remote.repo_id}--{remote.filename}".replace("/", "--")
        return self._partial_dir / f"{key}.part"

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
        hasher = hashlib.sha256()
        done = rehash_partial(partial, hasher, remote.size)
        if done:
            log.info("resuming %s from %d bytes", partial.name, done)
        self._check_disk(remote.size - done)
        attempt = 0
        while done < remote.size:
            attempt += 1
            try:
                done = self._fetch(remote, partial, hasher, done, control, progress, attempt)
            except _RangeIgnored:
                log.warning("server ignored the resume offset for %s; starting over", remote.filename)
                partial.unlink(missing_ok=True)
                hasher, done = hashlib.sha256(), 0
                continue
            except (HubOfflineError, HubServerError, DownloadStalledError, httpx2.TransportError) as exc:
                if attempt >= self._policy.attempts:
                    if isinstance(exc, HubError):
                        raise
                    raise HubOfflineError(f"the connection kept failing: {type(exc).__name__}") from exc
                wait = self._policy.backoff(attempt)
                log.warning(
                    "download of %s interrupted (%s); retry %d in %.1f s", remote.filename, exc, attempt, wait
                )
                self._sleep(wait)
                done = partial.stat().st_size if partial.exists() else 0
        digest = hasher.hexdigest()
        if remote.sha256 and digest != remote.sha256:
            partial.unlink(missing_ok=True)
            raise ChecksumMismatchError(remote.filename, remote.sha256, digest)
        return partial, digest

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
        control: DownloadControl,
        progress: Callable[[DownloadProgress], None] | None,
        attempt: int,
    ) -> int:
        started, started_bytes = time.monotonic(), done
        try:
            with self._hub.open_bytes(remote, done, self._policy.stall_timeout_s) as response:
                if done and response.status_code != 206:
                    raise _RangeIgnored()  # appending a whole second copy would corrupt the file
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
        except httpx2.ReadTimeout as exc:
            raise DownloadStalledError(
                f"no data from Hugging Face for {self._policy.stall_timeout_s:.0f} s"
            ) from exc
        except OperationCancelledError:
            partial.unlink(missing_ok=True)
            raise
        return done

    def _finish(self, remote: RemoteFile, partial: Path, digest: str, license_id: str | None) -> LibraryModel:
        inspect_model(partial)  # a GGUF, readable: or an error naming the problem
        target = self._free_target(Path(remote.filename).name)
        os.replace(partial, target)
        try:
            return self._library.add_owned(
                target,
                source=HUGGINGFACE_SOURCE,
                origin=f"{remote.repo_id}/{remote.filename}@{remote.revision}",
                sha256=digest,
                license_id=license_id,
            )
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def _free_target(self, name: str) -> Path:
        target = self._models_dir / name
        counter = 2
        while target.exists():
            target = self._models_dir / f"{Path(name).stem}-{counter}.gguf"
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


class _RangeIgnored(Exception):
    """The server answered a resume request with the whole file."""

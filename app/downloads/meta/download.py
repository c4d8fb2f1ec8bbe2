"""Downloading an original Meta checkpoint through a signed link: resumable, md5-verified, link-safe.

Every file is written as `<name>.part` and gets its final name only once its md5 matches the
model's checklist, so a final name always means a verified file: later runs skip it, and
nothing ever truncates or overwrites it. A link that expired or is used up (403) stops the
download with the finished files and the partial kept; a fresh link resumes each partial
with `Range: bytes=N-` (the md5 is recomputed over the partial first, then continued as the
bytes stream). Sizes come from `GET` with `Range: bytes=0-0` (CloudFront may refuse HEAD).
Dropped connections, stalls and 5xx answers are retried with backoff.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx2

from app.core.errors import (
    DownloadStalledError,
    MetaChecksumMismatchError,
    MetaLinkExpiredError,
    MetaServerError,
    MetaUnlistedFileError,
    NotEnoughDiskError,
    OperationCancelledError,
)
from app.core.logs import hide_signatures_in_http_logs
from app.downloads.downloader import (
    DownloadControl,
    DownloadPaused,
    RateWatchdog,
    RetryPolicy,
    StopRequest,
    rehash_partial,
)
from app.downloads.hub import retry_after_s
from app.downloads.meta.link import MetaLink
from app.downloads.meta.models import MetaModel, PlannedFile, plan_files

log = logging.getLogger("downloads.meta")

PART_SUFFIX = ".part"
DISK_FACTOR = 1.1  # as llama-stack's downloader: room for the remaining bytes plus a tenth
CONNECT_TIMEOUT_S = 10.0
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


@dataclass(frozen=True)
class MetaProgress:
    file: str  # local path of the file being fetched, relative to the model's folder
    file_done: int
    file_total: int
    done_bytes: int  # over the whole model, verified files included
    total_bytes: int
    bytes_per_s: float  # since this run started


@dataclass(frozen=True)
class MetaFileStatus:
    planned: PlannedFile
    size: int
    have: int  # bytes on disk: `size` once verified, the partial's length before that
    verified: bool


@dataclass(frozen=True)
class MetaDownloadResult:
    folder: Path  # params.json, consolidated.NN.pth, tokenizer.model and the checklists
    files: tuple[str, ...]
    unverified: tuple[str, ...]  # files no checklist lists: empty unless allowed with allow_unlisted


def parse_checklist(text: str) -> dict[str, str]:
    """`md5sum` output (`<md5>  <file>`, or ` *<file>` in binary mode) as {file: md5}, `./` stripped."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*([0-9a-fA-F]{32})\s+\*?(.+?)\s*", line)
        if match is None:
            if line.strip():
                log.warning("ignoring a checklist line that is not `<md5>  <file>`: %.80r", line)
            continue
        sums[match.group(2).removeprefix("./")] = match.group(1).lower()
    return sums


class MetaDownloader:
    """Fetches one Meta model into `<dest_root>/<model name>/`; one instance can serve many links."""

    def __init__(
        self,
        dest_root: Path,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._root = dest_root
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        hide_signatures_in_http_logs()

    def folder(self, model: MetaModel) -> Path:
        return self._root / model.name

    def download(
        self,
        link: MetaLink,
        model: MetaModel,
        *,
        control: DownloadControl | None = None,
        progress: Callable[[MetaProgress], None] | None = None,
        on_files: Callable[[list[MetaFileStatus]], None] | None = None,
        allow_unlisted: bool = False,
    ) -> MetaDownloadResult:
        """Fetch and verify every file of `model`; raises DownloadPaused, OperationCancelledError,
        MetaLinkExpiredError (files kept: paste a fresh link to resume), MetaChecksumMismatchError,
        MetaUnlistedFileError (a file its checklist does not list, unless `allow_unlisted`),
        MetaServerError or NotEnoughDiskError. `on_files` gets the file list once sizes are known."""
        control = control or DownloadControl()
        self._refuse_expired(link)
        folder = self.folder(model)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with self._client() as client:
                fetch = _Fetch(client, link, self._policy, self._sleep, control)
                files = self._status(fetch, model)
                if on_files is not None:
                    on_files(files)
                self._check_disk(folder, sum(f.size - f.have for f in files))
                return self._download(fetch, folder, files, progress, allow_unlisted)
        except OperationCancelledError:
            self._discard_partials(folder, model)
            raise

    def _download(
        self,
        fetch: _Fetch,
        folder: Path,
        files: list[MetaFileStatus],
        progress: Callable[[MetaProgress], None] | None,
        allow_unlisted: bool,
    ) -> MetaDownloadResult:
        total = sum(f.size for f in files)
        tally = _Tally(sum(f.have for f in files), total, time.monotonic(), progress)
        checklists: dict[str, dict[str, str]] = {}
        unverified: list[str] = []
        for status in files:
            planned = status.planned
            target = folder / planned.local_path
            expected: str | None = None
            if not planned.is_checklist:
                expected = checklists[planned.checklist].get(planned.local_path)
                if expected is None:
                    if not allow_unlisted:
                        if not status.verified:
                            _part(target).unlink(missing_ok=True)
                        raise MetaUnlistedFileError(planned.local_path, planned.checklist)
                    log.warning("%s does not list %s: it is not verified", planned.checklist, target.name)
                    unverified.append(planned.local_path)
            if not status.verified:
                fetch.file(planned, target, status.size, expected, tally)
            if planned.is_checklist:
                checklists[planned.local_path] = parse_checklist(target.read_text(encoding="utf-8"))
        log.info("%d files of %s verified in %s", len(files), folder.name, folder)
        return MetaDownloadResult(folder, tuple(f.planned.local_path for f in files), tuple(unverified))

    def _status(self, fetch: _Fetch, model: MetaModel) -> list[MetaFileStatus]:
        folder = self.folder(model)
        statuses = []
        for planned in plan_files(model):
            target = folder / planned.local_path
            if target.is_file():
                size = target.stat().st_size
                statuses.append(MetaFileStatus(planned, size, size, verified=True))
                continue
            size = fetch.size(planned)
            partial = _part(target)
            have = partial.stat().st_size if partial.is_file() else 0
            statuses.append(MetaFileStatus(planned, size, have if have <= size else 0, verified=False))
        return statuses

    def _client(self) -> httpx2.Client:
        timeout = httpx2.Timeout(self._policy.stall_timeout_s, connect=CONNECT_TIMEOUT_S)
        return httpx2.Client(timeout=timeout, headers={"Accept-Encoding": "identity"}, follow_redirects=True)

    @staticmethod
    def _refuse_expired(link: MetaLink) -> None:
        if link.is_expired():
            raise MetaLinkExpiredError(f"it {link.describe_expiry()}")

    @staticmethod
    def _check_disk(folder: Path, remaining: int) -> None:
        needed = int(remaining * DISK_FACTOR)
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise NotEnoughDiskError(str(folder), needed, free)

    def _discard_partials(self, folder: Path, model: MetaModel) -> None:
        """A cancel leaves no partial behind; verified files stay (a later download skips them)."""
        for planned in plan_files(model):
            _part(folder / planned.local_path).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@dataclass
class _Tally:
    """Bytes done over the whole model, for progress reports."""

    done: int
    total: int
    started: float
    report: Callable[[MetaProgress], None] | None
    fetched: int = 0  # bytes received in this run, for the speed

    def add(self, name: str, file_done: int, file_total: int, received: int) -> None:
        self.done += received
        self.fetched += received
        if self.report is not None:
            speed = self.fetched / max(time.monotonic() - self.started, 1e-6)
            self.report(MetaProgress(name, file_done, file_total, self.done, self.total, speed))


class _Retry(Exception):
    """A failure worth another attempt: 5xx, 429, a dropped connection, a stall, a trickle."""

    def __init__(self, reason: str, *, slow: bool = False, wait_s: float | None = None) -> None:
        super().__init__(reason)
        self.slow = slow  # the line moved bytes, too slowly to ever finish: no fresh retry count
        self.wait_s = wait_s  # what the server's Retry-After asked for


class _Fetch:
    """The HTTP side of one run: sizes and file bodies, with retries, through one signed link."""

    def __init__(
        self,
        client: httpx2.Client,
        link: MetaLink,
        policy: RetryPolicy,
        sleep: Callable[[float], None],
        control: DownloadControl,
    ) -> None:
        self._client = client
        self._link = link
        self._policy = policy
        self._sleep = sleep
        self._control = control
        self._answered = False  # whether the server has served anything through this link yet

    def size(self, planned: PlannedFile) -> int:
        """The file's length from `Content-Range` of a one-byte GET (HEAD may be refused)."""
        attempt = 0
        while True:
            self._check_control(0, 0)
            try:
                with self._open(planned, "bytes=0-0") as response:
                    if response.status_code == 206:
                        response.read()  # the one byte: the connection stays open for the next request
                        return _content_range(response)[2]
                    return int(response.headers["content-length"])  # a 200: the range was ignored
            except _Retry as exc:
                attempt = self._wait_or_give_up(planned, attempt + 1, exc)

    def file(
        self, planned: PlannedFile, target: Path, size: int, expected_md5: str | None, tally: _Tally
    ) -> None:
        """Fetch `planned` into `target.part`, from where it stopped; verify, then give it its name."""
        partial = _part(target)
        hasher = hashlib.md5(usedforsecurity=False)
        have = rehash_partial(partial, hasher, size)
        if have:
            log.info("resuming %s from byte %d of %d", planned.remote_path, have, size)
        tally.add(planned.local_path, have, size, 0)
        attempt, furthest = 0, have
        while have < size:
            self._check_control(tally.done, tally.total)
            try:
                have, hasher = self._stream(planned, partial, hasher, have, size, tally)
            except _Retry as exc:
                have = partial.stat().st_size if partial.exists() else 0
                if have > furthest and not exc.slow:  # got further than any before: a fresh count
                    attempt, furthest = 0, have
                attempt = self._wait_or_give_up(planned, attempt + 1, exc)
        digest = hasher.hexdigest()
        if expected_md5 is not None and digest != expected_md5:
            partial.unlink(missing_ok=True)
            raise MetaChecksumMismatchError(planned.local_path, expected_md5, digest)
        partial.replace(target)
        log.info("%s verified (%d bytes)", planned.local_path, size)

    def _stream(
        self,
        planned: PlannedFile,
        partial: Path,
        hasher: hashlib._Hash,
        have: int,
        size: int,
        tally: _Tally,
    ) -> tuple[int, hashlib._Hash]:
        with self._open(planned, f"bytes={have}-" if have else None) as response:
            if have and (response.status_code != 206 or _content_range(response)[0] != have):
                # Not our offset: append nothing; start this (unverified) partial over.
                log.warning("server ignored the resume offset of %s; starting it over", planned.remote_path)
                partial.unlink(missing_ok=True)
                tally.done -= have
                return 0, hashlib.md5(usedforsecurity=False)
            watchdog = RateWatchdog(self._policy)
            with partial.open("ab") as out:
                for chunk in response.iter_bytes():  # as received: a cut loses nothing written
                    self._check_control(tally.done, tally.total)
                    chunk = chunk[: size - have]
                    _write(out, chunk, partial, size - have)
                    hasher.update(chunk)
                    have += len(chunk)
                    tally.add(planned.local_path, have, size, len(chunk))
                    if have >= size:
                        break
                    try:
                        watchdog.count(len(chunk))
                    except DownloadStalledError as exc:
                        raise _Retry(str(exc), slow=True) from exc
        if have < size:
            raise _Retry(f"the answer ended after {have} of {size} bytes")
        return have, hasher

    @contextlib.contextmanager
    def _open(self, planned: PlannedFile, byte_range: str | None) -> Iterator[httpx2.Response]:
        """A streamed GET; 403 means the link is spent, 5xx and lost connections are worth a retry."""
        headers = {"Range": byte_range} if byte_range else {}
        url = self._link.file_url(planned.remote_path)  # holds the Signature: never logged
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status == 403:
                    detail = f"the server answered 403 Forbidden for {planned.remote_path}"
                    if not self._answered:  # refused from the start: perhaps not a link for this model
                        detail += "; a link only covers the models it was requested for"
                    raise MetaLinkExpiredError(detail)
                if status >= 500 or status == 429:
                    wait = retry_after_s(response.headers.get("retry-after"))
                    raise _Retry(f"the server answered {status}", wait_s=wait)
                if status not in (200, 206):
                    raise MetaServerError(f"the server answered {status} for {planned.remote_path}")
                self._answered = True
                yield response
        except httpx2.TransportError as exc:
            raise _Retry(f"connection lost: {type(exc).__name__}") from exc

    def _wait_or_give_up(self, planned: PlannedFile, attempt: int, exc: _Retry) -> int:
        if attempt >= self._policy.attempts:
            raise MetaServerError(f"{planned.remote_path}: {exc}") from exc
        wait = exc.wait_s if exc.wait_s is not None else self._policy.backoff(attempt)
        log.warning("%s: %s; retry %d in %.1f s", planned.remote_path, exc, attempt, wait)
        self._sleep(wait)
        return attempt

    def _check_control(self, done: int, total: int) -> None:
        request = self._control.request
        if request is StopRequest.CANCEL:
            raise OperationCancelledError("the Meta download")
        if request is StopRequest.PAUSE:
            raise DownloadPaused(done, total)


def _content_range(response: httpx2.Response) -> tuple[int, int, int]:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
    if match is None:
        raise _Retry("a partial answer without a valid Content-Range")
    first, last, total = (int(g) for g in match.groups())
    return first, last, total


def _part(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def _write(out: BinaryIO, chunk: bytes, partial: Path, remaining: int) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            free = shutil.disk_usage(partial.parent).free
            raise NotEnoughDiskError(str(partial.parent), remaining, free) from exc
        raise

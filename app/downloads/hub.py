"""Hugging Face Hub access through the real `huggingface_hub` client (HF_ENDPOINT honoured).

Every Hub failure is turned into one of our own errors that says what the user can do:
a gated repo without a token, with a token but no access yet (license not accepted, or
access requested and pending), a missing repo or file, or no network at all.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi, constants, get_session, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import hf_raise_for_status

from app.core.errors import (
    HubAccessPendingError,
    HubBusyError,
    HubError,
    HubLicenseNotAcceptedError,
    HubNotFoundError,
    HubNoTokenError,
    HubOfflineError,
    HubServerError,
    HubUnsafeListingError,
)
from app.core.safe_names import is_commit_id, is_safe_repo_path, is_sha256

log = logging.getLogger("hub")

#: Timeouts for metadata calls; downloads set their own read timeout (the stall watchdog).
CONNECT_TIMEOUT_S = 10.0
MAX_REDIRECTS = 5
#: A metadata call the server answers 429/503 is tried this often, waiting as `Retry-After` says.
BUSY_ATTEMPTS = 4
#: The longest wait a `Retry-After` may ask for; a longer one is waited this long, then tried again.
MAX_RETRY_AFTER_S = 120.0

_T = TypeVar("_T")


def origin(url: httpx2.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the default one filled in): what a credential is scoped to."""
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), port


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (a number or an HTTP date), capped; None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class HubAccess(StrEnum):
    GRANTED = "granted"
    NO_TOKEN = "no token"
    NOT_ACCEPTED = "license not accepted"
    PENDING = "access pending"


@dataclass(frozen=True)
class RemoteFile:
    repo_id: str
    filename: str
    revision: str  # the commit the listing came from, so every byte comes from one version
    size: int
    sha256: str | None  # the LFS object id; None for small files stored in git

    @property
    def quantization(self) -> str | None:
        """The quantization named in the file name (`…-Q4_K_M.gguf`), if any."""
        stem = Path(self.filename).stem.upper()
        for part in reversed(stem.replace(".", "-").split("-")):
            if part.startswith(("Q", "IQ", "F16", "BF16", "F32")) and any(c.isdigit() for c in part):
                return part
        return None


@dataclass(frozen=True)
class RepoListing:
    repo_id: str
    revision: str
    gated: bool
    license: str | None
    files: list[RemoteFile]  # the files asked for: GGUF files, or a checkpoint's


DEFAULT_QUANT = "Q4_K_M"


def choose_file(listing: RepoListing, filename: str | None = None, quant: str | None = None) -> RemoteFile:
    """The file asked for by name or quantization; with neither, the only file or the Q4_K_M one."""
    if not listing.files:
        raise HubNotFoundError(f"{listing.repo_id} has no .gguf files.")
    available = ", ".join(sorted(f.filename for f in listing.files))
    if filename:
        match = next((f for f in listing.files if f.filename == filename), None)
        if match is None:
            raise HubNotFoundError(f"{listing.repo_id} has no file {filename}. It has: {available}.")
        return match
    wanted = (quant or DEFAULT_QUANT).upper()
    matches = [f for f in listing.files if f.quantization == wanted]
    if len(matches) == 1:
        return matches[0]
    if quant is None and len(listing.files) == 1:
        return listing.files[0]
    problem = "several files match" if matches else "no file matches"
    raise HubNotFoundError(
        f"{problem} {wanted} in {listing.repo_id}; pick one with --file. It has: {available}."
    )


_CHECKPOINT_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
    }
)


def _is_checkpoint_file(name: str) -> bool:
    return "/" not in name and (name.endswith(".safetensors") or name in _CHECKPOINT_FILES)


class HubClient:
    """The Hub's API and files. The token is sent only to the endpoint's own origin, on every hop."""

    def __init__(
        self,
        token: str | None = None,
        endpoint: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self._origin = origin(httpx2.URL(self.endpoint))
        self._token = token or None
        self._api = HfApi(endpoint=self.endpoint, token=self._token or False)
        self._sleep = sleep

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def list_gguf_files(self, repo_id: str, revision: str | None = None) -> RepoListing:
        """The repo's GGUF files with sizes and the sha256 the Hub records for each."""
        return self._list_files(repo_id, revision, lambda name: name.lower().endswith(".gguf"))

    def list_checkpoint_files(self, repo_id: str, revision: str | None = None) -> RepoListing:
        """What converting the repo's safetensors checkpoint needs: weights, index, config, tokenizer.

        Meta's own format, often also in the repo under `original/`, is left out (it is the same weights).
        """
        listing = self._list_files(repo_id, revision, _is_checkpoint_file)
        if not any(f.filename.endswith(".safetensors") for f in listing.files):
            raise HubNotFoundError(f"{repo_id} has no .safetensors weights to convert.")
        return listing

    def _list_files(self, repo_id: str, revision: str | None, keep: Callable[[str], bool]) -> RepoListing:
        def model_info() -> ModelInfo:
            with self._mapped_errors(repo_id):
                return self._api.model_info(
                    repo_id, revision=revision, files_metadata=True, timeout=CONNECT_TIMEOUT_S
                )

        info = self._when_not_busy(model_info)
        commit = info.sha or revision or "main"
        if info.sha is not None and not is_commit_id(info.sha):
            raise HubUnsafeListingError(repo_id, f"the commit id {str(info.sha)[:60]!r} is not one")
        files = []
        for sibling in info.siblings or []:
            name = sibling.rfilename
            if not is_safe_repo_path(name):
                raise HubUnsafeListingError(repo_id, f"the file name {str(name)[:80]!r} is not a plain path")
            if not keep(name):
                continue
            lfs = sibling.lfs
            if lfs is not None and not is_sha256(lfs.sha256):
                raise HubUnsafeListingError(repo_id, f"the sha256 of {name} is {str(lfs.sha256)[:80]!r}")
            size = (lfs.size if lfs else sibling.size) or 0
            if not isinstance(size, int) or size < 0:
                raise HubUnsafeListingError(repo_id, f"the size of {name} is {size!r}")
            files.append(
                RemoteFile(
                    repo_id=repo_id,
                    filename=name,
                    revision=commit,
                    size=size,
                    sha256=lfs.sha256 if lfs else None,
                )
            )
        card = info.card_data.to_dict() if info.card_data else {}
        license_id = card.get("license") or next(
            (t.removeprefix("license:") for t in info.tags or [] if t.startswith("license:")), None
        )
        return RepoListing(repo_id, commit, bool(info.gated), license_id, files)

    def _when_not_busy(self, call: Callable[[], _T]) -> _T:
        """`call()`, waiting and trying again while the server answers 429/503 (as `Retry-After` says)."""
        for attempt in range(1, BUSY_ATTEMPTS + 1):
            try:
                return call()
            except HubBusyError as exc:
                if attempt == BUSY_ATTEMPTS:
                    raise
                wait = exc.retry_after_s if exc.retry_after_s is not None else 2.0**attempt
                log.warning("%s; waiting %.0f s (try %d of %d)", exc, wait, attempt, BUSY_ATTEMPTS)
                self._sleep(wait)
        raise AssertionError("unreachable")

    def check_access(self, repo_id: str) -> HubAccess:
        """Whether this token may download from `repo_id` (always granted for public repos)."""

        def auth_check() -> None:
            with self._mapped_errors(repo_id):
                self._api.auth_check(repo_id, token=self._token or False)

        try:
            self._when_not_busy(auth_check)
        except HubNoTokenError:
            return HubAccess.NO_TOKEN
        except HubAccessPendingError:
            return HubAccess.PENDING
        except HubLicenseNotAcceptedError:
            return HubAccess.NOT_ACCEPTED
        return HubAccess.GRANTED

    def require_access(self, repo_id: str) -> None:
        """Raise the error that says why this token cannot download from `repo_id`, if it cannot."""
        access = self.check_access(repo_id)
        if access is HubAccess.NO_TOKEN:
            raise HubNoTokenError(repo_id)
        if access is HubAccess.PENDING:
            raise HubAccessPendingError(repo_id, self.endpoint)
        if access is HubAccess.NOT_ACCEPTED:
            raise HubLicenseNotAcceptedError(repo_id, self.endpoint)

    def search_gguf(self, query: str, limit: int = 30) -> list[str]:
        """Repo ids of GGUF models matching `query`, most downloaded first."""

        def search() -> list[str]:
            with self._mapped_errors(query):
                models = self._api.list_models(search=query, filter="gguf", sort="downloads", limit=limit)
                return [m.id for m in models]

        return self._when_not_busy(search)

    def file_url(self, remote: RemoteFile) -> str:
        return hf_hub_url(remote.repo_id, remote.filename, revision=remote.revision, endpoint=self.endpoint)

    @contextlib.contextmanager
    def open_bytes(
        self, remote: RemoteFile, start: int, read_timeout_s: float, if_range: str | None = None
    ) -> Iterator[httpx2.Response]:
        """Stream `remote` from byte `start` (answers 200 or 206; a redirect to a CDN gets no token).

        With `if_range` (the ETag the first bytes came with), a server whose object changed since
        answers 200 with the whole new file instead of the rest of the old one.
        """
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
            if if_range:
                headers["If-Range"] = if_range
        timeout = httpx2.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S)
        with (
            self._mapped_errors(remote.repo_id, remote.filename),
            self._follow(self.file_url(remote), headers, timeout, remote) as response,
        ):
            yield response

    def read_range(self, remote: RemoteFile, start: int, length: int) -> bytes:
        """`length` bytes of `remote` from `start` (a few MB of header, not the file)."""
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        timeout = httpx2.Timeout(CONNECT_TIMEOUT_S)

        def read() -> bytes:
            with (
                self._mapped_errors(remote.repo_id, remote.filename),
                self._follow(self.file_url(remote), headers, timeout, remote) as response,
            ):
                return response.read()[:length]

        return self._when_not_busy(read)

    def _auth_headers(self, url: httpx2.URL) -> dict[str, str]:
        """The Authorization header for a request to `url`: only to the endpoint's own origin."""
        if self._token and origin(url) == self._origin:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    @contextlib.contextmanager
    def _follow(
        self, url: str, headers: dict[str, str], timeout: httpx2.Timeout, remote: RemoteFile
    ) -> Iterator[httpx2.Response]:
        """GET `url`, following redirects by hand so each hop decides on the token by its resolved
        origin (absolute, scheme-relative and relative `Location`s alike)."""
        target = httpx2.URL(url)
        for _hop in range(MAX_REDIRECTS + 1):
            with get_session().stream(
                "GET",
                target,
                headers=headers | self._auth_headers(target),
                timeout=timeout,
                follow_redirects=False,
            ) as r:
                if r.is_redirect and "location" in r.headers:
                    target = r.url.join(r.headers["location"])
                    if target.scheme not in ("http", "https"):
                        raise HubError(f"Hugging Face redirected {remote.filename} to a {target.scheme} URL.")
                    continue
                hf_raise_for_status(r)
                yield r
                return
        raise HubError(f"Too many redirects fetching {remote.filename} from {remote.repo_id}.")

    @contextlib.contextmanager
    def _mapped_errors(self, repo_id: str, filename: str | None = None) -> Iterator[None]:
        what = f"{filename} in {repo_id}" if filename else repo_id
        try:
            yield
        except GatedRepoError as exc:  # before RepositoryNotFoundError: it is a subclass
            status = exc.response.status_code if exc.response is not None else None
            if status == 401 or not self._token:
                raise HubNoTokenError(repo_id) from exc
            message = str(exc).lower()
            if "awaiting" in message or "pending" in message:
                raise HubAccessPendingError(repo_id, self.endpoint) from exc
            raise HubLicenseNotAcceptedError(repo_id, self.endpoint) from exc
        except RevisionNotFoundError as exc:
            raise HubNotFoundError(f"{repo_id} has no revision by that name.") from exc
        except EntryNotFoundError as exc:
            raise HubNotFoundError(f"{what} does not exist on Hugging Face.") from exc
        except RepositoryNotFoundError as exc:
            raise HubNotFoundError(
                f"No model {repo_id} on Hugging Face (or it is private and this token cannot see it)."
            ) from exc
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (429, 503):
                after = retry_after_s(exc.response.headers.get("retry-after")) if exc.response else None
                raise HubBusyError(status, what, after) from exc
            error = HubServerError if status >= 500 else HubError
            raise error(f"Hugging Face answered {status} for {what}.") from exc
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise HubOfflineError(type(exc).__name__) from exc

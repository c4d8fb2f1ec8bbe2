"""Hugging Face Hub access through the real `huggingface_hub` client (HF_ENDPOINT honoured).

Every Hub failure is turned into one of our own errors that says what the user can do:
a gated repo without a token, with a token but no access yet (license not accepted, or
access requested and pending), a missing repo or file, or no network at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, get_session, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import hf_raise_for_status

from app.errors import (
    HubAccessPendingError,
    HubError,
    HubLicenseNotAcceptedError,
    HubNotFoundError,
    HubNoTokenError,
    HubOfflineError,
    HubServerError,
)

log = logging.getLogger("hub")

#: Timeouts for metadata calls; downloads set their own read timeout (the stall watchdog).
CONNECT_TIMEOUT_S = 10.0


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
    def __init__(self, token: str | None = None, endpoint: str | None = None) -> None:
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self._token = token or None
        self._api = HfApi(endpoint=self.endpoint, token=self._token or False)

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
        with self._mapped_errors(repo_id):
            info = self._api.model_info(
                repo_id, revision=revision, files_metadata=True, timeout=CONNECT_TIMEOUT_S
            )
        files = []
        for sibling in info.siblings or []:
            if not keep(sibling.rfilename):
                continue
            lfs = sibling.lfs
            files.append(
                RemoteFile(
                    repo_id=repo_id,
                    filename=sibling.rfilename,
                    revision=info.sha or revision or "main",
                    size=(lfs.size if lfs else sibling.size) or 0,
                    sha256=lfs.sha256 if lfs else None,
                )
            )
        card = info.card_data.to_dict() if info.card_data else {}
        license_id = card.get("license") or next(
            (t.removeprefix("license:") for t in info.tags or [] if t.startswith("license:")), None
        )
        return RepoListing(repo_id, info.sha or revision or "main", bool(info.gated), license_id, files)

    def check_access(self, repo_id: str) -> HubAccess:
        """Whether this token may download from `repo_id` (always granted for public repos)."""
        try:
            with self._mapped_errors(repo_id):
                self._api.auth_check(repo_id, token=self._token or False)
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
        with self._mapped_errors(query):
            models = self._api.list_models(search=query, filter="gguf", sort="downloads", limit=limit)
            return [m.id for m in models]

    def file_url(self, remote: RemoteFile) -> str:
        return hf_hub_url(remote.repo_id, remote.filename, revision=remote.revision, endpoint=self.endpoint)

    @contextlib.contextmanager
    def open_bytes(self, remote: RemoteFile, start: int, read_timeout_s: float) -> Iterator[httpx2.Response]:
        """Stream `remote` from byte `start`. A redirect to a CDN drops our token, as the Hub client does."""
        headers = {"Accept-Encoding": "identity"}
        if start:
            headers["Range"] = f"bytes={start}-"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        timeout = httpx2.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S)
        url = self.file_url(remote)
        with self._mapped_errors(remote.repo_id, remote.filename):
            for _hop in range(5):
                with get_session().stream(
                    "GET", url, headers=headers, timeout=timeout, follow_redirects=False
                ) as r:
                    if r.is_redirect and "location" in r.headers:
                        location = httpx2.URL(r.headers["location"])
                        if location.is_absolute_url:  # a signed CDN URL: it must not see our token
                            headers.pop("Authorization", None)
                        url = str(r.url.join(location))
                        continue
                    hf_raise_for_status(r)
                    yield r
                    return
            raise HubError(f"Too many redirects fetching {remote.filename} from {remote.repo_id}.")

    def read_range(self, remote: RemoteFile, start: int, length: int) -> bytes:
        """`length` bytes of `remote` from `start` (a few MB of header, not the file)."""
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        with self._mapped_errors(remote.repo_id, remote.filename):
            response = get_session().get(
                self.file_url(remote), headers=headers, follow_redirects=True, timeout=CONNECT_TIMEOUT_S
            )
            hf_raise_for_status(response)
        return response.content[:length]

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
            error = HubServerError if status >= 500 else HubError
            raise error(f"Hugging Face answered {status} for {what}.") from exc
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise HubOfflineError(type(exc).__name__) from exc

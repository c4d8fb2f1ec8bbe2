"""A fake Hugging Face Hub on 127.0.0.1 for the real `huggingface_hub` client, with injectable faults.

Serves: model info (with LFS sha256 and sizes), auth-check, search, HEAD/GET resolve with
Range and If-Range, gated answers (401/403 with `X-Error-Code: GatedRepo`), 404s with error
codes, and optional redirects to a CDN on another origin (127.0.0.2: a second listening
socket of the same fake, so every request to it is recorded as foreign) in every form a
`Location` can take. Faults: cut a response after N bytes, stall before the body, answer
5xx/429 (with `Retry-After`), trickle, serve bytes that do not match the advertised sha256,
hostile listing values, files without an LFS hash whose bytes change between requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlparse

from tests.support.loopback import LoopbackServer

NO_TOKEN_MESSAGE = "Access to model {repo} is restricted. You must have access to it and be authenticated."
NOT_APPROVED_MESSAGE = "Access to model {repo} is restricted and you are not in the authorized list."
PENDING_MESSAGE = "Your request to access model {repo} is awaiting a review from the repo authors."


@dataclass
class FakeFile:
    data: bytes
    advertised_sha256: str | None = None  # defaults to the real hash; set to lie
    advertised_size: int | None = None  # defaults to the real size; set to claim a huge file
    lfs: bool = True  # False: a small file kept in git, listed without a sha256 (ETag = git blob id)

    @property
    def sha256(self) -> str:
        return self.advertised_sha256 or hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        if self.lfs:
            return f'"{self.sha256}"'
        blob = hashlib.sha1(b"blob %d\0" % len(self.data) + self.data, usedforsecurity=False)
        return f'"{blob.hexdigest()}"'

    @property
    def size(self) -> int:
        return self.advertised_size or len(self.data)


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, FakeFile]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False
    approved_tokens: set[str] = field(default_factory=set)
    pending_tokens: set[str] = field(default_factory=set)
    license: str | None = "apache-2.0"


@dataclass
class Faults:
    cut_after: list[int] = field(
        default_factory=list
    )  # each GET of file bytes pops one: send N bytes, then drop
    stalls: list[float] = field(default_factory=list)  # each GET of file bytes pops one pause before the body
    statuses: list[int] = field(
        default_factory=list
    )  # each GET of file bytes pops one status to answer instead
    chunk_delay_s: float = 0.0  # pause between 64 KiB pieces: a slow line, to watch progress
    redirect_to_cdn: bool = False
    #: How the CDN redirect's Location is written: "absolute" (http://127.0.0.2:port/cdn/…),
    #: "scheme-relative" (//127.0.0.2:port/cdn/…), "relative" (/cdn/… on the Hub's own origin).
    redirect_form: str = "absolute"
    redirect_api: bool = False  # model info and auth-check answer 307 to the foreign origin too
    ignore_range: bool = False
    ignore_if_range: bool = False  # serve the rest of a changed file anyway (its ETag still tells)
    retry_after: str | None = None  # sent with every injected 429/503
    api_statuses: list[int] = field(default_factory=list)  # each model-info/auth-check call pops one
    trickle: tuple[int, float] | None = None  # (bytes, seconds): send this few bytes, then wait
    #: Called with the file after each GET of its bytes has been answered: change it between attempts.
    after_get: Callable[[FakeFile], None] | None = None


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None
    host: str = "127.0.0.1"  # the address it reached: "127.0.0.2" is the foreign origin


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.faults = Faults()
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler_for(self), "fake-hub")
        self._foreign = LoopbackServer(_handler_for(self), "fake-cdn", host="127.0.0.2")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def foreign_url(self) -> str:
        """Another origin (another host) served by this same fake: a CDN, or an attacker's host."""
        return self._foreign.url

    def start(self) -> FakeHub:
        self._server.start()
        self._foreign.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._foreign.stop()

    def foreign_requests(self) -> list[Request]:
        return [r for r in self.requests if r.host != "127.0.0.1"]

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def file_requests(self) -> Iterator[Request]:
        return (r for r in self.requests if "/resolve/" in r.path or r.path.startswith("/cdn/"))

    def pop_fault(self, queue: list[int]) -> int | None:
        with self._lock:
            return queue.pop(0) if queue else None

    def pop_fault_float(self, queue: list[float]) -> float | None:
        with self._lock:
            return queue.pop(0) if queue else None


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        # -- routing -----------------------------------------------------------------------------

        def _route(self, head: bool) -> None:
            parsed = urlparse(self.path)
            path = unquote(parsed.path)
            local = self.server.server_address[0]
            hub.requests.append(
                Request(
                    self.command,
                    path,
                    self.headers.get("Range"),
                    self.headers.get("Authorization"),
                    str(local),
                )
            )
            parts = [p for p in path.split("/") if p]
            if parts[:2] == ["api", "models"] and len(parts) == 2:
                return self._search(parse_qs(parsed.query))
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                if hub.faults.redirect_api and local == "127.0.0.1":
                    return self._redirect(f"{hub.foreign_url}{self.path}", status=307)
                status = hub.pop_fault(hub.faults.api_statuses)
                if status is not None:
                    return self._error(status, "", "injected failure")
                repo = hub.repos.get(f"{parts[2]}/{parts[3]}")
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if parts[4:5] == ["auth-check"]:
                    return self._auth_check(repo)
                return self._json(self._model_info(repo))
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if parts[3] not in ("main", repo.commit):
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                if not self._access_ok(repo):
                    return None
                name = "/".join(parts[4:])
                fake = repo.files.get(name)
                if fake is None:
                    return self._error(404, "EntryNotFound", f"{name} does not exist")
                if hub.faults.redirect_to_cdn and not head and local == "127.0.0.1":
                    where = f"/cdn/{repo.repo_id}/{name}?Signature=abc"
                    foreign = hub.foreign_url
                    location = {
                        "absolute": f"{foreign}{where}",
                        "scheme-relative": f"{foreign.removeprefix('http:')}{where}",
                        "relative": where,
                    }[hub.faults.redirect_form]
                    return self._redirect(location)
                return self._file(repo, fake, head)
            if parts[:1] == ["cdn"]:
                repo = hub.repos.get(f"{parts[1]}/{parts[2]}")
                fake = repo.files.get("/".join(parts[3:])) if repo else None
                if repo is None or fake is None:
                    return self._error(404, "EntryNotFound", "no such object")
                return self._file(repo, fake, head)
            return self._error(404, "NotFound", "no route")

        # -- endpoints ---------------------------------------------------------------------------

        def _model_info(self, repo: FakeRepo) -> dict[str, object]:
            return {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": repo.commit,
                "gated": "manual" if repo.gated else False,
                "private": False,
                "tags": ["gguf"] + ([f"license:{repo.license}"] if repo.license else []),
                "cardData": {"license": repo.license} if repo.license else {},
                "siblings": [
                    {
                        "rfilename": name,
                        "size": f.size,
                        "blobId": f.etag.strip('"')[:40],
                    }
                    | ({"lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 134}} if f.lfs else {})
                    for name, f in repo.files.items()
                ],
            }

        def _search(self, query: dict[str, list[str]]) -> None:
            needle = query.get("search", [""])[0].lower()
            self._json(
                [
                    {"id": r.repo_id, "modelId": r.repo_id, "tags": ["gguf"]}
                    for r in hub.repos.values()
                    if needle in r.repo_id.lower()
                ]
            )

        def _auth_check(self, repo: FakeRepo) -> None:
            if self._access_ok(repo):
                self._json({})

        def _access_ok(self, repo: FakeRepo) -> bool:
            if not repo.gated:
                return True
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if not token:
                self._error(401, "GatedRepo", NO_TOKEN_MESSAGE.format(repo=repo.repo_id))
                return False
            if token in repo.pending_tokens:
                self._error(403, "GatedRepo", PENDING_MESSAGE.format(repo=repo.repo_id))
                return False
            if token not in repo.approved_tokens:
                self._error(403, "GatedRepo", NOT_APPROVED_MESSAGE.format(repo=repo.repo_id))
                return False
            return True

        def _file(self, repo: FakeRepo, fake: FakeFile, head: bool) -> None:
            try:
                return self._send_file(repo, fake, head)
            finally:
                if not head and hub.faults.after_get is not None:
                    hub.faults.after_get(fake)

        def _send_file(self, repo: FakeRepo, fake: FakeFile, head: bool) -> None:
            if not head:
                status = hub.pop_fault(hub.faults.statuses)
                if status is not None:
                    return self._error(status, "", "injected failure")
            total = len(fake.data)
            start, end = 0, total - 1
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            changed = if_range is not None and if_range != fake.etag and not hub.faults.ignore_if_range
            partial = bool(range_header) and not hub.faults.ignore_range and not changed
            if partial and range_header:
                first, _, last = range_header.removeprefix("bytes=").partition("-")
                start = int(first)
                end = int(last) if last else total - 1
                end = min(end, total - 1)
            body = fake.data[start : end + 1]
            self.send_response(206 if partial else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", fake.etag)
            self.send_header("X-Repo-Commit", repo.commit)
            if fake.lfs:
                self.send_header("X-Linked-Etag", fake.etag)
            self.send_header("X-Linked-Size", str(total))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
            self.end_headers()
            if head:
                return None
            stall = hub.pop_fault_float(hub.faults.stalls)
            if stall:
                time.sleep(stall)
            cut = hub.pop_fault(hub.faults.cut_after)
            if cut is not None:
                body = body[:cut]
            piece_size, delay = hub.faults.trickle or (64 * 1024, hub.faults.chunk_delay_s)
            for offset in range(0, len(body), piece_size):
                piece = body[offset : offset + piece_size]
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return None
                hub.bytes_sent += len(piece)
                if delay:
                    try:
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return None
                    time.sleep(delay)
            if cut is not None:
                self.close_connection = True
                self.wfile.flush()
                self.connection.close()
            return None

        # -- helpers -----------------------------------------------------------------------------

        def _json(self, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _redirect(self, location: str, status: int = 302) -> None:
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _error(self, status: int, code: str, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            if status in (429, 503) and hub.faults.retry_after is not None:
                self.send_header("Retry-After", hub.faults.retry_after)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler

"""Downloads from the (fake) Hub with the real huggingface_hub client: resume, verify, retry, gated repos."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from app.core.errors import (
    ChecksumMismatchError,
    DownloadStalledError,
    HubAccessPendingError,
    HubError,
    HubLicenseNotAcceptedError,
    HubNotFoundError,
    HubNoTokenError,
    HubOfflineError,
    NotEnoughDiskError,
    OperationCancelledError,
)
from app.downloads import downloader as downloads_module
from app.downloads.downloader import (
    DownloadControl,
    Downloader,
    DownloadPaused,
    DownloadProgress,
    RetryPolicy,
)
from app.downloads.hub import HubAccess, HubClient, RemoteFile, choose_file
from app.library.store import ModelLibrary
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.small_disk import small_tmpfs

REPO = "bartowski/Tiny-Llama-GGUF"
FILE = "tiny-Q4_K_M.gguf"
FAST = RetryPolicy(attempts=4, first_backoff_s=0.01, stall_timeout_s=0.5)


@pytest.fixture
def repo(fake_hub: FakeHub, model_bytes: bytes) -> FakeRepo:
    return fake_hub.add_repo(
        FakeRepo(
            REPO,
            {
                FILE: FakeFile(model_bytes),
                "tiny-Q8_0.gguf": FakeFile(model_bytes + b"\0" * 32),
                "README.md": FakeFile(b"# Tiny"),
            },
        )
    )


def remote_file(filename: str = FILE, token: str | None = None) -> RemoteFile:
    return choose_file(HubClient(token).list_gguf_files(REPO), filename)


def downloader(library: ModelLibrary, data_home: DataHome, token: str | None = None) -> Downloader:
    return Downloader(library, HubClient(token), data_home.models_dir, FAST, sleep=lambda _s: None)


def test_listing_has_sizes_hashes_and_quantizations(repo: FakeRepo, model_bytes: bytes) -> None:
    listing = HubClient().list_gguf_files(REPO)
    assert {f.filename for f in listing.files} == {FILE, "tiny-Q8_0.gguf"}  # README.md is not a model
    q4 = choose_file(listing)  # Q4_K_M by default
    assert q4.filename == FILE and q4.quantization == "Q4_K_M"
    assert q4.sha256 == hashlib.sha256(model_bytes).hexdigest() and q4.size == len(model_bytes)
    assert choose_file(listing, quant="q8_0").filename == "tiny-Q8_0.gguf"
    assert listing.revision == repo.commit and listing.license == "apache-2.0"
    with pytest.raises(HubNotFoundError, match="no file matches IQ2_XS"):
        choose_file(listing, quant="IQ2_XS")


def test_download_is_verified_and_added_to_the_library(
    repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    seen: list[DownloadProgress] = []
    model = downloader(library, data_home).download(remote_file(), progress=seen.append)
    assert model.path.read_bytes() == model_bytes
    assert model.owned and model.source == "huggingface"
    assert model.sha256 == hashlib.sha256(model_bytes).hexdigest()
    assert model.origin == f"{REPO}/{FILE}@{repo.commit}"
    assert seen[-1].done_bytes == seen[-1].total_bytes == len(model_bytes)
    assert [m.id for m in library.models()] == [model.id]
    assert not any((data_home.models_dir / ".partial").iterdir())


def test_cut_connections_resume_from_the_partial(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.faults.cut_after = [5000, 7000]
    model = downloader(library, data_home).download(remote_file())
    assert model.path.read_bytes() == model_bytes
    ranges = [r.range for r in fake_hub.file_requests() if r.method == "GET"]
    assert ranges == [None, "bytes=5000-", "bytes=12000-"]
    assert fake_hub.bytes_sent == len(model_bytes), "resuming must not fetch bytes twice"


def test_a_cdn_redirect_is_followed_without_the_token(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    repo.gated, repo.approved_tokens = True, {"hf_ok"}
    fake_hub.faults.redirect_to_cdn = True
    model = downloader(library, data_home, token="hf_ok").download(remote_file(token="hf_ok"))
    assert model.path.read_bytes() == model_bytes
    resolve, cdn = [r for r in fake_hub.file_requests() if r.method == "GET"]
    assert resolve.authorization == "Bearer hf_ok"
    assert cdn.path.startswith("/cdn/") and cdn.authorization is None


def test_pause_then_resume_in_a_new_session(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    control = DownloadControl()
    fake_hub.faults.cut_after = [9000]  # the first response stops early, so the pause lands mid-file

    def pause_after_first_bytes(progress: DownloadProgress) -> None:
        control.pause()

    first = downloader(library, data_home)
    with pytest.raises(DownloadPaused):
        first.download(remote_file(), control=control, progress=pause_after_first_bytes)
    partial = first.partial_path(remote_file())
    kept = partial.stat().st_size
    assert 0 < kept < len(model_bytes)
    assert library.models() == [], "a partial download is never a usable model"

    # A new Downloader (as after an app restart) continues from the bytes on disk.
    model = downloader(library, data_home).download(remote_file())
    assert model.path.read_bytes() == model_bytes
    assert [r.range for r in fake_hub.file_requests() if r.method == "GET"][-1] == f"bytes={kept}-"


def test_cancel_discards_the_partial(repo: FakeRepo, library: ModelLibrary, data_home: DataHome) -> None:
    control = DownloadControl()
    control.cancel()
    d = downloader(library, data_home)
    with pytest.raises(OperationCancelledError):
        d.download(remote_file(), control=control)
    assert not d.partial_path(remote_file()).exists()
    assert library.models() == []


def test_bytes_that_do_not_match_the_hub_hash_are_rejected(
    fake_hub: FakeHub, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(model_bytes, advertised_sha256="ab" * 32)}))
    d = downloader(library, data_home)
    with pytest.raises(ChecksumMismatchError, match="arrived damaged"):
        d.download(remote_file())
    assert library.models() == []
    assert not d.partial_path(remote_file()).exists()
    assert [p.name for p in data_home.models_dir.iterdir()] == [".partial"]


def test_a_stall_is_retried(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.faults.stalls = [2.0]  # longer than the 0.5 s watchdog
    model = downloader(library, data_home).download(remote_file())
    assert model.path.read_bytes() == model_bytes
    assert len([r for r in fake_hub.file_requests() if r.method == "GET"]) == 2


def test_endless_stalls_end_in_a_clear_error(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome
) -> None:
    fake_hub.faults.stalls = [2.0] * 10
    with pytest.raises(DownloadStalledError, match="no data"):
        downloader(library, data_home).download(remote_file())


def test_server_errors_are_retried_then_reported(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.faults.statuses = [503, 502]
    assert downloader(library, data_home).download(remote_file()).path.read_bytes() == model_bytes
    library.remove(library.models()[0].id)
    fake_hub.faults.statuses = [503] * 10
    with pytest.raises(HubError, match="503"):
        downloader(library, data_home).download(remote_file())


@pytest.mark.parametrize(
    ("token", "access", "error"),
    [
        (None, HubAccess.NO_TOKEN, HubNoTokenError),
        ("hf_stranger", HubAccess.NOT_ACCEPTED, HubLicenseNotAcceptedError),
        ("hf_waiting", HubAccess.PENDING, HubAccessPendingError),
    ],
)
def test_gated_repos_say_why(
    repo: FakeRepo,
    library: ModelLibrary,
    data_home: DataHome,
    token: str | None,
    access: HubAccess,
    error: type[Exception],
) -> None:
    repo.gated, repo.approved_tokens, repo.pending_tokens = True, {"hf_ok"}, {"hf_waiting"}
    assert HubClient(token).check_access(REPO) is access
    assert HubClient("hf_ok").check_access(REPO) is HubAccess.GRANTED
    remote = remote_file(token=token)  # listing works without access, as on the Hub
    with pytest.raises(error, match=REPO):
        downloader(library, data_home, token=token).download(remote)
    assert library.models() == []


def test_missing_repo_and_file(repo: FakeRepo) -> None:
    with pytest.raises(HubNotFoundError, match="No model nobody/nothing"):
        HubClient().list_gguf_files("nobody/nothing")
    with pytest.raises(HubNotFoundError, match=r"has no file missing\.gguf"):
        choose_file(HubClient().list_gguf_files(REPO), "missing.gguf")


def test_no_network_is_said_plainly() -> None:
    closed_port = "http://127.0.0.1:9"
    with pytest.raises(HubOfflineError, match="Cannot reach Hugging Face"):
        HubClient(endpoint=closed_port).list_gguf_files(REPO)


def test_not_enough_disk_is_checked_before_starting(
    fake_hub: FakeHub, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(model_bytes, advertised_size=1 << 50)}))  # a petabyte
    with pytest.raises(NotEnoughDiskError, match="Not enough free disk space"):
        downloader(library, data_home).download(remote_file())
    assert not any(r.method == "GET" for r in fake_hub.file_requests())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small-disk", "128k") as mount:
        yield mount


def test_a_disk_that_fills_up_mid_download_keeps_the_partial(
    fake_hub: FakeHub,
    library: ModelLibrary,
    small_disk: Path,
    model_bytes: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = model_bytes * 4  # ~80 KiB, fits the 128 KiB disk until something else takes the space
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(big)}))
    fake_hub.faults.cut_after = [20_000]
    monkeypatch.setattr(downloads_module, "DISK_MARGIN_BYTES", 0)
    d = Downloader(library, HubClient(), small_disk, FAST, sleep=lambda _s: None)
    filler = small_disk / "other-program.bin"

    def fill_disk(_progress: DownloadProgress) -> None:
        if not filler.exists():
            _fill(filler)

    with pytest.raises(NotEnoughDiskError):
        d.download(remote_file(), progress=fill_disk)
    assert d.partial_path(remote_file()).stat().st_size > 0, "the bytes that fit are kept for a resume"
    assert library.models() == []


def _fill(path: Path) -> None:
    """Write until the disk is full, like another program would."""
    try:
        with path.open("wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError:
        pass


def test_remote_header_gives_parameters_and_memory_without_the_file(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    from app.downloads.remote_model import inspect_remote
    from app.engine.fit import estimate_memory
    from app.gguf.header import read_header
    from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama

    local = write_header_only_llama(tmp_path / "l3.gguf", LLAMA_SHAPES["Llama-3-8B"], with_vocabulary=True)
    header_end = read_header(local).data_offset
    assert header_end > 2 << 20, "a Llama 3 vocabulary makes the header longer than the first fetch"
    with local.open("rb") as f:
        head = f.read(header_end + 4096)
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(head, advertised_size=local.stat().st_size)}))
    report = inspect_remote(HubClient(), remote_file())
    assert report.parameters == 8_030_261_248
    assert estimate_memory(report, 8192).kv_cache_bytes == 1 << 30
    assert fake_hub.bytes_sent < 3 * header_end, "only the header is fetched, not the 16 GB file"
    assert len([r for r in fake_hub.requests if r.range]) >= 2


def test_jobs_survive_a_restart_and_resume(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    from app.downloads.jobs import DownloadJobs, JobState

    jobs = DownloadJobs(data_home.library_db)
    job = jobs.add(remote_file(), "apache-2.0")
    jobs.set_state(job.id, JobState.RUNNING)
    control = DownloadControl()
    fake_hub.faults.cut_after = [6000]
    with pytest.raises(DownloadPaused):
        downloader(library, data_home).download(
            job.remote, control=control, progress=lambda _p: control.pause()
        )
    jobs.close()  # the app quits while the job is "running"

    reopened = DownloadJobs(data_home.library_db)
    [again] = reopened.open_jobs()
    assert again.id == job.id and again.state is JobState.PAUSED and again.remote == job.remote
    model = downloader(library, data_home).download(again.remote)
    reopened.set_state(again.id, JobState.DONE, model_id=model.id)
    assert reopened.open_jobs() == []
    assert model.path.read_bytes() == model_bytes


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_cuts_at_random_offsets_still_give_the_exact_file(
    fake_hub: FakeHub, library: ModelLibrary, data_home: DataHome, model_bytes: bytes, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    data = model_bytes + bytes(rng.randrange(256) for _ in range(200_000))  # trailing bytes after the tensors
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(data)}))
    fake_hub.faults.cut_after = [rng.randrange(1, 60_000) for _ in range(3)]  # bytes sent before each drop
    model = Downloader(
        library,
        HubClient(),
        data_home.models_dir,
        RetryPolicy(attempts=6, first_backoff_s=0.0),
        sleep=lambda _s: None,
    ).download(remote_file())
    assert model.path.read_bytes() == data
    assert fake_hub.bytes_sent == len(data), "every byte was sent once: each retry resumed from the partial"

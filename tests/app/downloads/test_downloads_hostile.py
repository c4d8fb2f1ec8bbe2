"""Downloads against a hostile or broken Hub: where the token goes, values that would become paths,
objects that change between attempts, trickles, 429s, flaky lines and kills while finishing.

The bar for all of it: nothing outside the data home is touched, the token appears in no file and
in no request to another origin, and a download either finishes right or fails saying why.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from app.core.errors import DownloadStalledError, HubBusyError, HubUnsafeListingError
from app.downloads.downloader import (
    DownloadControl,
    Downloader,
    DownloadPaused,
    DownloadProgress,
    RetryPolicy,
)
from app.downloads.hub import HubClient, RemoteFile, choose_file, retry_after_s
from app.library.store import ModelLibrary
from tests.support.cli import REPO as REPO_DIR
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf

REPO = "bartowski/Tiny-Llama-GGUF"
FILE = "tiny-Q4_K_M.gguf"
TOKEN = "hf_HoStIlEtEsTtOkEn0987654321"


def policy(**overrides: float) -> RetryPolicy:
    values: dict[str, float] = {
        "attempts": 4,
        "first_backoff_s": 0.01,
        "stall_timeout_s": 2.0,
        "progress_bytes": 1000,
    }
    return RetryPolicy(**(values | overrides))  # type: ignore[arg-type]


@pytest.fixture
def other_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Another valid GGUF of the same length: what the file became upstream."""
    return write_small_gguf(tmp_path_factory.mktemp("src2") / "m.gguf", seed=1).read_bytes()


@pytest.fixture
def repo(fake_hub: FakeHub, model_bytes: bytes) -> FakeRepo:
    return fake_hub.add_repo(
        FakeRepo(REPO, {FILE: FakeFile(model_bytes)}, gated=True, approved_tokens={TOKEN})
    )


def hub(sleeps: list[float] | None = None) -> HubClient:
    return HubClient(TOKEN, sleep=(sleeps.append if sleeps is not None else lambda _s: None))


def remote() -> RemoteFile:
    return choose_file(hub().list_gguf_files(REPO), FILE)


def downloader(library: ModelLibrary, data_home: DataHome, sleeps: list[float], **rules: float) -> Downloader:
    return Downloader(library, hub(), data_home.models_dir, policy(**rules), sleep=sleeps.append)


def assert_token_stayed_home(fake_hub: FakeHub, root: Path) -> None:
    foreign = fake_hub.foreign_requests()
    assert all(r.authorization is None for r in foreign), [r.path for r in foreign if r.authorization]
    for path in root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token was written to {path}"


# -- the token goes only to the host it was given for ------------------------------------------


@pytest.mark.parametrize("form", ["absolute", "scheme-relative"])
def test_a_redirect_to_another_origin_never_carries_the_token(
    form: str,
    fake_hub: FakeHub,
    repo: FakeRepo,
    library: ModelLibrary,
    data_home: DataHome,
    model_bytes: bytes,
    tmp_path: Path,
) -> None:
    fake_hub.faults.redirect_to_cdn = True
    fake_hub.faults.redirect_form = form
    fake_hub.faults.cut_after = [3000]  # the resumed request follows the redirect again
    model = downloader(library, data_home, []).download(remote())
    assert model.path.read_bytes() == model_bytes
    cdn = [r for r in fake_hub.foreign_requests() if r.path.startswith("/cdn/")]
    assert len(cdn) == 2, "both the first request and the resume went to the CDN"
    hub().read_range(remote(), 0, 64)  # the header preview follows the same redirect
    assert len(fake_hub.foreign_requests()) == 3
    assert_token_stayed_home(fake_hub, tmp_path)


def test_a_relative_redirect_stays_on_the_hub_and_keeps_the_token(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    fake_hub.faults.redirect_to_cdn = True
    fake_hub.faults.redirect_form = "relative"
    model = downloader(library, data_home, []).download(remote())
    assert model.path.read_bytes() == model_bytes
    cdn = [r for r in fake_hub.requests if r.path.startswith("/cdn/")]
    assert [r.host for r in cdn] == ["127.0.0.1"] and cdn[0].authorization == f"Bearer {TOKEN}"


def test_listings_and_access_checks_redirected_elsewhere_get_no_token(
    fake_hub: FakeHub, repo: FakeRepo, tmp_path: Path
) -> None:
    fake_hub.faults.redirect_api = True
    client = hub()
    for call in (lambda: client.list_gguf_files(REPO), lambda: client.check_access(REPO)):
        # whether the redirect is followed or refused, the token must not travel
        with contextlib.suppress(Exception):
            call()
    assert fake_hub.foreign_requests(), "the fake must have redirected somewhere"
    assert_token_stayed_home(fake_hub, tmp_path)


# -- nothing a server sends names a file until it is validated ------------------------------------


@pytest.mark.parametrize(
    ("name", "fake", "commit"),
    [
        (FILE, FakeFile(b"x" * 100, advertised_sha256="../../../outside/victim"), None),
        ("../../../outside/evil.gguf", FakeFile(b"x" * 100), None),
        ("..\\..\\outside\\evil.gguf", FakeFile(b"x" * 100), None),
        (FILE, FakeFile(b"x" * 100), "../../../outside"),
    ],
    ids=["sha256", "file-name", "backslash-name", "commit"],
)
def test_hostile_listing_values_are_refused_before_anything_is_written(
    name: str, fake: FakeFile, commit: str | None, fake_hub: FakeHub, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.part").write_bytes(b"precious")
    repo = FakeRepo(REPO, {name: fake})
    if commit is not None:
        repo.commit = commit
    fake_hub.add_repo(repo)
    with pytest.raises(HubUnsafeListingError, match="cannot be trusted"):
        hub().list_gguf_files(REPO)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.part"]
    assert (outside / "victim.part").read_bytes() == b"precious"


def test_a_stored_job_with_a_hostile_hash_still_writes_inside_the_partial_folder(
    library: ModelLibrary, data_home: DataHome
) -> None:
    """A job row from an older version, or a hand-edited database, is not trusted either."""
    d = Downloader(library, hub(), data_home.models_dir)
    bad = RemoteFile(REPO, "../../x.gguf", "main", 10, "../../../../x")
    partial = d.partial_path(bad)
    assert partial.parent == data_home.models_dir / ".partial" and partial.suffix == ".part"
    assert len(partial.stem) == 64 and all(c in "0123456789abcdef" for c in partial.stem)


# -- a resumed download is the same object as the bytes on disk ----------------------------------


@pytest.mark.parametrize("server_honours_if_range", [True, False])
def test_a_file_without_hash_that_changes_between_attempts_starts_over(
    server_honours_if_range: bool,
    fake_hub: FakeHub,
    library: ModelLibrary,
    data_home: DataHome,
    model_bytes: bytes,
    other_bytes: bytes,
) -> None:
    assert len(model_bytes) == len(other_bytes) and model_bytes != other_bytes
    fake = FakeFile(model_bytes, lfs=False)
    fake_hub.add_repo(FakeRepo(REPO, {FILE: fake}))
    fake_hub.faults.cut_after = [4000]
    fake_hub.faults.ignore_if_range = not server_honours_if_range

    def change_upstream(f: FakeFile) -> None:
        f.data = other_bytes
        fake_hub.faults.after_get = None

    fake_hub.faults.after_get = change_upstream
    target = remote()
    assert target.sha256 is None, "this file has no LFS hash to catch a splice"
    model = downloader(library, data_home, []).download(target)
    assert model.path.read_bytes() == other_bytes, "a splice of two versions was accepted"
    assert model.sha256 == hashlib.sha256(other_bytes).hexdigest()
    assert not list((data_home.models_dir / ".partial").iterdir())


def test_a_partial_of_an_older_upstream_version_is_deleted(
    fake_hub: FakeHub,
    repo: FakeRepo,
    library: ModelLibrary,
    data_home: DataHome,
    other_bytes: bytes,
) -> None:
    d = downloader(library, data_home, [])
    control = DownloadControl()

    def pause_once(p: DownloadProgress) -> None:
        if p.done_bytes > 0:
            control.pause()

    fake_hub.faults.trickle = (2048, 0.01)
    with pytest.raises(DownloadPaused):
        d.download(remote(), control=control, progress=pause_once)
    old_partial = d.partial_path(remote())
    assert old_partial.exists()
    fake_hub.faults.trickle = None
    repo.files[FILE] = FakeFile(other_bytes)  # a new version: a new LFS hash, a new partial key
    model = d.download(remote())
    assert model.path.read_bytes() == other_bytes
    assert not old_partial.exists() and not list((data_home.models_dir / ".partial").iterdir())


# -- progress-aware retries -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_trickle_fails_with_its_rate_instead_of_hanging(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome
) -> None:
    fake_hub.faults.trickle = (16, 0.05)  # ~320 bytes/s, never silent long enough for the stall timer
    sleeps: list[float] = []
    d = downloader(library, data_home, sleeps, attempts=3, min_rate_bytes_s=4096, min_rate_window_s=0.5)
    with pytest.raises(DownloadStalledError, match=r"bytes/s for \d+ s, below the 4 KiB/s"):
        d.download(remote())
    assert len(sleeps) == 2, "a trickle is a failure in a row, not progress that earns more tries"
    assert d.partial_path(remote()).stat().st_size > 0, "what arrived is kept for a resume"


@pytest.mark.parametrize("status", [429, 503])
def test_busy_file_answers_wait_as_retry_after_says(
    status: int,
    fake_hub: FakeHub,
    repo: FakeRepo,
    library: ModelLibrary,
    data_home: DataHome,
    model_bytes: bytes,
) -> None:
    fake_hub.faults.statuses = [status, status]
    fake_hub.faults.retry_after = "7"
    sleeps: list[float] = []
    model = downloader(library, data_home, sleeps).download(remote())
    assert model.path.read_bytes() == model_bytes
    assert sleeps == [7.0, 7.0]


def test_busy_model_info_waits_and_lists(fake_hub: FakeHub, repo: FakeRepo) -> None:
    fake_hub.faults.api_statuses = [429, 503]
    fake_hub.faults.retry_after = "3"
    sleeps: list[float] = []
    listing = hub(sleeps).list_gguf_files(REPO)
    assert [f.filename for f in listing.files] == [FILE]
    assert sleeps == [3.0, 3.0]


def test_a_hub_that_stays_busy_says_so(fake_hub: FakeHub, repo: FakeRepo) -> None:
    fake_hub.faults.api_statuses = [429] * 10
    fake_hub.faults.retry_after = "100000"  # capped: never a day-long wait
    sleeps: list[float] = []
    with pytest.raises(HubBusyError, match="busy \\(429\\)"):
        hub(sleeps).list_gguf_files(REPO)
    assert sleeps and max(sleeps) <= 120.0


def test_retry_after_as_an_http_date() -> None:
    assert retry_after_s("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


def test_a_flaky_line_that_makes_progress_finishes(
    fake_hub: FakeHub, repo: FakeRepo, library: ModelLibrary, data_home: DataHome, model_bytes: bytes
) -> None:
    cuts = 10
    fake_hub.faults.cut_after = [len(model_bytes) // (cuts + 2)] * cuts
    sleeps: list[float] = []
    model = downloader(library, data_home, sleeps, attempts=3).download(remote())
    assert model.path.read_bytes() == model_bytes
    assert len(sleeps) == cuts, "every cut was retried although the budget is 3 in a row"


# -- a kill while finishing never leaves an invisible file or a second download ------------------

_KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import app.downloads.downloader as downloads
    from app.core.data_home import DataHome
    from app.downloads.hub import HubClient, choose_file
    from app.library.store import ModelLibrary

    step = sys.argv[1]
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_pending, real_confirm = (
        downloads.os.replace, ModelLibrary.add_pending, ModelLibrary.confirm_pending
    )
    def add_pending(self, *a, **k):
        if step == "before-record":
            die()
        entry = real_pending(self, *a, **k)
        if step == "after-record":
            die()
        return entry
    def replace(src, dst):
        real_replace(src, dst)
        if step == "after-rename" and str(dst).endswith(".gguf"):
            die()
    def confirm(self, entry):
        model = real_confirm(self, entry)
        if step == "after-confirm":
            die()
        return model
    ModelLibrary.add_pending, ModelLibrary.confirm_pending = add_pending, confirm
    downloads.os.replace = replace

    home = DataHome.resolve().ensure()
    library = ModelLibrary(home.library_db, home.models_dir)
    hub = HubClient()
    remote = choose_file(hub.list_gguf_files(sys.argv[2]), sys.argv[3])
    downloads.Downloader(library, hub, home.models_dir).download(remote)
    """
)


@pytest.mark.parametrize("step", ["before-record", "after-record", "after-rename", "after-confirm"])
def test_a_kill_at_each_step_of_finishing_leaves_one_listed_model_and_no_second_download(
    step: str, fake_hub: FakeHub, model_bytes: bytes, data_home: DataHome
) -> None:
    fake_hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(model_bytes)}))
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, step, REPO, FILE],
        cwd=REPO_DIR,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    sent = fake_hub.bytes_sent
    assert sent == len(model_bytes)

    library = ModelLibrary(data_home.library_db, data_home.models_dir)  # recovers on open
    try:
        listed = library.find_by_sha256(hashlib.sha256(model_bytes).hexdigest())
        if listed is None:  # the kill came before the rename: the complete partial finishes it
            listed = Downloader(library, HubClient(), data_home.models_dir).download(remote_plain())
        assert fake_hub.bytes_sent == sent, "the file was downloaded a second time"
        assert [m.id for m in library.models()] == [listed.id]
        assert listed.path.read_bytes() == model_bytes
        assert sorted(p.name for p in data_home.models_dir.glob("*.gguf")) == [FILE]
        assert not list((data_home.models_dir / ".partial").glob("*.part"))
    finally:
        library.close()


def remote_plain() -> RemoteFile:
    return choose_file(HubClient().list_gguf_files(REPO), FILE)

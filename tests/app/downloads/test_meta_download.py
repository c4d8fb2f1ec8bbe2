"""Meta signed-link downloads against a fake CloudFront: planning, md5, expiry, resume, retries, pause."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from app.core.errors import (
    MetaChecksumMismatchError,
    MetaLinkExpiredError,
    MetaServerError,
    MetaUnlistedFileError,
    NotEnoughDiskError,
    OperationCancelledError,
    UnknownMetaModelError,
)
from app.downloads.downloader import DownloadControl, DownloadPaused, RetryPolicy
from app.downloads.licenses import NEEDS_ACCEPTANCE
from app.downloads.meta.download import MetaDownloader, MetaFileStatus, MetaProgress, parse_checklist
from app.downloads.meta.link import MetaLink, parse_meta_link
from app.downloads.meta.models import CATALOG, MetaModel, MetaRelease, find_meta_model, plan_files
from tests.support.fake_meta_cdn import FakeMetaCdn, write_meta_tree
from tests.support.small_disk import small_tmpfs

FAST = RetryPolicy(attempts=3, first_backoff_s=0.01, stall_timeout_s=2.0)
LLAMA2_13B = find_meta_model("Llama-2-13b-chat")
LLAMA32_1B = find_meta_model("llama-3.2-1b-instruct")


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[FakeMetaCdn]:
    server = FakeMetaCdn(tmp_path / "cdn").start()
    yield server
    server.stop()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def downloader(tmp_path: Path, waits: list[float]) -> MetaDownloader:
    return MetaDownloader(tmp_path / "meta", FAST, sleep=waits.append)


def link_to(cdn: FakeMetaCdn, expires_in_s: float = 24 * 3600, request_id: int = 1) -> MetaLink:
    return parse_meta_link(cdn.link(expires_in_s, request_id=request_id), allow_hosts=("127.0.0.1",))


def local_contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def expected_local(model: MetaModel, contents: dict[str, bytes], cdn: FakeMetaCdn) -> dict[str, bytes]:
    return {p.local_path: (cdn.root / p.remote_path).read_bytes() for p in plan_files(model)}


# -- planning ------------------------------------------------------------------------------------


def test_the_catalogue_has_every_release_asked_for() -> None:
    names = {m.name for m in CATALOG}
    for size in ("7b", "13b", "70b"):
        assert {f"Llama-2-{size}", f"Llama-2-{size}-chat"} <= names
    for size in ("8B", "70B"):
        assert {f"Meta-Llama-3-{size}", f"Meta-Llama-3-{size}-Instruct", f"Llama-3.1-{size}"} <= names
    assert {"Llama-3.1-405B", "Llama-3.1-405B-Instruct", "Llama-3.2-1B", "Llama-3.2-3B-Instruct"} <= names
    assert "Llama-3.3-70B-Instruct" in names and "Llama-3.3-70B" not in names
    assert len(names) == len(CATALOG) == 21
    assert find_meta_model(" LLAMA-2-7B ").remote_dir == "llama-2-7b"
    with pytest.raises(
        UnknownMetaModelError, match="'Llama-4-Scout'; choose one of: Llama-2-7b, Llama-2-7b-chat, "
    ):
        find_meta_model("Llama-4-Scout")


def test_llama2_takes_its_tokenizer_from_the_root() -> None:
    plan = {p.local_path: p for p in plan_files(LLAMA2_13B)}
    assert list(plan) == [
        "checklist.chk",
        "tokenizer_checklist.chk",
        "tokenizer.model",
        "params.json",
        "consolidated.00.pth",
        "consolidated.01.pth",
    ]
    assert plan["tokenizer.model"].remote_path == "tokenizer.model"
    assert plan["tokenizer.model"].checklist == "tokenizer_checklist.chk"
    assert plan["consolidated.01.pth"].remote_path == "llama-2-13b-chat/consolidated.01.pth"
    assert plan["checklist.chk"].is_checklist and plan["params.json"].checklist == "checklist.chk"
    assert (LLAMA2_13B.shards, LLAMA2_13B.instruct, LLAMA2_13B.context_length) == (2, True, 4096)
    assert find_meta_model("Llama-2-70b").shards == 8 and not find_meta_model("Llama-2-7b").instruct


def test_llama3_and_llama_stack_layouts() -> None:
    llama3 = find_meta_model("Meta-Llama-3-70B-Instruct")
    remote = [p.remote_path for p in plan_files(llama3)]
    assert remote[:3] == [
        "70b_instruction_tuned/checklist.chk",
        "70b_instruction_tuned/tokenizer.model",
        "70b_instruction_tuned/params.json",
    ]
    assert remote[-1] == "70b_instruction_tuned/consolidated.07.pth" and len(remote) == 11
    assert find_meta_model("Meta-Llama-3-8B").remote_dir == "8b_pre_trained"
    assert (llama3.context_length, llama3.license_id, llama3.release) == (8192, "llama3", MetaRelease.LLAMA3)

    assert [p.remote_path for p in plan_files(LLAMA32_1B)] == [
        "Llama-3.2-1B-Instruct/checklist.chk",
        "Llama-3.2-1B-Instruct/tokenizer.model",
        "Llama-3.2-1B-Instruct/params.json",
        "Llama-3.2-1B-Instruct/consolidated.00.pth",
    ]
    big = find_meta_model("Llama-3.1-405B-Instruct")
    assert big.remote_dir == "Llama-3.1-405B-Instruct-MP8" and big.shards == 8
    assert (big.context_length, big.license_id) == (131072, "llama3.1")
    assert find_meta_model("Llama-3.3-70B-Instruct").license_id == "llama3.3"
    known = set(NEEDS_ACCEPTANCE)
    assert {m.license_id for m in CATALOG} - known == {"llama2", "llama3"}  # no texts for these yet


def test_checklists_in_md5sum_format() -> None:
    text = "0123456789abcdef0123456789ABCDEF  ./consolidated.00.pth\n" + "f" * 32 + " *params.json\n\nbad"
    assert parse_checklist(text) == {
        "consolidated.00.pth": "0123456789abcdef0123456789abcdef",
        "params.json": "f" * 32,
    }


# -- downloading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [LLAMA2_13B, LLAMA32_1B], ids=lambda m: m.name)
def test_a_whole_model_arrives_verified(
    cdn: FakeMetaCdn, downloader: MetaDownloader, model: MetaModel
) -> None:
    contents = write_meta_tree(cdn.root, model)
    pasted = cdn.link()
    link = parse_meta_link(pasted, allow_hosts=("127.0.0.1",))
    reports: list[MetaProgress] = []
    listed: list[list[MetaFileStatus]] = []
    result = downloader.download(link, model, progress=reports.append, on_files=listed.append)
    assert [(f.planned, f.size, f.have, f.verified) for f in listed[0]] == [
        (p, len((cdn.root / p.remote_path).read_bytes()), 0, False) for p in plan_files(model)
    ]

    assert result.folder == downloader.folder(model) and result.unverified == ()
    assert local_contents(result.folder) == expected_local(model, contents, cdn)  # no .part left
    assert (
        reports[-1].done_bytes
        == reports[-1].total_bytes
        == sum(len(b) for b in expected_local(model, contents, cdn).values())
    )
    assert all(a.done_bytes <= b.done_bytes for a, b in itertools.pairwise(reports))
    assert {r.method for r in cdn.requests} == {"GET"}  # CloudFront may refuse HEAD
    query = pasted.split("?", 1)[1]
    assert "%7E" in query and all(r.query == query for r in cdn.requests), (
        "the query is sent byte for byte (with %7E)"
    )
    for planned in plan_files(model):
        assert len(cdn.body_requests(planned.remote_path)) == 1
        probe = [r for r in cdn.requests if r.path == planned.remote_path and r.is_probe]
        assert [r.status for r in probe] == [206]

    cdn.requests.clear()
    again = downloader.download(link, model)  # everything verified: nothing is asked of the server
    assert again.folder == result.folder and cdn.requests == []


def test_the_signature_never_reaches_a_log(
    cdn: FakeMetaCdn, downloader: MetaDownloader, caplog: pytest.LogCaptureFixture
) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    pasted = cdn.link()
    signature = pasted.split("Signature=")[1].split("&")[0]
    cdn.faults.cut_after["Llama-3.2-1B-Instruct/consolidated.00.pth"] = [1000]  # a retry gets logged too
    with caplog.at_level(logging.DEBUG):
        downloader.download(parse_meta_link(pasted, allow_hosts=("127.0.0.1",)), LLAMA32_1B)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Signature=<redacted>" in m for m in messages), "httpx2 logs each request: redacted"
    assert not any(signature in m or unquote(signature) in m for m in messages)


def test_a_file_the_checklist_does_not_list_is_refused_unless_allowed(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    model = LLAMA2_13B
    write_meta_tree(cdn.root, model)
    checklist = next(p for p in plan_files(model) if p.local_path == "checklist.chk")
    path = cdn.root / checklist.remote_path
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if "consolidated.01.pth" not in line), encoding="utf-8")
    with pytest.raises(MetaUnlistedFileError, match=r"checklist.chk does not list consolidated.01.pth"):
        downloader.download(link_to(cdn), model)
    folder = downloader.folder(model)
    assert not (folder / "consolidated.01.pth").exists()
    assert not (folder / "consolidated.01.pth.part").exists()
    assert not cdn.body_requests(f"{model.remote_dir}/consolidated.01.pth"), "nothing unverifiable fetched"

    result = downloader.download(link_to(cdn), model, allow_unlisted=True)
    assert result.unverified == ("consolidated.01.pth",)
    assert (folder / "consolidated.01.pth").is_file()


def test_a_link_that_runs_out_mid_file_resumes_with_a_fresh_one(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    contents = write_meta_tree(cdn.root, LLAMA2_13B)
    folder = downloader.folder(LLAMA2_13B)
    shard1 = "llama-2-13b-chat/consolidated.01.pth"
    cdn.faults.revoke_at[shard1] = 123_456

    with pytest.raises(
        MetaLinkExpiredError, match=r"expired or has been used up.*403.*paste it.*resumes"
    ) as e:
        downloader.download(link_to(cdn), LLAMA2_13B)
    assert "only covers" not in str(e.value), "files were served: the link did cover this model"
    shard0 = folder / "consolidated.00.pth"
    assert shard0.read_bytes() == contents["llama-2-13b-chat/consolidated.00.pth"]
    assert not (folder / "consolidated.01.pth").exists()
    partial = folder / "consolidated.01.pth.part"
    assert partial.read_bytes() == contents[shard1][:123_456], "the partial is kept, not truncated"
    finished = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix != ".part"}

    cdn.requests.clear()
    fresh = link_to(cdn, request_id=2)
    result = downloader.download(fresh, LLAMA2_13B)
    assert local_contents(result.folder) == expected_local(LLAMA2_13B, contents, cdn)
    assert [r.range for r in cdn.body_requests(shard1)] == ["bytes=123456-"]
    assert {r.path for r in cdn.requests} == {shard1}, "finished files are not asked for again"
    assert {name: (folder / name).stat().st_mtime_ns for name in finished} == finished


def test_an_expired_link_is_refused_before_any_request(cdn: FakeMetaCdn, downloader: MetaDownloader) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    with pytest.raises(MetaLinkExpiredError, match=r"expired 1 min ago.*Request a new link"):
        downloader.download(link_to(cdn, expires_in_s=-60), LLAMA32_1B)
    assert cdn.requests == []


def test_a_link_refused_by_the_server_is_reported_as_spent(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    link = link_to(cdn)
    cdn.clock = lambda: 4_000_000_000.0  # the server's clock says the link expired; ours does not
    with pytest.raises(
        MetaLinkExpiredError,
        match=r"403 Forbidden for Llama-3\.2-1B-Instruct/checklist\.chk; a link only covers the models",
    ):
        downloader.download(link, LLAMA32_1B)
    assert [r.status for r in cdn.requests] == [403]

    cdn.clock = time.time
    forged = parse_meta_link(cdn.link(signature="bm90LXRoZS1zaWduYXR1cmU_"), allow_hosts=("127.0.0.1",))
    with pytest.raises(MetaLinkExpiredError):
        downloader.download(forged, LLAMA32_1B)
    assert [r.status for r in cdn.requests] == [403, 403]


def test_a_used_up_link_keeps_what_it_got(tmp_path: Path, waits: list[float]) -> None:
    cdn = FakeMetaCdn(tmp_path / "cdn", max_uses=2).start()  # a size probe and one body request per file
    try:
        contents = write_meta_tree(cdn.root, LLAMA32_1B)
        shard = "Llama-3.2-1B-Instruct/consolidated.00.pth"
        cdn.faults.cut_after[shard] = [50_000]
        d = MetaDownloader(tmp_path / "meta", FAST, sleep=waits.append)
        with pytest.raises(MetaLinkExpiredError):
            d.download(link_to(cdn), LLAMA32_1B)
        folder = d.folder(LLAMA32_1B)
        assert (folder / "consolidated.00.pth.part").read_bytes() == contents[shard][:50_000]
        assert (folder / "params.json").is_file() and (folder / "tokenizer.model").is_file()
        d.download(link_to(cdn, request_id=2), LLAMA32_1B)
        assert (folder / "consolidated.00.pth").read_bytes() == contents[shard]
    finally:
        cdn.stop()


def test_a_damaged_file_is_discarded(cdn: FakeMetaCdn, downloader: MetaDownloader) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    shard = "Llama-3.2-1B-Instruct/consolidated.00.pth"
    (cdn.root / shard).write_bytes(contents[shard][:-1] + b"\x00")  # one byte off: the checklist disagrees
    with pytest.raises(MetaChecksumMismatchError, match=r"consolidated\.00\.pth arrived damaged: its md5"):
        downloader.download(link_to(cdn), LLAMA32_1B)
    folder = downloader.folder(LLAMA32_1B)
    assert sorted(p.name for p in folder.iterdir()) == ["checklist.chk", "params.json", "tokenizer.model"]

    (cdn.root / shard).write_bytes(contents[shard])  # the CDN serves it right again
    downloader.download(link_to(cdn), LLAMA32_1B)
    assert (folder / "consolidated.00.pth").read_bytes() == contents[shard]


def test_server_errors_and_drops_are_retried(
    cdn: FakeMetaCdn, downloader: MetaDownloader, waits: list[float]
) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    shard = "Llama-3.2-1B-Instruct/consolidated.00.pth"
    params = "Llama-3.2-1B-Instruct/params.json"
    cdn.faults.statuses[params] = [500]
    cdn.faults.cut_after[shard] = [70_000, 40_000]  # two drops mid-file
    result = downloader.download(link_to(cdn), LLAMA32_1B)
    assert local_contents(result.folder) == expected_local(LLAMA32_1B, contents, cdn)
    assert [r.status for r in cdn.body_requests(params)] == [500, 200]
    assert [r.range for r in cdn.body_requests(shard)] == [None, "bytes=70000-", "bytes=110000-"]
    assert waits == [0.01, 0.01, 0.01], "a connection that delivered bytes does not use up the attempts"


def test_a_stalled_answer_is_abandoned_and_retried(tmp_path: Path, cdn: FakeMetaCdn) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    cdn.faults.stalls["Llama-3.2-1B-Instruct/consolidated.00.pth"] = [5.0]
    patient = RetryPolicy(attempts=3, first_backoff_s=0.01, stall_timeout_s=0.3)
    started = time.monotonic()
    result = MetaDownloader(tmp_path / "meta", patient, sleep=lambda _s: None).download(
        link_to(cdn), LLAMA32_1B
    )
    assert time.monotonic() - started < 4.0, "the stall watchdog gave up on the silent answer"
    assert local_contents(result.folder) == expected_local(LLAMA32_1B, contents, cdn)


def test_a_server_that_keeps_failing_gives_up_with_the_bytes_kept(
    cdn: FakeMetaCdn, downloader: MetaDownloader, waits: list[float]
) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    cdn.faults.statuses["Llama-3.2-1B-Instruct/params.json"] = [503, 502, 500]
    with pytest.raises(MetaServerError, match=r"did not deliver.*answered 500"):
        downloader.download(link_to(cdn), LLAMA32_1B)
    assert waits == [0.01, 0.02]
    assert (downloader.folder(LLAMA32_1B) / "tokenizer.model").is_file()


def test_not_enough_disk_is_checked_before_the_first_byte(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    cdn.faults.claimed_size["Llama-3.2-1B-Instruct/consolidated.00.pth"] = 1 << 50  # a petabyte
    with pytest.raises(NotEnoughDiskError, match="Not enough free disk space"):
        downloader.download(link_to(cdn), LLAMA32_1B)
    assert all(r.is_probe for r in cdn.requests)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small-disk", "256k") as mount:
        yield mount


def test_a_disk_that_fills_up_mid_file_keeps_the_partial(cdn: FakeMetaCdn, small_disk: Path) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B, shard_bytes=100_000)
    filler = small_disk / "other-program.bin"

    def fill_disk(p: MetaProgress) -> None:
        if p.file == "consolidated.00.pth" and p.file_done > 20_000 and not filler.exists():
            with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)

    d = MetaDownloader(small_disk / "meta", FAST, sleep=lambda _s: None)
    with pytest.raises(NotEnoughDiskError, match="Free some space"):
        d.download(link_to(cdn), LLAMA32_1B, progress=fill_disk)
    folder = d.folder(LLAMA32_1B)
    kept = (folder / "consolidated.00.pth.part").read_bytes()
    assert 20_000 < len(kept) < 100_000 and contents["Llama-3.2-1B-Instruct/consolidated.00.pth"].startswith(
        kept
    )
    filler.unlink()
    d.download(link_to(cdn), LLAMA32_1B)
    assert local_contents(folder) == expected_local(LLAMA32_1B, contents, cdn)


def test_pause_keeps_the_partial_and_resume_continues_it(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    shard = "Llama-3.2-1B-Instruct/consolidated.00.pth"
    control = DownloadControl()

    def pause_mid_shard(p: MetaProgress) -> None:
        if p.file == "consolidated.00.pth" and p.file_done >= 100_000:
            control.pause()

    with pytest.raises(DownloadPaused):
        downloader.download(link_to(cdn), LLAMA32_1B, control=control, progress=pause_mid_shard)
    partial = downloader.folder(LLAMA32_1B) / "consolidated.00.pth.part"
    kept = partial.stat().st_size
    assert 100_000 <= kept < len(contents[shard])

    control.reset()
    reports: list[MetaProgress] = []
    result = downloader.download(link_to(cdn), LLAMA32_1B, control=control, progress=reports.append)
    assert local_contents(result.folder) == expected_local(LLAMA32_1B, contents, cdn)
    assert cdn.body_requests(shard)[-1].range == f"bytes={kept}-"
    total = sum(len(b) for b in expected_local(LLAMA32_1B, contents, cdn).values())
    assert reports[0].done_bytes == total - len(contents[shard]) + kept and reports[0].file_done == kept
    assert reports[-1].done_bytes == reports[-1].total_bytes == total


def test_a_server_that_ignores_the_range_restarts_the_file_cleanly(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    shard = "Llama-3.2-1B-Instruct/consolidated.00.pth"
    cdn.faults.cut_after[shard] = [90_000]
    cdn.faults.ignore_range = True  # the resume after the cut gets the whole file again
    reports: list[MetaProgress] = []
    result = downloader.download(link_to(cdn), LLAMA32_1B, progress=reports.append)
    assert local_contents(result.folder) == expected_local(LLAMA32_1B, contents, cdn)
    assert [r.status for r in cdn.body_requests(shard)] == [200, 200, 200]  # cut, ignored range, whole
    assert reports[-1].done_bytes == reports[-1].total_bytes


def test_cancel_leaves_no_partial_and_no_broken_file(cdn: FakeMetaCdn, downloader: MetaDownloader) -> None:
    contents = write_meta_tree(cdn.root, LLAMA2_13B)
    control = DownloadControl()

    def cancel_mid_shard(p: MetaProgress) -> None:
        if p.file == "consolidated.01.pth" and p.file_done >= 100_000:
            control.cancel()

    with pytest.raises(OperationCancelledError):
        downloader.download(link_to(cdn), LLAMA2_13B, control=control, progress=cancel_mid_shard)
    folder = downloader.folder(LLAMA2_13B)
    left = local_contents(folder)
    expected = expected_local(LLAMA2_13B, contents, cdn)
    assert "consolidated.01.pth" not in left and not any(name.endswith(".part") for name in left)
    assert all(expected[name] == data for name, data in left.items()), "what stays is whole and verified"

    control.reset()
    assert local_contents(downloader.download(link_to(cdn), LLAMA2_13B, control=control).folder) == expected


def test_cancel_before_anything_arrived_leaves_no_folder(
    cdn: FakeMetaCdn, downloader: MetaDownloader
) -> None:
    write_meta_tree(cdn.root, LLAMA32_1B)
    control = DownloadControl()
    control.cancel()
    with pytest.raises(OperationCancelledError):
        downloader.download(link_to(cdn), LLAMA32_1B, control=control)
    assert not downloader.folder(LLAMA32_1B).exists()


def test_md5_of_a_resumed_file_covers_the_old_bytes(cdn: FakeMetaCdn, downloader: MetaDownloader) -> None:
    """A partial from an earlier run that is not a prefix of the file fails md5 rather than passing."""
    contents = write_meta_tree(cdn.root, LLAMA32_1B)
    folder = downloader.folder(LLAMA32_1B)
    folder.mkdir(parents=True)
    shard = contents["Llama-3.2-1B-Instruct/consolidated.00.pth"]
    (folder / "consolidated.00.pth.part").write_bytes(b"\xff" * 1000)
    with pytest.raises(MetaChecksumMismatchError):
        downloader.download(link_to(cdn), LLAMA32_1B)
    assert not (folder / "consolidated.00.pth.part").exists()
    downloader.download(link_to(cdn), LLAMA32_1B)
    assert hashlib.md5((folder / "consolidated.00.pth").read_bytes()).digest() == hashlib.md5(shard).digest()

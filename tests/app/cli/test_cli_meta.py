"""`llama-desk models pull-meta`: Meta's signed link → verified checkpoint → GGUF in the library.

The fake CDN serves a real (tiny) Llama 3.2-style checkpoint under the model's llama-stack folder,
signs links like CloudFront and refuses a link after its uses run out, as Meta's does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from app.downloads.meta.link import HOSTS_ENV
from app.downloads.meta.models import find_meta_model, plan_files
from tests.support.cli import REPO as REPO_DIR
from tests.support.cli import run_cli
from tests.support.convert_checkpoints import write_meta_llama3
from tests.support.fake_meta_cdn import FakeMetaCdn

MODEL = find_meta_model("Llama-3.2-1B-Instruct")


def pull_meta(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("models", "pull-meta", *args, env={HOSTS_ENV: "127.0.0.1"})


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[FakeMetaCdn]:
    checkpoint = tmp_path / "checkpoint"
    write_meta_llama3(checkpoint, shards=MODEL.shards)
    root = tmp_path / "cdn"
    sums: dict[str, list[str]] = {}
    for planned in plan_files(MODEL):
        if planned.is_checklist:
            continue
        target = root / planned.remote_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint / planned.local_path, target)
        md5 = hashlib.md5(target.read_bytes()).hexdigest()
        sums.setdefault(planned.checklist, []).append(f"{md5}  ./{planned.local_path}\n")
    for planned in plan_files(MODEL):
        if planned.is_checklist:
            (root / planned.remote_path).write_text("".join(sums[planned.local_path]))
    server = FakeMetaCdn(root).start()
    yield server
    server.stop()


def test_a_used_up_link_stops_cleanly_and_a_fresh_one_finishes_and_converts(
    cdn: FakeMetaCdn, data_home: DataHome
) -> None:
    shard = next(p.remote_path for p in plan_files(MODEL) if p.local_path.endswith(".pth"))
    cdn.faults.revoke_at[shard] = 50_000  # the link runs out 50 kB into the weights
    first = pull_meta("--url", cdn.link(), "--model", MODEL.name, "--quant", "Q8_0", "--accept-license")
    assert first.returncode == 11, first.stderr
    assert "fresh link" in first.stderr.lower() or "new link" in first.stderr.lower()

    second = pull_meta("--url", cdn.link(), "--model", MODEL.name, "--quant", "Q8_0", "--accept-license")
    assert second.returncode == 0, second.stderr
    assert "files match Meta's checksums" in second.stderr
    resumed = cdn.body_requests(shard)[-1]
    assert resumed.range is not None and resumed.range.startswith("bytes=") and resumed.range != "bytes=0-"

    listed = subprocess.run(
        [sys.executable, "-m", "app", "models", "list", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_DIR,
    )
    [model] = [m for m in json.loads(listed.stdout) if m["source"] == "meta"]
    assert model["name"].startswith(MODEL.name) and model["file_type"] == "Q8_0"
    assert model["license"] == MODEL.license_id
    assert not (data_home.models_dir / ".meta" / MODEL.name).exists()  # the original was removed


def test_an_expired_link_is_refused_before_any_download(cdn: FakeMetaCdn) -> None:
    done = pull_meta("--url", cdn.link(expires_in_s=-60), "--model", MODEL.name, "--accept-license")
    assert done.returncode == 11
    assert "expired" in done.stderr
    assert not [r for r in cdn.requests if r.method == "GET"]


def test_a_link_from_the_html_mail_is_repaired_and_a_cut_link_explained(cdn: FakeMetaCdn) -> None:
    cut = cdn.link().split("&Key-Pair-Id")[0]
    done = pull_meta("--url", cut, "--model", MODEL.name)
    assert done.returncode == 2 and "cut off" in done.stderr
    unknown = pull_meta("--url", cdn.link(), "--model", "Llama-9-Huge")
    assert unknown.returncode == 2 and "Llama-3.2-1B-Instruct" in unknown.stderr

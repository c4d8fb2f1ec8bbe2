"""`llama-desk models ...` as a user runs it: a separate process, the data home honoured."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.data_home import DataHome
from tests.support.cli import models
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama, write_small_gguf


def test_list_shows_the_starter_model() -> None:
    done = models("list", "--json")
    assert done.returncode == 0, done.stderr
    [starter] = json.loads(done.stdout)
    assert starter["source"] == "starter" and starter["parameters"] == 134_515_008
    table = models("list")
    assert "SmolLM2 135M Instruct (starter)" in table.stdout and "1 model(s)" in table.stdout


def test_import_copy_list_and_remove_round_trip(tmp_path: Path, data_home: DataHome) -> None:
    source = write_small_gguf(tmp_path / "small.gguf")
    done = models("import", str(source), "--copy", "--name", "Tiny test")
    assert done.returncode == 0, done.stderr
    assert "Imported Tiny test as #2" in done.stdout
    copied = data_home.models_dir / "small.gguf"
    assert copied.read_bytes() == source.read_bytes()
    listed = {m["name"]: m for m in json.loads(models("list", "--json").stdout)}
    assert listed["Tiny test"]["owned"] is True

    refused = models("rm", "2")  # no terminal to confirm on
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert copied.exists()
    removed = models("rm", "Tiny test", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert "freed" in removed.stdout and not copied.exists()
    assert [m["name"] for m in json.loads(models("list", "--json").stdout)] == [
        "SmolLM2 135M Instruct (starter)"
    ]


def test_inspect_json_has_the_documented_fields(tmp_path: Path) -> None:
    path = write_header_only_llama(tmp_path / "l3.gguf", LLAMA_SHAPES["Llama-3-8B"])
    done = models("inspect", str(path), "--json", "--ctx", "8192")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["architecture"] == "llama"
    assert report["parameters"] == 8_030_261_248
    assert report["file_type"] == "F16"
    assert report["context_length"] == 8192
    assert all(isinstance(v, int) for v in report["breakdown"].values())
    assert {
        "name": "blk.0.attn_k.weight",
        "shape": [4096, 1024],
        "type": "F16",
        "bytes": 4096 * 1024 * 2,
    } in (report["tensors"])
    memory = report["memory"]
    assert memory["n_ctx"] == 8192 and memory["kv_cache_bytes"] == 1 << 30
    assert (
        memory["total_bytes"] == memory["weights_bytes"] + memory["kv_cache_bytes"] + memory["compute_bytes"]
    )


def test_inspect_by_library_id_and_text_output() -> None:
    done = models("inspect", "1", "--tensors")
    assert done.returncode == 0, done.stderr
    assert "134,515,008" in done.stdout
    assert "blk.0.attn_q.weight" in done.stdout and "| size 576 x 576" in done.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    for args in (("inspect", str(bad)), ("import", str(bad)), ("rm", "99", "--yes"), ("rm", "1", "--yes")):
        done = models(*args)
        assert done.returncode not in (0, 1), args
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr

"""`llama-desk models pull REPO --convert`: an original safetensors repo on the (fake) Hub becomes a GGUF."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.data_home import DataHome
from tests.support.cli import run_cli as cli
from tests.support.convert_checkpoints import write_hf_llama
from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo
from tests.support.gguf_files import write_small_gguf


def serve_checkpoint(fake_hub: FakeHub, tmp_path: Path, repo_id: str, license_id: str | None) -> FakeRepo:
    folder = tmp_path / "checkpoint"
    write_hf_llama(folder, llama32=True)
    files = {p.name: FakeFile(p.read_bytes()) for p in folder.iterdir()}
    files["original/consolidated.00.pth"] = FakeFile(b"Meta's copy of the same weights: not fetched")
    files["README.md"] = FakeFile(b"# model card")
    return fake_hub.add_repo(FakeRepo(repo_id, files, license=license_id))


def test_pull_convert_downloads_verifies_converts_and_cleans_up(
    fake_hub: FakeHub, tmp_path: Path, data_home: DataHome
) -> None:
    serve_checkpoint(fake_hub, tmp_path, "meta-llama/Llama-3.2-Tiny-Instruct", "llama3.2")
    fake_hub.faults.cut_after = [2000]  # a dropped connection mid-file is resumed
    done = cli(
        "models",
        "pull",
        "meta-llama/Llama-3.2-Tiny-Instruct",
        "--convert",
        "--quant",
        "q8_0",
        "--accept-license",
    )
    assert done.returncode == 0, done.stderr
    assert "Converted and added as #" in done.stdout

    fetched = {r.path.split("/resolve/")[-1].split("/", 1)[-1] for r in fake_hub.file_requests()}
    assert "config.json" in fetched
    assert not any(name.startswith("original/") or name == "README.md" for name in fetched)
    [model] = [m for m in json.loads(cli("models", "list", "--json").stdout) if m["source"] == "huggingface"]
    assert model["name"].startswith("Llama-3.2-Tiny-Instruct") and model["file_type"] == "Q8_0"
    assert model["license"] == "llama3.2" and model["owned"]
    assert Path(model["path"]).parent == data_home.models_dir
    assert not any((data_home.models_dir / ".checkpoints").iterdir())  # the download was removed


def test_pull_convert_of_a_gguf_only_repo_says_what_is_missing(fake_hub: FakeHub, tmp_path: Path) -> None:
    gguf = write_small_gguf(tmp_path / "m.gguf").read_bytes()
    fake_hub.add_repo(FakeRepo("org/Only-GGUF", {"m-Q4_K_M.gguf": FakeFile(gguf)}))
    done = cli("models", "pull", "org/Only-GGUF", "--convert")
    assert done.returncode == 12
    assert "no .safetensors weights to convert" in done.stderr
    wrong = cli("models", "pull", "org/Only-GGUF", "--convert", "--quant", "Q3_Z")
    assert wrong.returncode == 2 and "choose one of" in wrong.stderr

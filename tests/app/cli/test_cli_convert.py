"""`llama-desk models convert DIR`: a checkpoint folder becomes a library model that chats."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.data_home import DataHome
from tests.support.cli import models
from tests.support.convert_checkpoints import write_meta_llama3


def test_convert_adds_an_owned_model_that_loads_and_rm_frees_its_file(
    tmp_path: Path, data_home: DataHome
) -> None:
    folder = tmp_path / "Llama-3.1-Tiny-Instruct"
    write_meta_llama3(folder)
    done = models("convert", str(folder), "--quant", "Q8_0")
    assert done.returncode == 0, done.stderr
    assert "Converted" in done.stdout and "into the library as #" in done.stdout

    listed = json.loads(models("list", "--json").stdout)
    [converted] = [m for m in listed if m["source"] == "converted"]
    assert converted["name"].startswith("Llama-3.1-Tiny-Instruct")
    assert converted["owned"] and len(converted["sha256"]) == 64
    path = Path(converted["path"])
    assert path.parent == data_home.models_dir and path.name == "Llama-3.1-Tiny-Instruct-Q8_0.gguf"
    assert not list(data_home.models_dir.glob(".*partial"))

    inspected = json.loads(models("inspect", str(converted["id"]), "--json").stdout)
    assert inspected["file_type"] == "Q8_0"

    removed = models("rm", str(converted["id"]), "--yes")
    assert removed.returncode == 0, removed.stderr
    assert not path.exists()  # the library owned it


def test_convert_refuses_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    done = models("convert", str(tmp_path))
    assert done.returncode == 4, done.stderr
    assert str(tmp_path) in done.stderr

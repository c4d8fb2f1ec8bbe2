"""`llama-desk chat` end to end, as a separate process, offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from tests.support.cli import REPO, run_cli


def offline_cli(*args: str, via_console_script: bool = False) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={"HF_HUB_OFFLINE": "1"}, via_console_script=via_console_script)


def test_chat_starter_json_reports_text_and_stats() -> None:
    done = offline_cli(
        "chat",
        "starter",
        "--prompt",
        "Say hello to the user.",
        "--temperature",
        "0",
        "--max-tokens",
        "32",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["text"].strip()
    assert report["text"].strip() in done.stdout  # streamed before the JSON line
    assert report["prompt_tokens"] > 10
    assert 0 < report["completion_tokens"] <= 32
    assert report["ttft_s"] > 0 and report["tokens_per_s"] > 0
    assert report["stop_reason"] in ("end_of_turn", "max_tokens")
    assert done.stderr == ""


def test_chat_via_console_script_with_system_prompt_and_seed(tmp_path: Path) -> None:
    args = (
        "chat",
        "starter",
        "--prompt",
        "Tell me a fact.",
        "--system",
        "You answer in one sentence.",
        "--seed",
        "7",
        "--max-tokens",
        "16",
        "--json",
    )
    first = offline_cli(*args, via_console_script=True)
    second = offline_cli(*args, via_console_script=True)
    assert first.returncode == 0, first.stderr
    assert (
        json.loads(first.stdout.splitlines()[-1])["text"]
        == json.loads(second.stdout.splitlines()[-1])["text"]
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"just some text", "is not a GGUF model file"), (None, "Model file not found")],
)
def test_bad_model_file_is_one_clear_line(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    done = offline_cli("chat", str(path), "--prompt", "hi")
    assert done.returncode not in (0, 1)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert expected in line and str(path) in line
    assert done.stdout == ""


def test_usage_error_exits_2() -> None:
    done = offline_cli("chat", "starter")
    assert done.returncode == 2
    assert "--prompt" in done.stderr


def test_cli_writes_only_under_the_data_home(data_home: DataHome) -> None:
    before = set(REPO.rglob("*.log")) | set(REPO.glob("*.sqlite3"))
    done = offline_cli("chat", "starter", "--prompt", "hi", "--max-tokens", "4")
    assert done.returncode == 0, done.stderr
    assert (data_home.logs_dir / "llama-desk.log").is_file()
    assert set(REPO.rglob("*.log")) | set(REPO.glob("*.sqlite3")) == before

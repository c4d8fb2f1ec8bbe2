"""Every error's exit status is one README documents, and the CLI really exits with it."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import app
from app.core.data_home import DataHome
from app.core.errors import LlamaDeskError
from tests.support.cli import REPO, run_cli
from tests.support.gguf_files import write_small_gguf


def documented_codes() -> dict[int, str]:
    """The exit statuses README.md's CLI section lists: {code: what it means}."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    sentence = text[text.index("User errors print one line on stderr and exit non-zero:") :]
    sentence = sentence[: sentence.index("`python -m app")]
    return {int(code): meaning.strip() for code, meaning in re.findall(r"\b(\d{1,3}) ([^,]+)", sentence)}


def error_classes() -> set[type[LlamaDeskError]]:
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: set[type[LlamaDeskError]] = set()
    todo = list(LlamaDeskError.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_exits_with_a_documented_status_never_a_bare_1() -> None:
    codes = documented_codes()
    assert {2, 3, 4, 130} <= set(codes), codes
    undocumented = {c.__name__: c.exit_code for c in error_classes() if c.exit_code not in codes}
    assert undocumented == {}


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("chat", "no-such-model", "--prompt", "hi"), 3, "No model 'no-such-model' in the library"),
        (("models", "inspect", "/nonexistent/model.gguf"), 3, "Model file not found"),
        (("models", "inspect", "{bad}"), 4, "not a GGUF model file"),
        (("models", "rm", "1", "--yes"), 7, "part of the installation"),
        (("chats", "export", "999"), 3, "No conversation #999"),
        (("chats", "import", "/nonexistent/chat.json"), 3, "Cannot read /nonexistent/chat.json"),
        (("token", "set"), 2, "No token given"),
        (("models", "import", "{starter}"), 8, "already in the library"),
    ],
)
def test_the_cli_exits_with_the_errors_status(
    args: tuple[str, ...], code: int, says: str, tmp_path: Path, starter_path: Path, data_home: DataHome
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    argv = [a.format(bad=bad, starter=starter_path) for a in args]
    done = run_cli(*argv, stdin="" if args[0] == "token" else None)
    assert done.returncode == code, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert code in documented_codes()


def test_a_library_id_works_wherever_a_model_is_taken(tmp_path: Path) -> None:
    model = write_small_gguf(tmp_path / "small.gguf")
    assert run_cli("models", "import", str(model), "--name", "Small").returncode == 0
    by_id = run_cli("models", "inspect", "2", "--json")
    by_name = run_cli("models", "inspect", "Small", "--json")
    assert by_id.returncode == by_name.returncode == 0, by_id.stderr + by_name.stderr
    assert by_id.stdout == by_name.stdout
    chat = run_cli("chat", "1", "--prompt", "Say hi.", "--max-tokens", "4", "--temperature", "0")
    assert chat.returncode == 0, chat.stderr


def test_verbose_before_a_command_runs_the_command_and_a_closed_pipe_is_quiet() -> None:
    listed = run_cli("--verbose", "models", "list", via_console_script=True)
    assert listed.returncode == 0 and "SmolLM2" in listed.stdout, listed.stderr
    import subprocess

    from tests.support.cli import CONSOLE_SCRIPT

    pipe = subprocess.run(
        f"'{CONSOLE_SCRIPT}' models inspect starter | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert "Traceback" not in pipe.stderr and "BrokenPipe" not in pipe.stderr, pipe.stderr

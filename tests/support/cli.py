"""Run `llama-desk` as a user does: a separate process, the data home from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "llama-desk"


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    via_console_script: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` (or the installed console script), with no terminal on stdin."""
    command = [str(CONSOLE_SCRIPT)] if via_console_script else [sys.executable, "-m", "app"]
    return subprocess.run(
        [*command, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def models(*args: str) -> subprocess.CompletedProcess[str]:
    """`llama-desk models ARGS`."""
    return run_cli("models", *args)


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A child Python process in the repository (for kill -9 tests and the like)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )

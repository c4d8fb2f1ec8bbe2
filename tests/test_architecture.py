"""Layering beyond what import-linter sees: the CLI must run without loading Qt at all.

The static contracts (app/ never imports PySide6 or ui/; the layers inside app/ and ui/) are
import-linter contracts in pyproject.toml, checked by `lint-imports` in `make test`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cli_runs_without_loading_qt() -> None:
    code = "import sys, app.cli.main; app.cli.main.build_parser(); print('PySide6' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "False"

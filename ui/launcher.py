"""The `llama-desk` command: the GUI with no arguments (or `gui`), otherwise the CLI in `app.cli`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from app import cli


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] != "gui" and not (args[0].startswith("--") and args[0] in ("--model", "--verbose")):
        return cli.main(args)
    parser = argparse.ArgumentParser(prog="llama-desk gui", description="Open the Llama Desk window.")
    parser.add_argument(
        "--model", type=Path, help="chat with this .gguf instead of the library's default model"
    )
    parser.add_argument("--verbose", action="store_true", help="log debug detail to the log file")
    options = parser.parse_args(args[1:] if args and args[0] == "gui" else args)

    from ui.gui import run_gui  # imports Qt: only when the window is wanted

    return run_gui(options.model, verbose=options.verbose)


if __name__ == "__main__":
    sys.exit(main())

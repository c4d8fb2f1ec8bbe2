"""One-line progress on the terminal for long CLI commands (nothing when stderr is not a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from app.convert.pipeline import ConversionProgress, Stage
from app.core.units import format_bytes


def show_progress(done: int, total: int, tail: str = "") -> None:
    """Redraw the progress line: percent, bytes done of total, and `tail` (speed, file, ...)."""
    if not sys.stderr.isatty():
        return
    percent = 100 * done // total if total else 100
    sys.stderr.write(f"\r  {percent:3d}%  {format_bytes(done)} of {format_bytes(total)}  {tail}   ")
    sys.stderr.flush()


def end_line() -> None:
    """Leave the progress line, so the next message starts on its own line."""
    if sys.stderr.isatty():
        sys.stderr.write("\n")


def conversion_progress() -> Callable[[ConversionProgress], None]:
    """A progress line per conversion stage, each under its title."""
    stages: list[Stage] = []

    def show(progress: ConversionProgress) -> None:
        if stages[-1:] != [progress.stage]:
            if stages:
                end_line()
            stages.append(progress.stage)
            if sys.stderr.isatty():
                title = "Checking the result" if progress.stage is Stage.DONE else progress.stage.value
                sys.stderr.write(f"{title}\n")
        show_progress(progress.done, progress.total)

    return show

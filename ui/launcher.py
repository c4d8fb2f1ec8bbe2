"""The `llama-desk` command: the GUI with no arguments (or `gui`), otherwise the CLI in `app.cli.main`.

`llama-desk --self-test [--model M] [--screenshot PNG]` checks an installed app end to end: llama.cpp
loads and generates, and (with `--screenshot`) the chat window opens, answers and is grabbed to a PNG.
It runs in a throwaway data home, so it never touches the user's models or chats.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli import main as cli

if TYPE_CHECKING:
    from app.core.data_home import DataHome

_GUI_OPTIONS = ("--model", "--verbose", "--self-test", "--screenshot")
_GUI_VALUE_OPTIONS = ("--model", "--screenshot")
_WINDOW_TIMEOUT_S = 120.0


def _is_cli_call(args: list[str]) -> bool:
    """A CLI command anywhere (`llama-desk --verbose models list`), or an option only the CLI knows
    (`--help`); the GUI otherwise (no arguments, `gui`, or only the GUI's own options)."""
    if args[:1] == ["gui"]:
        return False
    commands = cli.command_names()
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        if arg in _GUI_VALUE_OPTIONS:
            skip_value = True
        elif arg in commands or (arg.startswith("-") and arg.split("=")[0] not in _GUI_OPTIONS):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    # In the frozen app, the quantizer's child process (app/convert/quantize.py) re-runs this binary.
    multiprocessing.freeze_support()
    args = list(sys.argv[1:] if argv is None else argv)
    if _is_cli_call(args):
        return cli.main(args)
    parser = argparse.ArgumentParser(prog="llama-desk gui", description="Open the Llama Desk window.")
    parser.add_argument(
        "--model", type=Path, help="chat with this .gguf instead of the library's default model"
    )
    parser.add_argument("--verbose", action="store_true", help="log debug detail to the log file")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation: load the model, generate a few tokens, report backend and libraries",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PNG",
        help="with --self-test: also open the window, let it answer, and save a picture of it here",
    )
    options = parser.parse_args(args[1:] if args and args[0] == "gui" else args)
    if options.screenshot and not options.self_test:
        parser.error("--screenshot works with --self-test")
    if options.self_test:
        return self_test(options.model, options.screenshot, verbose=options.verbose)

    from ui.gui import run_gui  # imports Qt: only when the window is wanted

    return run_gui(options.model, verbose=options.verbose)


def self_test(model: Path | None, screenshot: Path | None, *, verbose: bool = False) -> int:
    """Run the self-test in a temporary data home; print its report; 0 when everything worked."""
    from app.core.data_home import HOME_ENV_VAR, DataHome
    from app.core.errors import LlamaDeskError
    from app.core.logs import configure_logging
    from app.engine.self_test import run_self_test

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llama-desk-self-test-") as folder:
        os.environ[HOME_ENV_VAR] = folder  # the user's data home stays untouched
        home = DataHome.resolve().ensure()
        configure_logging(home, verbose=verbose)
        try:
            report = run_self_test(model)
            engine_s = time.perf_counter() - started
            for line in report.lines():
                print(line, flush=True)
            if screenshot is not None:
                for line in _window_test(home, model, screenshot, engine_s):
                    print(line, flush=True)
        except LlamaDeskError as exc:
            print(f"llama-desk: {exc}", file=sys.stderr)
            log_text = (home.logs_dir / "llama-desk.log").read_text(encoding="utf-8", errors="replace")
            sys.stderr.write(log_text[-4000:])  # the folder is deleted next: show the log's end now
            return exc.exit_code
    print(f"self-test: OK in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


def _window_test(home: DataHome, model: Path | None, screenshot: Path, engine_s: float) -> list[str]:
    """Open the chat window, have it answer "Hello", grab it to `screenshot`; report Qt's side.

    `engine_s`, the engine test run before, is left out of the start-up time reported.
    """
    import psutil
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QEventLoop, QTimer, qVersion

    from app.context import AppContext
    from app.core.errors import SelfTestError
    from app.engine.self_test import loaded_files
    from ui.gui import ChatWindows, create_application
    from ui.services import AppServices

    app = create_application()
    context = AppContext.open(home)
    services = AppServices(context)
    windows = ChatWindows(services)
    try:
        window = windows.open(model)
        window.resize(1000, 680)
        app.processEvents()
        shown_s = time.time() - psutil.Process().create_time() - engine_s

        def wait_until(condition: Callable[[], bool], what: str) -> None:
            loop = QEventLoop()
            timer = QTimer()
            timer.timeout.connect(lambda: loop.quit() if condition() else None)
            timer.start(20)
            QTimer.singleShot(int(_WINDOW_TIMEOUT_S * 1000), loop.quit)
            loop.exec()
            timer.stop()
            if not condition():
                raise SelfTestError(what, window.error_text() or f"nothing after {_WINDOW_TIMEOUT_S:.0f} s")

        wait_until(lambda: window.model_info is not None or bool(window.error_text()), "opening the window")
        if window.model_info is None:
            raise SelfTestError("loading the model in the window", window.error_text())
        window.generation_params = dataclasses.replace(
            window.generation_params, temperature=0.0, max_tokens=24, seed=1
        )
        window.input_box.setPlainText("Hello! Who are you?")
        window.send_message()
        wait_until(
            lambda: not window.is_generating and len(window.message_model_snapshot()) >= 2,
            "answering in the window",
        )
        app.processEvents()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(screenshot)):
            raise SelfTestError("saving the screenshot", f"Qt could not write {screenshot}")
        reply = window.message_model_snapshot()[-1].content
        qt_plugins = sorted(p for p in loaded_files() if "/plugins/" in p.replace("\\", "/"))
        return [
            f"startup: window shown {shown_s:.2f} s after the process started "
            f"(leaving out the {engine_s:.2f} s engine test before it)",
            f"qt: {qVersion()} (PySide6 {pyside_version}), platform plugin {app.platformName()!r}",
            f"window: replied {reply.strip()[:60]!r}; screenshot {screenshot} "
            f"({window.width()}x{window.height()})",
            *(f"qt plugin: {path}" for path in qt_plugins),
        ]
    finally:
        windows.shutdown_all()
        services.shutdown()
        context.close()


if __name__ == "__main__":
    sys.exit(main())

"""Command-line interface for scripts and tests: `llama-desk chat ...`.

User errors print one line on stderr and exit with the error's own status; only bugs
produce a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from app.cli.chats import add_chats_commands
from app.cli.hub import add_hub_commands
from app.cli.meta import add_meta_commands
from app.cli.models import STARTER, add_models_commands, resolve_model
from app.core.data_home import DataHome
from app.core.errors import LlamaDeskError
from app.core.logs import configure_logging
from app.engine.generation import ChatTurn, GenerationParams

log = logging.getLogger("cli")

EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141  # as a shell reports a process ended by SIGPIPE (`... | head`)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llama-desk",
        description="Chat with Llama models on your own machine.",
        epilog="Run `llama-desk` with no command to open the app.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log debug detail (and llama.cpp's) to the log file"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="stream one reply to stdout")
    chat.add_argument(
        "model",
        metavar="MODEL",
        help=f"a library id or name, a path to a .gguf file, or '{STARTER}' for the bundled model",
    )
    chat.add_argument("--prompt", required=True, help="the user message")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--max-tokens", type=_positive_int, default=512, help="longest reply (default 512)")
    chat.add_argument(
        "--temperature", type=float, default=0.7, help="0 picks the likeliest token (default 0.7)"
    )
    chat.add_argument("--seed", type=int, help="sampling seed, for repeatable replies")
    chat.add_argument(
        "--ctx", type=_positive_int, default=4096, help="context length in tokens (default 4096)"
    )
    chat.add_argument("--threads", type=_positive_int, help="CPU threads (default: physical cores)")
    chat.add_argument(
        "--json", action="store_true", help="end with a line of JSON: the text and ttft_s, tokens_per_s, ..."
    )
    chat.set_defaults(handler=_cmd_chat)
    models_commands = add_models_commands(commands)
    add_hub_commands(commands, models_commands)
    add_meta_commands(models_commands)
    add_chats_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    home = DataHome.resolve().ensure()
    configure_logging(home, verbose=args.verbose)
    try:
        status: int = args.handler(args)
        return status
    except LlamaDeskError as exc:
        log.warning("%s", exc)
        print(f"llama-desk: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`models inspect ... | head`): not an error of ours, and no traceback
        # when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED


def command_names() -> set[str]:
    """The CLI's commands (`chat`, `models`, ...): what tells the launcher a CLI call from the GUI's."""
    parser = build_parser()
    return {
        name
        for action in parser._subparsers._group_actions  # type: ignore[union-attr]
        for name in getattr(action, "choices", {}) or {}
    }


def _cmd_chat(args: argparse.Namespace) -> int:
    from app.engine.session import ModelSession  # loads llama.cpp: only for commands that need it

    turns = ([ChatTurn("system", args.system)] if args.system else []) + [ChatTurn("user", args.prompt)]
    params = GenerationParams(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)
    with ModelSession(resolve_model(args.model), n_ctx=args.ctx, n_threads=args.threads) as session:
        if session.info.template_is_fallback:
            print(
                "llama-desk: note: the model has no chat template; "
                f"using the {session.info.template_name} format",
                file=sys.stderr,
            )
        result = session.generate(turns, params, on_text=_write_stdout)
    sys.stdout.write("\n")
    if args.json:
        report = {"text": result.text, "model": session.info.name, "template": session.info.template_name}
        report.update(result.stats.to_json())
        sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value}")
    return number

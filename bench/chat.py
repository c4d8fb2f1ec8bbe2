"""Chat benchmarks on the starter model: the figures behind issue #6's targets.

    python -m bench.chat [--runs 5] [--json out.json]

1. streaming overhead: decode tokens/s through the app's full path (engine -> worker thread ->
   signals -> view, offscreen) against raw llama.cpp (llama_decode + greedy sampler loop), same
   model, prompt and context, each contender in a process of its own (a raw loop timed inside the
   GUI process it is compared with shares that process's threads and caches), runs alternating,
   with 1 and with 2 llama.cpp threads (on 2 cores the GUI thread competes with llama.cpp's);
2. turn latency: time to first token of turns 1, 10 and 30 of one conversation;
3. UI responsiveness: main-thread gaps between 1 ms timer ticks while streaming into a
   1,000-message conversation (p99 and max);
   and the same for a long Markdown reply (tables, lists, code) fed in 50 ms batches, with the
   number of blocks rendered (each complete block once; only the growing one again);
4. opening a 5,000-message conversation: time to the first paint of the message view, with plain
   replies and with Markdown replies;
5. cold start: process start to the chat window shown (the model loads in the background).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.raw_llama import raw_decode_tok_s

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
N_CTX = 4096
DECODE_TOKENS = 128


def wait_until(app: object, condition: object, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.001)


MARKDOWN_SHORT = """Use **`sorted()`** for a new list, or `list.sort()` in place:

```python
names = sorted(names, key=str.lower)
```

- `reverse=True` sorts descending
- the sort is *stable*"""

MARKDOWN_LONG = "\n\n".join(
    f"""### Step {n}: a table, a list and some code

Here is what **step {n}** does, with `inline code` and a [link](https://example.com/{n}).

| option | default | meaning |
|--------|---------|---------|
| `depth` | {n} | how deep to go |
| `width` | {2 * n} | how wide |

1. Read the input.
2. Transform it:
   - strip whitespace
   - lowercase

```python
def step_{n}(items: list[str]) -> list[str]:
    \"\"\"Step {n}: normalise, then sort.\"\"\"
    cleaned = [item.strip().lower() for item in items]
    return sorted(cleaned, key=len)[:{n}]
```"""
    for n in range(1, 9)
)


def bulk_conversation(store: object, title: str, contents: list[str]) -> int:
    """A conversation of alternating user and assistant messages, inserted in one transaction."""
    from app.chat.store import MessageStatus

    conversation = store.create_conversation(title)  # type: ignore[attr-defined]
    conn = store._conn  # type: ignore[attr-defined]  # bulk insert: the benchmark measures opening, not writing
    parent = None
    with conn:
        for i, content in enumerate(contents):
            parent = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, status, created_at, parent_id)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    conversation.id,
                    "user" if i % 2 == 0 else "assistant",
                    content,
                    str(MessageStatus.COMPLETE),
                    time.time(),
                    parent,
                ),
            ).lastrowid
        conn.execute("UPDATE conversations SET active_leaf_id = ? WHERE id = ?", (parent, conversation.id))
    return int(conversation.id)


def first_paint_ms(app: object, window: object, conversation_id: int) -> float:
    """Time from selecting a conversation to the first paint of the message view."""
    from PySide6.QtCore import QEvent, QObject

    window._refresh_conversation_list()  # type: ignore[attr-defined]  # it was written behind the window's back
    window.new_conversation()  # type: ignore[attr-defined]
    app.processEvents()  # type: ignore[attr-defined]
    painted: list[float] = []

    class PaintProbe(QObject):
        def eventFilter(self, _watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not painted:
                painted.append(time.perf_counter())
            return False

    probe_filter = PaintProbe()
    viewport = window.message_view.viewport()  # type: ignore[attr-defined]
    viewport.installEventFilter(probe_filter)
    started = time.perf_counter()
    window.select_conversation(conversation_id)  # type: ignore[attr-defined]
    wait_until(app, lambda: bool(painted), timeout_s=60)
    viewport.removeEventFilter(probe_filter)
    return round((painted[0] - started) * 1000, 1)


def markdown_streaming(app: object, window: object, conversation_id: int) -> dict[str, object]:
    """A long Markdown reply (tables, lists, code) appended in 50 ms batches: main-thread gaps and renders.

    The starter model writes prose, so this feeds the text itself, at the worker's batch interval
    and a fast model's rate (about 12 tokens, 48 characters, per batch).
    """
    import dataclasses

    from PySide6.QtCore import QTimer

    from app.chat.store import MessageStatus
    from ui.chat.worker import TEXT_BATCH_INTERVAL_S

    window._refresh_conversation_list()  # type: ignore[attr-defined]
    window.select_conversation(conversation_id)  # type: ignore[attr-defined]
    model = window.message_model  # type: ignore[attr-defined]
    view = window.message_view  # type: ignore[attr-defined]
    last = model.message(model.rowCount() - 1)
    reply = dataclasses.replace(
        last, id=-1, role="assistant", content="", status=MessageStatus.STREAMING, stats=None
    )
    model.append(reply)
    view.scrollToBottom()
    delegate = view.itemDelegate()
    renders_before = delegate.markdown.renders
    pieces = [MARKDOWN_LONG[i : i + 48] for i in range(0, len(MARKDOWN_LONG), 48)]
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    for piece in pieces:
        model.append_text(reply.id, piece)
        view.scrollToBottom()
        due = time.perf_counter() + TEXT_BATCH_INTERVAL_S
        wait_until(app, lambda due=due: time.perf_counter() >= due)
    timer.stop()
    gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(ticks))
    return {
        "characters": len(MARKDOWN_LONG),
        "batches": len(pieces),
        "blocks_rendered": delegate.markdown.renders - renders_before,
        "p99_gap": round(gaps[int(0.99 * (len(gaps) - 1))], 2),
        "max_gap": round(gaps[-1], 2),
        "target": "p99 <= 16, max <= 50",
    }


def spread(values: list[float], digits: int = 1) -> dict[str, float]:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def contender(which: str, threads: int) -> float:
    """One streaming run in this process: `raw` llama_decode, or the `app`'s full path; tokens/s."""
    from app.core.starter import starter_model_path
    from app.engine.generation import ChatTurn, GenerationParams
    from app.engine.session import ModelSession

    model_path = starter_model_path()
    with ModelSession(model_path, n_ctx=N_CTX, n_threads=threads) as probe:
        prompt_tokens = probe.tokenize(probe.format_prompt([ChatTurn("user", PROMPT)]))
    if which == "raw":
        return raw_decode_tok_s(model_path, prompt_tokens, DECODE_TOKENS, n_ctx=N_CTX, threads=threads)
    from app.context import AppContext
    from app.core.data_home import DataHome
    from ui.gui import create_application, open_chat_window
    from ui.services import AppServices

    app = create_application()
    context = AppContext.open(DataHome.resolve())
    context.settings.context_length = N_CTX
    context.settings.threads = threads
    services = AppServices(context)
    window = open_chat_window(services, None)
    window.show()
    wait_until(app, lambda: window.model_info is not None)
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=DECODE_TOKENS)
    window.input_box.setPlainText(PROMPT)
    window.send_message()
    wait_until(app, lambda: not window.is_generating)
    stats = window.message_model.message(window.message_model.rowCount() - 1).stats
    assert stats is not None and stats.completion_tokens == DECODE_TOKENS
    window.shutdown()
    services.shutdown()
    context.close()
    return stats.tokens_per_s


def streaming_figures(runs: int) -> dict[str, object]:
    """Raw against the full path, each run in a fresh process, alternating which goes first."""
    figures: dict[str, object] = {}
    for threads in (1, 2):
        results: dict[str, list[float]] = {"raw": [], "app": []}
        for run in range(runs):
            for which in ("raw", "app") if run % 2 == 0 else ("app", "raw"):
                home = tempfile.mkdtemp(prefix="llama-desk-bench-")
                done = subprocess.run(
                    [sys.executable, "-m", "bench.chat", "--contender", which, "--threads", str(threads)],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=Path(__file__).resolve().parents[1],
                    env={**os.environ, "LLAMA_DESK_HOME": home},
                )
                results[which].append(float(done.stdout.strip().splitlines()[-1]))
        ratios = [a / r for a, r in zip(results["app"], results["raw"], strict=True)]
        figures[f"threads_{threads}"] = {
            "raw_llama_decode_tok_s": spread(results["raw"]),
            "app_full_path_tok_s": spread(results["app"]),
            "ratio": spread(ratios, 3),
            "ratio_of_medians": round(
                statistics.median(results["app"]) / statistics.median(results["raw"]), 3
            ),
        }
    figures["target"] = ">= 0.98"
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--contender", choices=("raw", "app"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        print(contender(args.contender, args.threads))
        return 0
    home = tempfile.mkdtemp(prefix="llama-desk-bench-")
    os.environ["LLAMA_DESK_HOME"] = home

    from PySide6.QtCore import QTimer

    from app.chat.reply import write_reply
    from app.chat.store import ChatStore
    from app.context import AppContext
    from app.core.data_home import DataHome
    from app.core.starter import starter_model_path
    from app.engine.generation import GenerationParams
    from app.engine.session import ModelSession, default_thread_count
    from ui.gui import create_application, open_chat_window
    from ui.services import AppServices

    figures: dict[str, object] = {}
    model_path = starter_model_path()
    threads = default_thread_count()
    app = create_application()
    context = AppContext.open(DataHome.resolve())
    context.settings.context_length = N_CTX

    # 1. streaming overhead: each contender in its own process ----------------------------------------
    figures["streaming"] = streaming_figures(args.runs)
    services = AppServices(context)
    window = open_chat_window(services, None)
    window.show()
    wait_until(app, lambda: window.model_info is not None)

    # 3. UI responsiveness while streaming into a 1,000-message chat --------------------------------
    store = ChatStore(context.home.chats_db)
    big = store.create_conversation("1,000 messages")
    for i in range(500):
        store.add_message(big.id, "user", f"Question {i}: what is a good name for a lighthouse cat?")
        store.add_message(big.id, "assistant", f"Answer {i}: " + "Whiskers of the Tide. " * 6)
    window._refresh_conversation_list()  # it was written behind the window's back
    window.select_conversation(big.id)
    wait_until(app, lambda: window.message_model.rowCount() == 1000)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    window.generation_params = GenerationParams(temperature=0.0, max_tokens=256)
    window.input_box.setPlainText(PROMPT)
    timer.start()
    window.send_message()
    wait_until(app, lambda: not window.is_generating)
    timer.stop()
    gaps = sorted((b - a) * 1000 for a, b in itertools.pairwise(ticks))
    figures["ui_gaps_ms"] = {
        "ticks": len(ticks),
        "p99": round(gaps[int(0.99 * (len(gaps) - 1))], 2),
        "max": round(gaps[-1], 2),
        "target": "p99 <= 16, max <= 50",
    }

    # 4. opening a 5,000-message conversation (plain text, then Markdown replies) ----------------------
    huge = bulk_conversation(
        store, "5,000 messages", [f"Message {i}: " + "the sea is wide. " * 5 for i in range(5000)]
    )
    figures["open_5000_messages_ms"] = {"first_paint": first_paint_ms(app, window, huge), "target": "<= 300"}
    assert window.message_model.rowCount() == 5000
    markdown = bulk_conversation(
        store,
        "5,000 Markdown messages",
        [
            f"Question {i}: how do I sort a list?" if i % 2 == 0 else f"Reply {i}:\n{MARKDOWN_SHORT}"
            for i in range(5000)
        ],
    )
    figures["open_5000_markdown_messages_ms"] = {
        "first_paint": first_paint_ms(app, window, markdown),
        "target": "<= 300",
    }

    # 3b. streaming a long Markdown reply into the 1,000-message chat, 50 ms batches ------------------
    figures["markdown_streaming"] = markdown_streaming(app, window, big.id)

    # 2. turn latency vs history -------------------------------------------------------------------
    ttft: dict[int, float] = {}
    conversation = store.create_conversation("30 turns")
    with ModelSession(model_path, n_ctx=N_CTX, n_threads=threads) as session:
        for turn in range(1, 31):
            store.add_message(
                conversation.id, "user", f"Turn {turn}: name one more animal that lives by the sea."
            )
            outcome = write_reply(
                store,
                session,
                conversation.id,
                GenerationParams(temperature=0.0, max_tokens=24),
                on_started=lambda _i: None,
                on_text=lambda _t: None,
                cancel=threading.Event(),
            )
            ttft[turn] = outcome.stats.ttft_s
    figures["turn_ttft_ms"] = {
        "turn_1": round(ttft[1] * 1000, 1),
        "turn_10": round(ttft[10] * 1000, 1),
        "turn_30": round(ttft[30] * 1000, 1),
        "turn_30_over_turn_1": round(ttft[30] / ttft[1], 2),
        "target": "turn 30 <= 1.2 x turn 1",
    }
    window.shutdown()
    services.shutdown()
    context.close()

    # 5. cold start -----------------------------------------------------------------------------
    probe_code = (
        "import time, os; from ui.gui import create_application, open_chat_window;"
        "from app.context import AppContext; from app.core.data_home import DataHome;"
        "app = create_application(); ctx = AppContext.open(DataHome.resolve());"
        "from ui.services import AppServices;"
        "w = open_chat_window(AppServices(ctx), None); w.show(); app.processEvents();"
        "print('shown', flush=True); w.shutdown(); ctx.close()"
    )
    starts = []
    for _ in range(args.runs):
        began = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", probe_code],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert child.stdout is not None
        child.stdout.readline()
        starts.append(time.perf_counter() - began)
        child.wait()
    figures["cold_start_s"] = {**spread(starts, 3), "target": "<= 1.0"}

    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

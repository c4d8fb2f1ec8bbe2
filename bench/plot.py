"""Draw the chat benchmarks against their targets as one PNG (for docs/), with Qt, no plotting library.

    python -m bench.chat --json chat.json && python -m bench.reopen --json reopen.json
    python -m bench.plot chat.json reopen.json --out docs/benchmarks.png

Each row is one figure as a share of its target: a bar inside the shaded band meets it.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@dataclass(frozen=True)
class Row:
    label: str
    value: float
    target: float
    unit: str
    higher_is_better: bool
    target_text: str = ""  # how to name the target when it is not a fixed goal

    @property
    def meets_target(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def text(self) -> str:
        sign = "≥" if self.higher_is_better else "≤"
        return f"{self.value:g} {self.unit}  ({self.target_text or f'target {sign} {self.target:g}'})"


def rows_from(figures: dict[str, Any]) -> list[Row]:
    """The rows present in `figures` (merged bench JSON); a benchmark not run is left out."""
    rows: list[Row] = []
    if "streaming" in figures:
        streaming = figures["streaming"]
        for threads in ("threads_1", "threads_2"):
            if threads in streaming:  # each contender in its own process, median of the runs' ratios
                ratio = streaming[threads]["ratio"]["median"]
                label = f"Streaming: app ÷ raw llama.cpp, {threads[-1]} thread(s)"
                rows.append(Row(label, ratio, 0.98, "", True))
    if "turn_ttft_ms" in figures:
        turns = figures["turn_ttft_ms"]
        rows.append(
            Row("Turn 30 ÷ turn 1, time to first token", turns["turn_30_over_turn_1"], 1.2, "×", False)
        )
    if "ui_gaps_ms" in figures:
        rows.append(Row("UI stall while streaming, p99", figures["ui_gaps_ms"]["p99"], 16, "ms", False))
        rows.append(Row("UI stall while streaming, max", figures["ui_gaps_ms"]["max"], 50, "ms", False))
    if "open_5000_messages_ms" in figures:
        rows.append(
            Row("Open 5,000 messages", figures["open_5000_messages_ms"]["first_paint"], 300, "ms", False)
        )
    if "open_5000_markdown_messages_ms" in figures:
        value = figures["open_5000_markdown_messages_ms"]["first_paint"]
        rows.append(Row("Open 5,000 Markdown messages", value, 300, "ms", False))
    if "cold_start_s" in figures:
        rows.append(Row("Cold start to window", figures["cold_start_s"]["median"], 1.0, "s", False))
    if "reopen_ttft_ms" in figures:
        reopen = figures["reopen_ttft_ms"]
        rows.append(
            Row(
                f"Back to a {reopen['prompt_tokens']:,}-token chat (saved cache)",
                reopen["with_saved_cache"],
                reopen["re_reading"],
                "ms",
                False,
                f"reading it again: {reopen['re_reading']:g} ms",
            )
        )
    return rows


def draw(rows: list[Row], out: Path, title: str) -> None:
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter

    _app = QGuiApplication.instance() or QGuiApplication([])
    width, row_height, top, label_width, bar_width = 1280, 46, 70, 400, 440
    image = QImage(width, top + row_height * len(rows) + 40, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(15)
    painter.setFont(font)
    title_font = QFont(font)
    title_font.setPixelSize(20)
    title_font.setBold(True)
    painter.setFont(title_font)
    painter.drawText(QRectF(20, 15, width - 40, 30), title)
    painter.setFont(font)
    scale = bar_width / 2.0  # a bar of twice the target fills the track
    for i, row in enumerate(rows):
        y = top + i * row_height
        painter.setPen(QColor("#222"))
        painter.drawText(
            QRectF(20, y, label_width - 30, row_height - 10), Qt.AlignmentFlag.AlignVCenter, row.label
        )
        track = QRectF(label_width, y + 8, bar_width, row_height - 26)
        painter.fillRect(track, QColor("#f1f1f1"))
        good = QRectF(label_width, track.y(), scale, track.height())
        if row.higher_is_better:
            good = QRectF(label_width + scale, track.y(), bar_width - scale, track.height())
        painter.fillRect(good, QColor("#e3f2e1"))
        share = row.value / row.target if row.target else 0.0
        bar = QRectF(label_width, track.y() + 4, min(share, 2.0) * scale, track.height() - 8)
        painter.fillRect(bar, QColor("#2e7d32" if row.meets_target else "#c62828"))
        painter.setPen(QColor("#555"))
        painter.drawLine(
            int(label_width + scale), int(track.y() - 3), int(label_width + scale), int(track.bottom() + 3)
        )
        painter.setPen(QColor("#222"))
        painter.drawText(
            QRectF(label_width + bar_width + 15, y, width - label_width - bar_width - 20, row_height - 10),
            Qt.AlignmentFlag.AlignVCenter,
            row.text,
        )
    painter.setPen(QColor("#777"))
    painter.drawText(
        QRectF(20, top + row_height * len(rows), width - 40, 30),
        "Bars: the figure as a share of its target (the line). Green meets it; the shaded side is better.",
    )
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out)):
        raise OSError(f"could not write {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", type=Path, nargs="+", help="JSON written by bench.chat / bench.reopen")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.png"))
    parser.add_argument("--title", default="Llama Desk chat benchmarks (starter model, CPU)")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for path in args.inputs:
        figures.update(json.loads(path.read_text(encoding="utf-8")))
    rows = rows_from(figures)
    draw(rows, args.out, args.title)
    for row in rows:
        print(f"{row.label:<48}{row.text}{'' if row.meets_target else '   MISSED'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""User settings: one typed schema, saved atomically as JSON in the data home.

The file is the user's to edit, so what it holds is checked when it is read: a value of the wrong
type or out of range falls back to its default, and the caller is told which (to tell the user).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("settings")


@dataclass
class Settings:
    #: Library id of the model new chats use; None means the starter model.
    default_model_id: int | None = None
    #: Context window (tokens) models are loaded with; the model's own maximum caps it.
    context_length: int = 4096
    #: CPU threads for generation; None lets the app pick the number of physical cores.
    threads: int | None = None
    #: Model layers offloaded to the GPU: None = as many as fit in free VRAM, 0 = CPU only, N = N layers.
    gpu_layers: int | None = None
    #: System prompts the user saved by name (app/chat/presets.py adds the built-in ones).
    system_prompt_presets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Settings:
        return cls.load_checked(path)[0]

    @classmethod
    def load_checked(cls, path: Path) -> tuple[Settings, list[str]]:
        """Read settings; returns them and one sentence per value that was unusable and replaced by
        its default (unknown keys are ignored silently: a newer version may have written them)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(), []
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings file %s: %s", path, exc)
            return cls(), [f"{path.name} could not be read ({exc}); using the default settings."]
        if not isinstance(raw, dict):
            return cls(), [f"{path.name} does not hold settings; using the default settings."]
        values: dict[str, Any] = {}
        problems: list[str] = []
        defaults = cls()
        for f in fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            if _VALID[f.name](value):
                values[f.name] = value
            else:
                default = getattr(defaults, f.name)
                problems.append(
                    f"{f.name} was {json.dumps(value)[:60]}; using the default, {json.dumps(default)}."
                )
        for problem in problems:
            log.warning("settings: %s", problem)
        return cls(**values), problems

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)


def _int_or_none(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: v is None or (type(v) is int and low <= v <= high)


_VALID: dict[str, Callable[[Any], bool]] = {
    "default_model_id": _int_or_none(1, 2**62),
    "context_length": lambda v: type(v) is int and 256 <= v <= 1 << 24,
    "threads": _int_or_none(1, 1024),
    "gpu_layers": _int_or_none(-1, 100_000),
    "system_prompt_presets": lambda v: (
        isinstance(v, dict) and all(isinstance(k, str) and isinstance(t, str) for k, t in v.items())
    ),
}

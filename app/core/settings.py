"""User settings: one typed schema, saved atomically as JSON in the data home."""

from __future__ import annotations

import json
import logging
import os
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
        """Read settings, ignoring unknown keys and falling back to defaults for a damaged file."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings file %s: %s", path, exc)
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in raw.items() if k in known} if isinstance(raw, dict) else {}
        return cls(**values)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)

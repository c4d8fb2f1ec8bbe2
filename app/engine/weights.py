"""llama.cpp models (the weights) loaded once per file, shared by every context that chats with them.

Two chat windows on the same GGUF each need their own context (their own KV cache), not their own
copy of the weights: llama.cpp lets many contexts run on one `llama_model`, each on its own thread.
The registry is owned by the application (through ModelUsage) and counts holders; the weights are
freed when the last holder lets go.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from app.engine.backends import OffloadPlan

log = logging.getLogger("engine.weights")


@dataclass(frozen=True)
class WeightsKey:
    path: Path  # resolved
    n_gpu_layers: int  # as planned: the same file offloaded differently is another load


@dataclass
class _Entry:
    model: ctypes.c_void_p
    plan: OffloadPlan  # the offload plan the weights were really loaded with (after any GPU fallback)
    holders: int


class SharedWeights:
    """Thread-safe: windows load on their own worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # held while loading, so a second window waits and shares
        self._entries: dict[WeightsKey, _Entry] = {}
        self.loads = 0  # files really read by llama.cpp (for tests and the log)

    def acquire(
        self, key: WeightsKey, load: Callable[[], tuple[ctypes.c_void_p, OffloadPlan]]
    ) -> tuple[ctypes.c_void_p, OffloadPlan]:
        """The weights for `key`, loaded by `load()` (model pointer, plan) the first time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                model, plan = load()
                entry = _Entry(model, plan, 0)
                self._entries[key] = entry
                self.loads += 1
            else:
                log.info("sharing the weights of %s already loaded", key.path.name)
            entry.holders += 1
            return entry.model, entry.plan

    def release(self, key: WeightsKey) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.holders -= 1
            if entry.holders <= 0:
                del self._entries[key]
                llama_cpp.llama_model_free(entry.model)
                log.info("freed the weights of %s", key.path.name)

    def holders(self, path: Path) -> int:
        with self._lock:
            return sum(e.holders for k, e in self._entries.items() if k.path == path.resolve())

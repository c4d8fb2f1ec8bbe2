"""Which model files the open chats have loaded, so that deleting one of them can be refused, and
how much memory they hold, so that a window about to load another model can warn first."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from app.core.units import format_bytes
from app.engine.fit import HEADROOM_BYTES, MemoryEstimate
from app.engine.weights import SharedWeights


class ModelUsage:
    """The application's one account of loaded models: a thread-safe count of loads per model file
    (windows load on worker threads), the memory each holds, and the weights they share."""

    def __init__(self) -> None:
        self.weights = SharedWeights()
        self._lock = threading.Lock()
        self._counts: collections.Counter[Path] = collections.Counter()
        self._loaded: dict[int, LoadedModel] = {}  # owner token -> what it holds in memory

    def acquire(self, path: Path) -> None:
        with self._lock:
            self._counts[path.resolve()] += 1

    def release(self, path: Path) -> None:
        with self._lock:
            key = path.resolve()
            self._counts[key] -= 1
            if self._counts[key] <= 0:
                del self._counts[key]

    def is_in_use(self, path: Path) -> bool:
        with self._lock:
            return self._counts[path.resolve()] > 0

    def record_loaded(self, owner: int, model: LoadedModel) -> None:
        with self._lock:
            self._loaded[owner] = model

    def forget_loaded(self, owner: int) -> None:
        with self._lock:
            self._loaded.pop(owner, None)

    def loaded_by_others(self, owner: int) -> list[LoadedModel]:
        with self._lock:
            return [m for o, m in self._loaded.items() if o != owner]


@dataclass(frozen=True)
class LoadedModel:
    """What one open chat's model holds in memory."""

    path: Path
    weights_bytes: int  # memory-mapped: windows on the same file share it
    context_bytes: int  # the window's own KV cache and compute buffers

    @classmethod
    def estimate(cls, path: Path, estimate: MemoryEstimate) -> LoadedModel:
        return cls(path.resolve(), estimate.weights_bytes, estimate.kv_cache_bytes + estimate.compute_bytes)


def memory_warning(wanted: LoadedModel, others: Sequence[LoadedModel], ram_total: int) -> str | None:
    """Why loading `wanted` beside the models of the other open chats would not fit in RAM, or None.

    Past that point the computer swaps and every window crawls; the user decides whether to go on.
    """
    weights = {o.path: o.weights_bytes for o in others}
    others_bytes = sum(weights.values()) + sum(o.context_bytes for o in others)
    shared = wanted.path in weights
    needed = wanted.context_bytes + (0 if shared else wanted.weights_bytes)
    if needed + others_bytes + HEADROOM_BYTES <= ram_total:
        return None
    open_part = (
        f" the {len(others)} model(s) open in other windows use about {format_bytes(others_bytes)}, and"
        if others
        else ""
    )
    return (
        f"{wanted.path.name} needs about {format_bytes(needed)} of memory;{open_part} this computer has"
        f" {format_bytes(ram_total)}. Loading it would make the computer swap and slow every window down."
        " Close another chat window, choose a smaller quantization or a shorter context — or load it anyway."
    )

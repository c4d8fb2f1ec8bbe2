"""Which model files the open chats have loaded, so that deleting one of them can be refused."""

from __future__ import annotations

import collections
import threading
from pathlib import Path


class ModelUsage:
    """A thread-safe count of loads per model file (windows load on worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[Path] = collections.Counter()

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

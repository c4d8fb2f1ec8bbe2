"""The local model library: a SQLite manifest of GGUF files the user can chat with.

Files are referenced where they are (the starter model stays inside its Python
package) or live under the data home's `models/` folder.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from app.errors import StarterModelMissingError
from app.starter import STARTER_LICENSE, STARTER_NAME, starter_model_path

log = logging.getLogger("library")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    license TEXT,
    added_at REAL NOT NULL
);
"""
STARTER_SOURCE = "starter"


@dataclass(frozen=True)
class LibraryModel:
    id: int
    name: str
    path: Path
    source: str  # "starter", "import", later "huggingface" or "meta"
    size_bytes: int
    license: str | None
    added_at: float


class ModelLibrary:
    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(db_path, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        with self._conn:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def models(self) -> list[LibraryModel]:
        return [_model_from_row(r) for r in self._conn.execute("SELECT * FROM models ORDER BY id")]

    def get(self, model_id: int) -> LibraryModel | None:
        row = self._conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return None if row is None else _model_from_row(row)

    def add_in_place(self, path: Path, name: str, source: str, license: str | None = None) -> LibraryModel:
        """Register a file where it lies, without copying it."""
        path = path.resolve()
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO models (name, path, source, size_bytes, license, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, str(path), source, path.stat().st_size, license, time.time()),
            )
        assert cur.lastrowid is not None
        log.info("registered %s (%s) from %s", name, source, path)
        model = self.get(cur.lastrowid)
        assert model is not None
        return model

    def ensure_starter(self) -> LibraryModel | None:
        """Register the bundled starter model on first run; follow it if its package moved.

        Returns None when the starter package is not installed (the app still runs).
        """
        try:
            path = starter_model_path().resolve()
        except StarterModelMissingError:
            log.warning("starter model package is not installed")
            return None
        row = self._conn.execute("SELECT * FROM models WHERE source = ?", (STARTER_SOURCE,)).fetchone()
        if row is None:
            return self.add_in_place(path, STARTER_NAME, STARTER_SOURCE, STARTER_LICENSE)
        if Path(row["path"]) != path:
            with self._conn:
                self._conn.execute(
                    "UPDATE models SET path = ?, size_bytes = ? WHERE id = ?",
                    (str(path), path.stat().st_size, row["id"]),
                )
            log.info("starter model moved to %s", path)
            row = self._conn.execute("SELECT * FROM models WHERE id = ?", (row["id"],)).fetchone()
        return _model_from_row(row)


def _model_from_row(r: sqlite3.Row) -> LibraryModel:
    return LibraryModel(
        r["id"], r["name"], Path(r["path"]), r["source"], r["size_bytes"], r["license"], r["added_at"]
    )

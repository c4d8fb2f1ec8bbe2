"""The local model library: a SQLite manifest of the GGUF models the user can chat with.

A model is either *referenced* where it already lies (the starter model inside its
Python package, a GGUF the user imported in place) or *owned*: a file under the data
home's `models/` folder (copied in, or downloaded), deleted with its entry. A split
model (`x-00001-of-00003.gguf`, ...) is one entry whose path is its first part.
What the header says (architecture, parameters, ...) is stored at import, so listing
a library never re-reads model files.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import (
    ModelAlreadyInLibraryError,
    ModelInUseError,
    ModelNotInLibraryError,
    StarterModelMissingError,
    StarterModelRemovalError,
)
from app.core.file_ops import Progress, copy_files_hashed, sha256_files
from app.core.starter import STARTER_LICENSE, STARTER_NAME, starter_model_path
from app.engine.usage import ModelUsage
from app.gguf.header import SHARD_NAME, split_model_paths
from app.gguf.report import ModelReport, inspect_model

log = logging.getLogger("library")

STARTER_SOURCE = "starter"
IMPORT_SOURCE = "import"
_SCHEMA_VERSION = 3
_CREATE = """
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
# Columns added in schema 2 (the walking skeleton's library had only the ones above).
_V2_COLUMNS = (
    ("owned", "INTEGER NOT NULL DEFAULT 0"),
    ("shard_count", "INTEGER NOT NULL DEFAULT 1"),
    ("architecture", "TEXT"),
    ("parameters", "INTEGER"),
    ("file_type", "TEXT"),
    ("context_length", "INTEGER"),
    ("sha256", "TEXT"),
    ("origin", "TEXT"),  # where it was downloaded from: "repo/file@revision"
    # Schema 3: a download being moved into place; listed only once its file is there (see add_pending).
    ("pending", "INTEGER NOT NULL DEFAULT 0"),
)


@dataclass(frozen=True)
class LibraryModel:
    id: int
    name: str
    path: Path  # the file, or the first part of a split model
    source: str  # "starter", "import"; later "huggingface", "meta"
    size_bytes: int
    license: str | None
    added_at: float
    owned: bool  # lives in the library folder and is deleted with the entry
    shard_count: int
    architecture: str | None
    parameters: int | None
    file_type: str | None
    context_length: int | None
    sha256: str | None  # comma-separated, one per part, once computed
    origin: str | None  # for downloads: "repo/file@revision"

    @property
    def paths(self) -> list[Path]:
        """Every file of the model: one, or each part of a split model."""
        return split_model_paths(self.path) if self.shard_count > 1 else [self.path]


class ModelLibrary:
    def __init__(self, db_path: Path, models_dir: Path, usage: ModelUsage | None = None) -> None:
        self._models_dir = models_dir
        self.usage = usage or ModelUsage()
        self._conn = sqlite3.connect(db_path, timeout=10.0, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()  # the GUI thread and import workers share this connection
        self._migrate()
        self._recover_pending()

    def close(self) -> None:
        self._conn.close()

    @property
    def models_dir(self) -> Path:
        """The library's own folder: copies and downloads live here."""
        return self._models_dir

    def _migrate(self) -> None:
        with self._conn:
            self._conn.executescript(_CREATE)
            have = {row["name"] for row in self._conn.execute("PRAGMA table_info(models)")}
            for column, declaration in _V2_COLUMNS:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE models ADD COLUMN {column} {declaration}")
            self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    # -- reading ---------------------------------------------------------------------------------

    def models(self) -> list[LibraryModel]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM models WHERE pending = 0 ORDER BY id").fetchall()
        return [_model_from_row(r) for r in rows]

    def get(self, model_id: int) -> LibraryModel | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM models WHERE id = ? AND pending = 0", (model_id,)
            ).fetchone()
        return None if row is None else _model_from_row(row)

    def find(self, ref: str) -> LibraryModel:
        """A model by id, exact name or path; raises ModelNotInLibraryError."""
        models = self.models()
        if ref.isdigit():
            match = next((m for m in models if m.id == int(ref)), None)
            if match:
                return match
        match = next((m for m in models if m.name == ref), None)
        if match is None:
            resolved = Path(ref).expanduser().resolve()
            match = next((m for m in models if resolved in m.paths), None)
        if match is None:
            raise ModelNotInLibraryError(ref)
        return match

    def find_by_sha256(self, digest: str) -> LibraryModel | None:
        """A single-file model whose recorded sha256 is `digest` (the same bytes are already here)."""
        return next((m for m in self.models() if m.sha256 == digest), None)

    def total_size(self) -> int:
        """Bytes on disk of every model in the library."""
        return sum(m.size_bytes for m in self.models())

    def owned_size(self) -> int:
        """Bytes the library folder itself holds (what deleting owned models frees)."""
        return sum(m.size_bytes for m in self.models() if m.owned)

    # -- adding ----------------------------------------------------------------------------------

    def import_model(
        self,
        path: Path,
        *,
        copy: bool = False,
        name: str | None = None,
        hash_in_place: bool = True,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> LibraryModel:
        """Add a GGUF: referenced where it lies, or copied into the library folder.

        The header is checked first (a damaged file is refused before any copying). The
        sha256 is computed while copying; a file used in place is read once to hash it
        unless `hash_in_place` is False (then `compute_sha256` can do it later).
        """
        path = path.expanduser().resolve()
        report = inspect_model(path)
        for existing in self.models():
            if path in existing.paths:
                raise ModelAlreadyInLibraryError(path, existing.name)
        sources = report.paths
        if copy:
            self._models_dir.mkdir(parents=True, exist_ok=True)
            targets = _free_names(self._models_dir, sources)
            digests = copy_files_hashed(list(zip(sources, targets, strict=True)), progress, cancel)
            stored = targets
        else:
            digests = sha256_files(sources, progress, cancel) if hash_in_place else []
            stored = sources
        try:
            return self._insert(
                report, stored, name, IMPORT_SOURCE, owned=copy, sha256=",".join(digests) or None
            )
        except BaseException:
            if copy:
                for target in stored:
                    target.unlink(missing_ok=True)
            raise

    def _insert(
        self,
        report: ModelReport,
        paths: list[Path],
        name: str | None,
        source: str,
        *,
        owned: bool,
        sha256: str | None,
        license: str | None = None,
        origin: str | None = None,
        pending: bool = False,
    ) -> LibraryModel:
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO models (name, path, source, size_bytes, license, added_at, owned, shard_count,"
                " architecture, parameters, file_type, context_length, sha256, origin, pending)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name or report.name or _display_name(paths[0]),
                    str(paths[0]),
                    source,
                    sum(p.stat().st_size for p in report.paths),
                    license or report.license,
                    time.time(),
                    int(owned),
                    len(paths),
                    report.architecture,
                    report.parameters,
                    report.file_type,
                    report.context_length,
                    sha256,
                    origin,
                    int(pending),
                ),
            )
        assert cur.lastrowid is not None
        model = self._row(cur.lastrowid)
        assert model is not None
        if not pending:
            log.info(
                "added %s (%s, %s) at %s", model.name, source, "owned" if owned else "in place", model.path
            )
        return model

    def _row(self, model_id: int) -> LibraryModel | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return None if row is None else _model_from_row(row)

    def add_owned(
        self, path: Path, *, source: str, origin: str, sha256: str, license_id: str | None = None
    ) -> LibraryModel:
        """Register a verified file that was written into the library folder (a converted model)."""
        report = inspect_model(path)
        return self._insert(
            report, [path], None, source, owned=True, sha256=sha256, license=license_id, origin=origin
        )

    def add_pending(
        self,
        target: Path,
        partial: Path,
        report: ModelReport,
        *,
        source: str,
        origin: str,
        sha256: str,
        license_id: str | None = None,
    ) -> LibraryModel:
        """Record a verified download that is about to be renamed from `partial` to `target`.

        Not listed until `confirm_pending`. If the process dies before that, the next start
        lists it when `target` is there, or drops the entry when the rename never happened
        (the complete partial is still there, so the next pull finishes without downloading).
        """
        if report.paths != [partial]:
            raise ValueError("the report must be of the partial file being moved")
        return self._insert(
            report,
            [target],
            None,
            source,
            owned=True,
            sha256=sha256,
            license=license_id,
            origin=origin,
            pending=True,
        )

    def confirm_pending(self, pending: LibraryModel) -> LibraryModel:
        """The file is in place: list the entry."""
        with self._lock, self._conn:
            self._conn.execute("UPDATE models SET pending = 0 WHERE id = ?", (pending.id,))
        model = self.get(pending.id)
        if model is None:  # another process dropped it as stale in the moment between: record it again
            return self.add_owned(
                pending.path,
                source=pending.source,
                origin=pending.origin or "",
                sha256=pending.sha256 or "",
                license_id=pending.license,
            )
        log.info("added %s (%s) at %s", model.name, model.source, model.path)
        return model

    def drop_pending(self, pending: LibraryModel) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM models WHERE id = ? AND pending = 1", (pending.id,))

    def is_pending_target(self, path: Path) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM models WHERE path = ? AND pending = 1", (str(path),)
            ).fetchone()
        return row is not None

    def _recover_pending(self) -> None:
        """Finish what a kill interrupted between a download's library entry and its rename."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM models WHERE pending = 1").fetchall()
        for row in rows:
            model = _model_from_row(row)
            with self._lock, self._conn:
                if model.path.is_file() and model.path.stat().st_size == model.size_bytes:
                    self._conn.execute("UPDATE models SET pending = 0 WHERE id = ?", (model.id,))
                    log.info("recovered %s: its download finished before the app stopped", model.name)
                else:
                    self._conn.execute("DELETE FROM models WHERE id = ?", (model.id,))
                    log.info("dropped the unfinished entry of %s; its partial file resumes", model.name)

    def ensure_starter(self) -> LibraryModel | None:
        """Register the bundled starter model on first run; follow it if its package moved.

        Returns None when the starter package is not installed (the app still runs).
        """
        try:
            path = starter_model_path().resolve()
        except StarterModelMissingError:
            log.warning("starter model package is not installed")
            return None
        with self._lock:
            row = self._conn.execute("SELECT * FROM models WHERE source = ?", (STARTER_SOURCE,)).fetchone()
        if row is not None and Path(row["path"]) == path and row["parameters"] is not None:
            return _model_from_row(row)
        if row is not None:  # moved (a new virtualenv) or registered before headers were recorded
            with self._lock, self._conn:
                self._conn.execute("DELETE FROM models WHERE id = ?", (row["id"],))
        return self._insert(
            inspect_model(path),
            [path],
            STARTER_NAME,
            STARTER_SOURCE,
            owned=False,
            sha256=None,
            license=STARTER_LICENSE,
        )

    def record_sha256(self, model_id: int, digests: list[str]) -> None:
        with self._lock, self._conn:
            self._conn.execute("UPDATE models SET sha256 = ? WHERE id = ?", (",".join(digests), model_id))

    def compute_sha256(
        self, model_id: int, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> str:
        """Hash a model's files once (slow for big models: call off the GUI thread) and store it."""
        model = self.get(model_id)
        if model is None:
            raise ModelNotInLibraryError(str(model_id))
        digests = sha256_files(model.paths, progress, cancel)
        self.record_sha256(model_id, digests)
        return ",".join(digests)

    # -- removing --------------------------------------------------------------------------------

    def remove(self, model_id: int, *, delete_files: bool = False) -> int:
        """Take a model out of the library; returns the bytes freed on disk.

        Owned files (in the library folder) are always deleted; files referenced in place
        only with `delete_files`. Refused for the starter model and for a loaded model.
        """
        model = self.get(model_id)
        if model is None:
            raise ModelNotInLibraryError(str(model_id))
        if model.source == STARTER_SOURCE:
            raise StarterModelRemovalError()
        if any(self.usage.is_in_use(p) for p in model.paths):
            raise ModelInUseError(model.name)
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
        freed = 0
        if model.owned or delete_files:
            for path in model.paths:
                try:
                    size = path.stat().st_size
                    path.unlink()
                    freed += size
                except FileNotFoundError:
                    pass
        log.info("removed %s; freed %d bytes", model.name, freed)
        return freed


def _display_name(path: Path) -> str:
    name = path.name.removesuffix(".gguf")
    return name.split("-00001-of-")[0]


def _free_names(folder: Path, sources: list[Path]) -> list[Path]:
    """Targets in `folder` for `sources`; `name-copy2.gguf` and so on when taken (parts stay together)."""
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-copy{attempt}"
        targets = [folder / _with_suffix(p.name, suffix) for p in sources]
        if not any(t.exists() or t.with_name(t.name + ".part").exists() for t in targets):
            return targets
    raise FileExistsError(f"no free file name in {folder} for {sources[0].name}")


def _with_suffix(name: str, suffix: str) -> str:
    match = SHARD_NAME.match(name)
    if match:
        return f"{match['stem']}{suffix}-{match['index']}-of-{match['count']}.gguf"
    return f"{name.removesuffix('.gguf')}{suffix}.gguf"


def _model_from_row(r: sqlite3.Row) -> LibraryModel:
    return LibraryModel(
        id=r["id"],
        name=r["name"],
        path=Path(r["path"]),
        source=r["source"],
        size_bytes=r["size_bytes"],
        license=r["license"],
        added_at=r["added_at"],
        owned=bool(r["owned"]),
        shard_count=r["shard_count"],
        architecture=r["architecture"],
        parameters=r["parameters"],
        file_type=r["file_type"],
        context_length=r["context_length"],
        sha256=r["sha256"],
        origin=r["origin"],
    )

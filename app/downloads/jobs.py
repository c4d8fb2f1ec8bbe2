"""Download jobs kept in the library database, so a paused or interrupted download resumes after a restart."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.downloads.hub import RemoteFile


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    FAILED = "failed"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Still to finish (shown in the downloads panel after a restart)."""
        return self in (JobState.QUEUED, JobState.RUNNING, JobState.PAUSED, JobState.FAILED)


@dataclass(frozen=True)
class DownloadJob:
    id: int
    remote: RemoteFile
    license_id: str | None
    state: JobState
    error: str | None
    model_id: int | None


class DownloadJobs:
    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(db_path, timeout=10.0, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS download_jobs (id INTEGER PRIMARY KEY, repo_id TEXT NOT NULL,"
                " filename TEXT NOT NULL, revision TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT,"
                " license TEXT, state TEXT NOT NULL, error TEXT, model_id INTEGER, created_at REAL NOT NULL,"
                " updated_at REAL NOT NULL)"
            )
            # A job "running" when the app stopped was interrupted: it resumes from its partial file.
            self._conn.execute("UPDATE download_jobs SET state = 'paused' WHERE state = 'running'")

    def close(self) -> None:
        self._conn.close()

    def add(self, remote: RemoteFile, license_id: str | None) -> DownloadJob:
        now = time.time()
        with self._lock, self._conn:
            cur = self._conn.execute(
                "INSERT INTO download_jobs (repo_id, filename, revision, size, sha256, license, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    remote.repo_id,
                    remote.filename,
                    remote.revision,
                    remote.size,
                    remote.sha256,
                    license_id,
                    str(JobState.QUEUED),
                    now,
                    now,
                ),
            )
        assert cur.lastrowid is not None
        job = self.get(cur.lastrowid)
        assert job is not None
        return job

    def get(self, job_id: int) -> DownloadJob | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM download_jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def open_jobs(self) -> list[DownloadJob]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM download_jobs ORDER BY id").fetchall()
        return [job for job in map(_job, rows) if job.state.is_open]

    def set_state(
        self, job_id: int, state: JobState, *, error: str | None = None, model_id: int | None = None
    ) -> None:
        with self._lock, self._conn:
            self._conn.execute(
                "UPDATE download_jobs SET state = ?, error = ?, model_id = COALESCE(?, model_id),"
                " updated_at = ? WHERE id = ?",
                (str(state), error, model_id, time.time(), job_id),
            )


def _job(r: sqlite3.Row) -> DownloadJob:
    remote = RemoteFile(r["repo_id"], r["filename"], r["revision"], r["size"], r["sha256"])
    return DownloadJob(r["id"], remote, r["license"], JobState(r["state"]), r["error"], r["model_id"])

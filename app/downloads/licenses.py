"""Model licenses the user must accept in the app before a first download, and the record of it."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.resources import RESOURCES_DIR

LICENSES_DIR = RESOURCES_DIR / "licenses"


@dataclass(frozen=True)
class License:
    id: str  # as the Hub's `license:` tag says it: "llama3.2"
    title: str
    version: str  # what the acceptance is for; a new version asks again
    file: str  # under resources/licenses/

    def text(self) -> str:
        return (LICENSES_DIR / self.file).read_text(encoding="utf-8")


#: Licenses that need an explicit "I accept" (Meta's community licenses); permissive ones do not.
NEEDS_ACCEPTANCE = {
    lic.id: lic
    for lic in (
        License("llama3.1", "Llama 3.1 Community License Agreement", "2024-07-23", "llama3.1.txt"),
        License("llama3.2", "Llama 3.2 Community License Agreement", "2024-09-25", "llama3.2.txt"),
        License("llama3.3", "Llama 3.3 Community License Agreement", "2024-12-06", "llama3.3.md"),
    )
}


@dataclass(frozen=True)
class Acceptance:
    license_id: str
    version: str
    accepted_at: float


class LicenseBook:
    """Which license versions the user accepted, and when (in the library database)."""

    def __init__(self, db_path: Path) -> None:
        self._conn = sqlite3.connect(db_path, timeout=10.0, check_same_thread=False)
        with self._conn:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS license_acceptances ("
                " license_id TEXT NOT NULL, version TEXT NOT NULL, accepted_at REAL NOT NULL,"
                " PRIMARY KEY (license_id, version))"
            )

    def close(self) -> None:
        self._conn.close()

    def needs_acceptance(self, license_id: str | None) -> License | None:
        """The license to show before downloading; None if already accepted or none is needed."""
        lic = NEEDS_ACCEPTANCE.get((license_id or "").lower())
        if lic is None or self.acceptance(lic) is not None:
            return None
        return lic

    def acceptance(self, lic: License) -> Acceptance | None:
        row = self._conn.execute(
            "SELECT accepted_at FROM license_acceptances WHERE license_id = ? AND version = ?",
            (lic.id, lic.version),
        ).fetchone()
        return None if row is None else Acceptance(lic.id, lic.version, row[0])

    def accept(self, lic: License) -> Acceptance:
        now = time.time()
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO license_acceptances VALUES (?, ?, ?)", (lic.id, lic.version, now)
            )
        return Acceptance(lic.id, lic.version, now)

"""Where the files shipped beside the code are: the catalog, license texts, icons."""

from __future__ import annotations

from pathlib import Path

#: `resources/` at the top of the source tree (and of the installed bundle, which keeps that layout).
RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"

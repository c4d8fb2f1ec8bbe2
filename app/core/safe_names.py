"""Checks on values a server sends before any of them names a file or a folder.

A listing, a redirect or a checklist is data from the network: a hash becomes a partial
file's name, a file name becomes a library file. Each is validated here, once, in one way.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Characters no file name we create may hold: separators of any platform, NUL and control characters.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]')
_MAX_NAME_BYTES = 200


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_commit_id(value: object) -> bool:
    return isinstance(value, str) and _COMMIT.fullmatch(value) is not None


def is_safe_repo_path(name: object) -> bool:
    """A relative path inside a repository: POSIX separators, no `..`, no absolute or drive prefix."""
    if not isinstance(name, str) or not name or len(name) > 1000:
        return False
    if "\\" in name or name.startswith("/") or re.search(r"[\x00-\x1f\x7f]", name):
        return False
    parts = PurePosixPath(name).parts
    return all(part not in ("", ".", "..") and ":" not in part for part in parts)


def safe_basename(name: str, fallback: str = "download") -> str:
    """`name`'s last component, reduced to something every file system accepts as one plain name."""
    base = re.split(r"[\\/]", name)[-1]
    base = _FORBIDDEN.sub("_", base).strip(" .")
    while len(base.encode()) > _MAX_NAME_BYTES:
        base = base[1:]
    return base or fallback


def child_path(folder: Path, name: str) -> Path:
    """`folder / name`, refused unless the result really lies inside `folder`."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()) or target == folder.resolve():
        raise ValueError(f"{name!r} does not name a file inside {folder}")
    return target

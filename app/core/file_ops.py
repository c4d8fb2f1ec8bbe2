"""Copying and hashing big files with progress and cancel, reading each byte once."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from app.core.errors import OperationCancelledError

CHUNK_BYTES = 8 << 20
#: progress(done_bytes, total_bytes)
Progress = Callable[[int, int], None]


def sha256_files(
    paths: Sequence[Path], progress: Progress | None = None, cancel: threading.Event | None = None
) -> list[str]:
    """The sha256 of each file, reporting progress over all of them."""
    total = sum(p.stat().st_size for p in paths)
    done = 0
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                if cancel is not None and cancel.is_set():
                    raise OperationCancelledError("hashing")
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        digests.append(digest.hexdigest())
    return digests


def copy_files_hashed(
    pairs: Sequence[tuple[Path, Path]],
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Copy each (source, target), hashing the bytes on the way; returns the sha256 of each file.

    Targets appear only complete: each is written as `*.part` and renamed at the end. On
    cancel or error no target or partial file is left behind.
    """
    total = sum(src.stat().st_size for src, _ in pairs)
    done = 0
    digests: list[str] = []
    finished: list[Path] = []
    try:
        for source, target in pairs:
            part = target.with_name(target.name + ".part")
            digest = hashlib.sha256()
            try:
                with source.open("rb") as src, part.open("wb") as dst:
                    while chunk := src.read(CHUNK_BYTES):
                        if cancel is not None and cancel.is_set():
                            raise OperationCancelledError("copying")
                        digest.update(chunk)
                        dst.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
                    dst.flush()
                    os.fsync(dst.fileno())
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
            finished.append(target)
            digests.append(digest.hexdigest())
    except BaseException:
        for path in finished:
            path.unlink(missing_ok=True)
        raise
    return digests

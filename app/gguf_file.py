"""Cheap checks that a path is a GGUF file, before handing it to llama.cpp (whose errors are vague)."""

from __future__ import annotations

import struct
from pathlib import Path

from app.errors import ModelFileNotFoundError, NotAGGUFError

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)


def check_gguf(path: Path) -> None:
    """Raise a user-facing error unless `path` is a readable GGUF file of a version llama.cpp reads."""
    if not path.exists():
        raise ModelFileNotFoundError(path)
    if path.is_dir():
        raise NotAGGUFError(path, "it is a folder")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise NotAGGUFError(path, f"it cannot be read: {exc.strerror or exc}") from exc
    if len(head) < 8:
        raise NotAGGUFError(path, f"the file is only {len(head)} bytes long")
    if head[:4] != GGUF_MAGIC:
        raise NotAGGUFError(path, "it does not start with the GGUF signature")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in SUPPORTED_VERSIONS:
        raise NotAGGUFError(path, f"GGUF version {version} is not supported")

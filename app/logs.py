"""Logging to a rotating file in the data home; the terminal only sees what the user must."""

from __future__ import annotations

import logging
import logging.handlers

from app.data_home import DataHome

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(home: DataHome, *, verbose: bool = False) -> None:
    """Log INFO and up (DEBUG with `verbose`) to `logs/llama-desk.log`; nothing goes to the terminal."""
    handler = logging.handlers.RotatingFileHandler(
        home.logs_dir / "llama-desk.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # llama.cpp prints hundreds of lines per model load; keep them for --verbose only.
    logging.getLogger("llama.cpp").setLevel(logging.DEBUG if verbose else logging.WARNING)

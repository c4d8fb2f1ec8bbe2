"""Logging to a rotating file in the data home; the terminal only sees what the user must."""

from __future__ import annotations

import logging
import logging.handlers
import re

from app.core.data_home import DataHome

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class SignatureRedactor(logging.Filter):
    """Blanks `Signature=…` in log records: httpx2 logs every request's full URL at INFO, and the
    signature is the link's credential (the log file must not hand it to whoever reads it)."""

    _SIGNATURE = re.compile(r"(?i)(signature=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._SIGNATURE.sub(r"\1<redacted>", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def hide_signatures_in_http_logs() -> None:
    """Install the redactor on httpx2's logger, once."""
    http_log = logging.getLogger("httpx2")
    if not any(isinstance(f, SignatureRedactor) for f in http_log.filters):
        http_log.addFilter(SignatureRedactor())


def configure_logging(home: DataHome, *, verbose: bool = False) -> None:
    """Log INFO and up (DEBUG with `verbose`) to `logs/llama-desk.log`; nothing goes to the terminal."""
    handler = logging.handlers.RotatingFileHandler(
        home.logs_dir / "llama-desk.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(SignatureRedactor())  # signed URLs (Meta links, CDN redirects) carry credentials
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # llama.cpp prints hundreds of lines per model load; keep them for --verbose only.
    logging.getLogger("llama.cpp").setLevel(logging.DEBUG if verbose else logging.WARNING)

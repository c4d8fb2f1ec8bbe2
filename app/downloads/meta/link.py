"""The signed download link from Meta's email: repaired, checked, and its expiry read from the Policy.

The link is a CloudFront signed URL for the wildcard path `*`
(`https://download.llamameta.net/*?Policy=…&Signature=…&Key-Pair-Id=…`). A file's URL replaces
the `*` with the file's path and keeps the query exactly as pasted (it holds `%7E` escapes that
the signature covers). The Signature is a credential: it never appears in a log or a repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, unquote, urlsplit

from app.core.errors import MetaLinkError

#: Meta's CDN domains; a link to any host under one of these is accepted.
META_HOSTS = ("llamameta.net",)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Extra hosts to accept, comma-separated: a mirror, or the local test server (like HF_ENDPOINT).
HOSTS_ENV = "LLAMA_DESK_META_HOSTS"


def allowed_hosts() -> tuple[str, ...]:
    """Meta's domains, plus any named in $LLAMA_DESK_META_HOSTS."""
    extra = tuple(h.strip() for h in os.environ.get(HOSTS_ENV, "").split(",") if h.strip())
    return META_HOSTS + extra


_REQUIRED = ("Policy", "Signature", "Key-Pair-Id")
_QUOTES = "<>\"'`"
# CloudFront's URL-safe base64 alphabet for policies and signatures.
_CLOUDFRONT_B64 = str.maketrans("-_~", "+=/")


@dataclass(frozen=True)
class MetaLink:
    """A validated link; `file_url` builds the URL of one file under it."""

    host: str
    expires_at: datetime | None  # None when the Policy names no expiry
    _prefix: str = field(repr=False)  # "https://host/" (with the port, if any)
    _query: str = field(repr=False)  # byte for byte as pasted (after the `&amp;` repair)

    def file_url(self, path: str) -> str:
        return f"{self._prefix}{quote(path.lstrip('/'), safe='/')}?{self._query}"

    def is_expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at

    def describe_expiry(self, now: datetime | None = None) -> str:
        """ "expires in 23 h", "expires in 12 min", "expired 2 h ago", or "" when unknown."""
        if self.expires_at is None:
            return ""
        seconds = (self.expires_at - (now or datetime.now(UTC))).total_seconds()
        text = _duration(abs(seconds))
        return f"expires in {text}" if seconds > 0 else f"expired {text} ago"


def parse_meta_link(text: str, *, allow_hosts: Collection[str] = META_HOSTS) -> MetaLink:
    """Repair what mail clients do to a link, then check it; raises MetaLinkError saying what is wrong.

    `allow_hosts` replaces the allow-list (tests pass "127.0.0.1"); plain http is accepted only
    for loopback hosts.
    """
    link = re.sub(r"\s+", "", text).strip(_QUOTES)
    link = re.sub(r"&(amp;)+", "&", link)  # copied from the HTML mail: `&amp;` makes CloudFront say 403
    if not link:
        raise MetaLinkError("it is empty; paste the whole link from Meta's email")
    parts = urlsplit(link)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise MetaLinkError("it is not a web address; paste the link that starts with https://")
    if not any(host == allowed or host.endswith("." + allowed) for allowed in allow_hosts):
        raise MetaLinkError(f"{host} is not Meta's download server (links point to llamameta.net)")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise MetaLinkError("it does not start with https://; copy the link from the email again")
    if unquote(parts.path) != "/*":  # some mail clients send the `*` as `%2A`
        raise MetaLinkError("it should end in /* before the `?`; copy the link itself, not a file's address")
    params = parse_qs(parts.query, keep_blank_values=True)
    missing = [name for name in _REQUIRED if not params.get(name, [""])[0]]
    if "Key-Pair-Id" in missing:
        raise MetaLinkError("the link is cut off (it lacks Key-Pair-Id); copy the whole link from the email")
    if missing:
        raise MetaLinkError(f"it lacks {' and '.join(missing)}; copy the whole link from the email")
    return MetaLink(
        host=host,
        expires_at=policy_expiry(params["Policy"][0]),
        _prefix=f"{parts.scheme}://{parts.netloc}/",
        _query=parts.query,
    )


def policy_expiry(policy: str) -> datetime | None:
    """`Statement[0].Condition.DateLessThan."AWS:EpochTime"` of a CloudFront policy, as UTC."""
    encoded = unquote(policy).translate(_CLOUDFRONT_B64)
    try:
        document = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
        condition = document["Statement"][0].get("Condition", {})
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MetaLinkError("its Policy is damaged; copy the whole link from the email again") from exc
    epoch = condition.get("DateLessThan", {}).get("AWS:EpochTime") if isinstance(condition, dict) else None
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return None
    return datetime.fromtimestamp(epoch, UTC)


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        return f"{seconds // 3600:.0f} h"
    return f"{max(1, round(seconds / 60))} min"

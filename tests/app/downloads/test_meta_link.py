"""Pasted Meta links: what mail clients do to them is repaired, what cannot work is named, expiry is read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.core.errors import MetaLinkError
from app.downloads.meta.link import parse_meta_link, policy_expiry
from tests.support.fake_meta_cdn import cloudfront_b64, make_policy, sign

EXPIRES = 1_767_225_600  # 2026-01-01 00:00 UTC


def meta_link(host: str = "download6.llamameta.net", expires: int = EXPIRES) -> tuple[str, str]:
    """A link shaped like the email's, and its query; `~` is sent as `%7E` as in real links (the
    signature gets one for sure: the parser does not check signatures, the CDN does)."""
    policy = make_policy(f"https://{host}/*", expires)
    query = (
        f"Policy={policy.replace('~', '%7E')}&Signature={sign(policy).replace('~', '%7E')}%7E"
        "&Key-Pair-Id=K15QRJLYKIFSLZ&Download-Request-ID=1234567890"
    )
    return f"https://{host}/*?{query}", query


def test_expiry_is_decoded_from_a_cloudfront_policy() -> None:
    url, _query = meta_link()
    link = parse_meta_link(url)
    assert link.host == "download6.llamameta.net"
    assert link.expires_at == datetime(2026, 1, 1, tzinfo=UTC)
    before = datetime(2025, 12, 31, 1, 0, tzinfo=UTC)
    assert not link.is_expired(before) and link.describe_expiry(before) == "expires in 23 h"
    assert link.is_expired(link.expires_at) and link.describe_expiry(before + timedelta(days=1)) == (
        "expired 1 h ago"
    )
    assert link.describe_expiry(datetime(2025, 12, 31, 23, 48, tzinfo=UTC)) == "expires in 12 min"


def test_file_urls_keep_the_query_byte_for_byte() -> None:
    url, query = meta_link()
    assert "%7E" in query
    link = parse_meta_link(url)
    assert link.file_url("llama-2-7b/consolidated.00.pth") == (
        f"https://download6.llamameta.net/llama-2-7b/consolidated.00.pth?{query}"
    )
    assert link.file_url("/tokenizer.model").startswith("https://download6.llamameta.net/tokenizer.model?")


def test_what_mail_clients_do_is_repaired() -> None:
    url, query = meta_link("llama3-1.llamameta.net")
    mangled = f'  <"{url.replace("&", "&amp;")[:60]}\n  {url.replace("&", "&amp;")[60:]}">\n'
    link = parse_meta_link(mangled)
    assert link.file_url("x/params.json").endswith(f"/x/params.json?{query}")
    assert link.expires_at is not None
    escaped = parse_meta_link(url.replace("/*?", "/%2A?"))
    assert escaped.file_url("a") == f"https://llama3-1.llamameta.net/a?{query}"


def test_the_signature_never_shows_in_a_repr() -> None:
    url, _query = meta_link()
    link = parse_meta_link(url)
    signature = url.split("Signature=")[1].split("&")[0]
    assert signature not in repr(link) and signature not in str(link)
    assert "download6.llamameta.net" in repr(link)


def test_a_cut_off_link_says_so() -> None:
    url, _query = meta_link()
    with pytest.raises(MetaLinkError, match=r"cut off.*copy the whole link"):
        parse_meta_link(url.split("&Key-Pair-Id")[0])
    with pytest.raises(MetaLinkError, match="cut off"):
        parse_meta_link(url.split("&Key-Pair-Id")[0] + "&Key-Pair-Id=")
    with pytest.raises(MetaLinkError, match="lacks Signature"):
        parse_meta_link(url.replace("&Signature=", "&Sig="))
    with pytest.raises(MetaLinkError, match="lacks Policy and Signature"):
        parse_meta_link("https://download.llamameta.net/*?Key-Pair-Id=K1")


@pytest.mark.parametrize(
    "host",
    ["download.llamameta.net.example.com", "notllamameta.net", "llamameta.net@evil.example", "example.com"],
)
def test_only_meta_hosts_are_accepted(host: str) -> None:
    url, _query = meta_link("download.llamameta.net")
    with pytest.raises(MetaLinkError, match="is not Meta's download server"):
        parse_meta_link(url.replace("download.llamameta.net", host, 1))


def test_other_shapes_are_refused_with_a_reason() -> None:
    url, _query = meta_link()
    with pytest.raises(MetaLinkError, match="empty"):
        parse_meta_link("  \n ")
    with pytest.raises(MetaLinkError, match="https://"):
        parse_meta_link(url.replace("https://", "http://"))
    with pytest.raises(MetaLinkError, match="should end in /"):
        parse_meta_link(url.replace("/*?", "/llama-2-7b/params.json?"))
    with pytest.raises(MetaLinkError, match="Policy is damaged"):
        parse_meta_link(url.replace("Policy=", "Policy=xx%7E"))
    with pytest.raises(MetaLinkError, match="not a web address"):
        parse_meta_link("download.llamameta.net/*?Policy=a&Signature=b&Key-Pair-Id=c")


def test_a_local_server_needs_an_explicit_allow_list() -> None:
    url, _query = meta_link()
    local = url.replace("https://download6.llamameta.net", "http://127.0.0.1:8123")
    with pytest.raises(MetaLinkError, match=r"127\.0\.0\.1 is not Meta's download server"):
        parse_meta_link(local)
    link = parse_meta_link(local, allow_hosts=("127.0.0.1",))
    assert link.file_url("a/b").startswith("http://127.0.0.1:8123/a/b?Policy=")


def test_a_policy_without_an_expiry_is_never_expired() -> None:
    policy = cloudfront_b64(json.dumps({"Statement": [{"Resource": "https://x/*"}]}).encode())
    assert policy_expiry(policy) is None
    url, _query = meta_link()
    link = parse_meta_link(url.replace(url.split("Policy=")[1].split("&")[0], policy))
    assert link.expires_at is None and not link.is_expired() and link.describe_expiry() == ""

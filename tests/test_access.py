"""The bind and token rules every hhrt endpoint shares (hhrnet_rt.core.access)."""

from __future__ import annotations

import pytest

from hhrnet_rt.core.access import (
    DEFAULT_HOST,
    bearer_matches,
    cookie_token,
    is_loopback,
    listen_address,
    query_token,
    request_authorized,
    token_cookie,
)
from hhrnet_rt.core.errors import InputError


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]", DEFAULT_HOST]
)
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "", "localhost.evil"]
)
def test_everything_else_is_reachable_from_elsewhere(host):
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "ok"),
    [("Bearer s3cret", True), ("bearer s3cret", True), ("Bearer  s3cret ", True), ("Bearer s3cre", False),
     ("Bearer s3cretX", False), ("Basic s3cret", False), ("s3cret", False), ("", False), (None, False)],
)  # fmt: skip
def test_bearer_token(header, ok):
    assert bearer_matches(header, "s3cret") is ok


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8080", (DEFAULT_HOST, 8080)), ("0", (DEFAULT_HOST, 0)), ("0.0.0.0:80", ("0.0.0.0", 80)),
     ("[::1]:8080", ("::1", 8080)), ("localhost:9", ("localhost", 9)), (" 8080 ", (DEFAULT_HOST, 8080))],
)  # fmt: skip
def test_listen_address(text, expected):
    assert listen_address(text) == expected


@pytest.mark.parametrize("text", ["", "x", "80a", "70000", ":80", "host:", "::1:80", "-1", "1.2.3.4:port"])
def test_listen_address_refuses_what_is_not_host_port(text):
    with pytest.raises(InputError, match=r"\[HOST:\]PORT"):
        listen_address(text)


@pytest.mark.parametrize("token", ["s3cret", "with space", 'semi;colon"quote', "ünï"])
def test_the_token_cookie_carries_any_token_back_unchanged(token):
    cookie = token_cookie(token)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    sent_back = cookie.split("; ")[0]  # what a browser sends: name=value only
    assert cookie_token(f"other=1; {sent_back}") == token
    assert request_authorized(None, sent_back, "", token)
    assert not request_authorized(None, sent_back, "", token + "x")


def test_a_token_in_the_query_counts_and_a_wrong_one_does_not():
    assert query_token("a=1&token=s%20t") == "s t"
    assert request_authorized(None, None, "token=s3cret", "s3cret")
    assert not request_authorized(None, None, "token=s3cre", "s3cret")
    assert not request_authorized(None, "hhrt_token=nope", "", "s3cret")

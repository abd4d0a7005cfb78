"""The bind and token rules every hhrt endpoint shares (hhrnet_rt.core.access)."""

from __future__ import annotations

import pytest

from hhrnet_rt.core.access import DEFAULT_HOST, bearer_matches, is_loopback


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

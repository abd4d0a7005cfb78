"""Who may reach what hhrt serves: the one home of the bind and token rules.

``hhrt serve`` and its client, and every other endpoint hhrt opens (metrics, a live view), follow the same
rules: listen on loopback unless told otherwise; a token (``--token``, or the ``HHRT_TOKEN`` environment
variable, which stays out of ``ps``) guards what a non-loopback address exposes; a request's token is
compared in constant time.

Example:
    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
    (True, False)
    >>> bearer_matches("Bearer s3cret", "s3cret"), bearer_matches("Bearer nope", "s3cret")
    (True, False)
"""

from __future__ import annotations

import hmac
import ipaddress

#: The environment variable a token is read from (the CLI's ``--token`` defaults to it).
TOKEN_ENV = "HHRT_TOKEN"
#: Where a server listens unless told otherwise.
DEFAULT_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """``host`` is an address (or ``localhost``) only this machine can reach."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve anywhere
        return False


def bearer_matches(authorization: str | None, token: str) -> bool:
    """An ``Authorization: Bearer <token>`` header value carries ``token``; compared in constant time
    (no timing hint about how many leading characters were right)."""
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())

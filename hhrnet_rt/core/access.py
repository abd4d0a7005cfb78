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
import os

from hhrnet_rt.core.errors import InputError, option

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


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen on an address other machines can reach without a token: a warning scrolls away,
    and the server would run any client's images on this machine's GPU (and show its model files).

    Raises:
        InputError: ``host`` is not loopback and ``token`` is empty.
    """
    if not token and not is_loopback(host):
        raise InputError(
            f"refusing to listen on {host} without a token: anyone who can reach it could use the server. "
            f"Set {TOKEN_ENV} (kept out of `ps`, unlike {option('token')}) and give it to the clients, or listen on "
            f"{DEFAULT_HOST}"
        )


def bearer_matches(authorization: str | None, token: str) -> bool:
    """An ``Authorization: Bearer <token>`` header value carries ``token``; compared in constant time
    (no timing hint about how many leading characters were right)."""
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def token_from_env() -> str | None:
    """The token in :data:`TOKEN_ENV`, or ``None`` when it is unset or empty (clients and servers alike)."""
    return os.environ.get(TOKEN_ENV) or None

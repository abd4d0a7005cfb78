"""Who may reach what hhrt serves: the one home of the bind and token rules.

``hhrt serve`` and its client, and every other endpoint hhrt opens (metrics, a live view), follow the same
rules: listen on loopback unless told otherwise; a token (``--token``, or the ``HHRT_TOKEN`` environment
variable, which stays out of ``ps``) guards what a non-loopback address exposes; a request's token is
compared in constant time. A browser cannot send an ``Authorization`` header with a page load or an
``<img>``, so a page (the live view) takes the token once as ``?token=`` and keeps it in a cookie
(:data:`TOKEN_COOKIE`); both are compared here, in constant time like the header.

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
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from hhrnet_rt.core.errors import InputError, option

#: The environment variable a token is read from (the CLI's ``--token`` defaults to it).
TOKEN_ENV = "HHRT_TOKEN"
#: The cookie a page keeps the token in once it was given as ``?token=`` (HttpOnly, SameSite=Strict).
TOKEN_COOKIE = "hhrt_token"
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


def listen_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` -> ``(host, port)``: a bare port listens on :data:`DEFAULT_HOST`; an IPv6 host is
    written in brackets (``[::1]:8080``); port 0 picks a free one.

    Raises:
        InputError: not ``[HOST:]PORT``, or the port is not 0-65535.
    """
    host, colon, port = text.strip().rpartition(":")
    host = host.strip("[]") if colon else DEFAULT_HOST
    if (
        not port.isdigit()
        or int(port) > 65535
        or not host
        or (":" in host and not text.strip().startswith("["))
    ):
        raise InputError(
            f"{text!r} is not [HOST:]PORT: give a port (8080: this machine only) or HOST:PORT "
            "(0.0.0.0:8080: every network, with a token; [::1]:8080 for IPv6)"
        )
    return host, int(port)


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
    return scheme.lower() == "bearer" and token_matches(value.strip(), token)


def token_matches(given: str | None, token: str) -> bool:
    """``given`` is ``token``, compared in constant time (``None``: no token was given)."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def query_token(query: str) -> str | None:
    """The ``token`` parameter of a URL's query string (``None``: there is none)."""
    values = parse_qs(query, keep_blank_values=True).get("token")
    return values[-1] if values else None


def cookie_token(cookie_header: str | None) -> str | None:
    """The token a browser keeps in :data:`TOKEN_COOKIE`, from a ``Cookie`` header (``None``: none, or a
    header that does not parse)."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(cookie_header or "")
    except CookieError:
        return None
    morsel = cookies.get(TOKEN_COOKIE)
    return None if morsel is None else morsel.value


def token_cookie(token: str) -> str:
    """The ``Set-Cookie`` value that keeps ``token`` in a browser for this server only: sent back to this
    host alone (``SameSite=Strict``), never readable by a page's scripts (``HttpOnly``), quoted as needed."""
    cookies: SimpleCookie = SimpleCookie()
    cookies[TOKEN_COOKIE] = token
    morsel = cookies[TOKEN_COOKIE]
    morsel["path"], morsel["httponly"], morsel["samesite"] = "/", True, "Strict"
    return morsel.OutputString()


def request_authorized(authorization: str | None, cookie: str | None, query: str, token: str) -> bool:
    """A request carries ``token``: in its ``Authorization`` header (programs), its ``Cookie`` header or
    its query string's ``token=`` (browsers)."""
    return (
        bearer_matches(authorization, token)
        or token_matches(cookie_token(cookie), token)
        or token_matches(query_token(query), token)
    )


def token_from_env() -> str | None:
    """The token in :data:`TOKEN_ENV`, or ``None`` when it is unset or empty (clients and servers alike)."""
    return os.environ.get(TOKEN_ENV) or None

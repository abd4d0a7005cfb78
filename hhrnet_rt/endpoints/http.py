"""A small threaded HTTP server for read-only endpoints (``GET path`` -> a reply), on 127.0.0.1 unless told
otherwise, following :mod:`hhrnet_rt.core.access` (a non-loopback address needs a token, compared in
constant time). It runs in a daemon thread for as long as a ``with`` block, so a run that ends or fails
takes it down.

Example:
    >>> import urllib.request
    >>> routes = {"/healthz": lambda: Reply(200, "text/plain", b"ok")}
    >>> with EndpointServer(routes, port=0) as server:
    ...     urllib.request.urlopen(server.url + "/healthz", timeout=5).read()
    b'ok'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hhrnet_rt.core.access import DEFAULT_HOST, bearer_matches, is_loopback
from hhrnet_rt.core.errors import InputError


@dataclass(frozen=True)
class Reply:
    """What an endpoint answers."""

    status: int
    content_type: str
    body: bytes


Route = Callable[[], Reply]


class EndpointServer:
    """Serve ``routes`` (path -> a function returning a :class:`Reply`) at ``http://host:port``.

    Args:
        routes: the paths served (anything else: 404); each function runs in the request's thread.
        host: where to listen; an address other machines can reach needs ``token``.
        port: 0 picks a free one (``port`` then says which).
        token: requests must send ``Authorization: Bearer <token>`` (``None``: no check, loopback only).

    Raises:
        InputError: a non-loopback host without a token, or the port cannot be bound.
    """

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
    ) -> None:
        if not is_loopback(host) and not token:
            raise InputError(
                f"{host} can be reached from other machines: set a token (HHRT_TOKEN) or listen on 127.0.0.1"
            )
        handler = _handler_for(dict(routes), token)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another port"
            ) from None
        self._server.daemon_threads = True
        self.host, self.port = host, int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="hhrt-endpoints", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> EndpointServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler_for(routes: dict[str, Route], token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if token is not None and not bearer_matches(self.headers.get("Authorization"), token):
                return self._send(Reply(401, "text/plain; charset=utf-8", b"a bearer token is needed\n"))
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                return self._send(Reply(404, "text/plain; charset=utf-8", b"not found\n"))
            try:
                reply = route()
            except Exception as exc:  # an endpoint must never take the run down
                reply = Reply(500, "text/plain; charset=utf-8", f"{type(exc).__name__}\n".encode())
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every second: not on the console
            pass

    return Handler

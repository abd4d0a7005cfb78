"""A small threaded HTTP server for read-only endpoints (``GET path`` -> a reply), on 127.0.0.1 unless told
otherwise, following :mod:`hhrnet_rt.core.access` (a non-loopback address needs a token, compared in
constant time). It runs in a daemon thread for as long as a ``with`` block, so a run that ends or fails
takes it down.

A reply may stream (``chunks``: an MJPEG ``multipart/x-mixed-replace`` body, say), each request in a
thread of its own, so a slow client only ever holds its own thread: a send that makes no progress for
:data:`SEND_TIMEOUT_S` ends that client, and closing the server cuts every stream still open. A browser
gives the token once as ``?token=``: the answer is a redirect to the same address without it that sets
the token cookie (so it leaves the address bar and the history), which the page's later requests carry.

Example:
    >>> import urllib.request
    >>> routes = {"/healthz": lambda: Reply(200, "text/plain", b"ok")}
    >>> with EndpointServer(routes, port=0) as server:
    ...     urllib.request.urlopen(server.url + "/healthz", timeout=5).read()
    b'ok'
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hhrnet_rt.core.access import DEFAULT_HOST, check_bind, query_token, request_authorized, token_cookie
from hhrnet_rt.core.errors import InputError

#: A client whose connection takes nothing for this long is dropped (its thread ends).
SEND_TIMEOUT_S = 10.0
#: The kernel's send buffer for a streamed reply: what a stalled client can pile up before its sends block
#: (and the frames meant for it are dropped instead of queued).
STREAM_SEND_BUFFER = 128 * 1024


@dataclass(frozen=True)
class Reply:
    """What an endpoint answers.

    Attributes:
        headers: more response headers (``Content-Disposition``, ...).
        chunks: a streamed body, written piece by piece as it is produced (``body`` is then ignored); the
            iterator is closed when the client goes away or the server closes.
    """

    status: int
    content_type: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    chunks: Iterable[bytes] | None = None


Route = Callable[[], Reply]


class EndpointServer:
    """Serve ``routes`` (path -> a function returning a :class:`Reply`) at ``http://host:port``.

    Args:
        routes: the paths served (anything else: 404); each function runs in the request's thread.
        host: where to listen; an address other machines can reach needs ``token``.
        port: 0 picks a free one (``port`` then says which).
        token: requests must carry it: ``Authorization: Bearer <token>``, or from a browser ``?token=`` once,
            then the cookie that sets (``None``: no check, loopback only).

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
        check_bind(host, token)
        token = token or None  # an empty token guards nothing (and loopback needs none)
        self._streams: set[socket.socket] = set()
        self._streams_lock = threading.Lock()
        handler = _handler_for(dict(routes), token, self)
        try:
            server_class = _ThreadingHTTPServerV6 if ":" in host else ThreadingHTTPServer
            self._server = server_class((host, port), handler)
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
        with self._streams_lock:
            streams = list(self._streams)
        for conn in streams:  # a send blocked on a stalled client returns at once
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _streaming(self, conn: socket.socket, on: bool) -> None:
        with self._streams_lock:
            (self._streams.add if on else self._streams.discard)(conn)


_TEXT = "text/plain; charset=utf-8"


class _ThreadingHTTPServerV6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _handler_for(
    routes: dict[str, Route], token: str | None, server: EndpointServer
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = SEND_TIMEOUT_S  # every read and send of the connection: a stalled client cannot hold on

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            path, _, query = self.path.partition("?")
            if token is not None:
                if not request_authorized(self.headers.get("Authorization"), self.headers.get("Cookie"), query,
                                          token):  # fmt: skip
                    return self._send(
                        Reply(401, _TEXT, b"a token is needed: open the address with ?token=...\n")
                    )
                if query_token(query) is not None:  # a browser: keep it in a cookie, out of the address bar
                    return self._send(_keep_token(path, query, token))
            route = routes.get(path)
            if route is None:
                return self._send(Reply(404, _TEXT, b"not found\n"))
            try:
                reply = route()
            except Exception as exc:  # an endpoint must never take the run down
                reply = Reply(500, _TEXT, f"{type(exc).__name__}\n".encode())
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers:
                self.send_header(name, value)
            if reply.chunks is not None:
                return self._stream(reply.chunks)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _stream(self, chunks: Iterable[bytes]) -> None:
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
            server._streaming(self.connection, True)
            try:
                for chunk in chunks:
                    self.wfile.write(chunk)
            except OSError:  # the client went away, stalled past SEND_TIMEOUT_S, or the server closed
                pass
            finally:
                server._streaming(self.connection, False)
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every second: not on the console
            pass

    return Handler


def _keep_token(path: str, query: str, token: str) -> Reply:
    """A redirect to the same address without ``token=``, setting the cookie that carries it from now on."""
    rest = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"])
    return Reply(
        303,
        _TEXT,
        b"",
        headers=(("Location", path + (f"?{rest}" if rest else "")), ("Set-Cookie", token_cookie(token))),
    )

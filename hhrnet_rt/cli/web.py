"""``--web [HOST:]PORT``: the run live in a browser while it lasts (:class:`~hhrnet_rt.endpoints.LiveView`
behind an :class:`~hhrnet_rt.endpoints.EndpointServer`); the bind and token rules of ``hhrt serve``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from hhrnet_rt.cli.app import console
from hhrnet_rt.core.access import TOKEN_ENV, check_bind, listen_address
from hhrnet_rt.endpoints import EndpointServer, LiveView


def check_web(address: str | None, token: str | None) -> None:
    """Refuse a non-loopback ``--web`` without a token before anything is loaded (``None``: no view)."""
    if address is not None:
        check_bind(listen_address(address)[0], token)


@contextlib.contextmanager
def web_view(address: str | None, token: str | None, names: Sequence[str]) -> Iterator[LiveView | None]:
    """The live view of streams ``names`` at ``address`` (``None``: nothing served); its URL is printed."""
    if address is None:
        yield None
        return
    host, port = listen_address(address)
    view = LiveView(names)
    with EndpointServer(view.routes(), host=host, port=port, token=token) as server:
        ask = f"?token=<your {TOKEN_ENV}>  (asked once, then kept in a cookie)" if token else ""
        console.print(f"live view at {server.url}/{ask}", highlight=False)
        try:
            yield view
        finally:
            view.close()  # the streams being served end before the server does


class Attached:
    """Several things that follow a run (``run_streams(..., monitor=...)`` takes one): each is attached."""

    def __init__(self, *parts: Any) -> None:
        self.parts = [part for part in parts if part is not None]

    def attach(self, runner: Any) -> None:
        for part in self.parts:
            part.attach(runner)

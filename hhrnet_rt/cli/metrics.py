"""``--metrics-port``: the run's Prometheus metrics, ``/healthz`` and ``/readyz`` on 127.0.0.1 while it
lasts (:class:`~hhrnet_rt.video.monitor.RunMonitor` behind an
:class:`~hhrnet_rt.endpoints.EndpointServer`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST

from hhrnet_rt.cli.app import console
from hhrnet_rt.endpoints import EndpointServer, Reply
from hhrnet_rt.video.monitor import RunMonitor

_TEXT = "text/plain; charset=utf-8"


@contextlib.contextmanager
def metrics_endpoint(port: int | None) -> Iterator[RunMonitor | None]:
    """The run's monitor, served at ``http://127.0.0.1:port`` (``None``: no port asked, nothing served)."""
    if port is None:
        yield None
        return
    monitor = RunMonitor()

    def ready() -> Reply:
        ok, why = monitor.ready()
        return Reply(200 if ok else 503, _TEXT, f"{why}\n".encode())

    routes = {
        "/metrics": lambda: Reply(200, CONTENT_TYPE_LATEST, monitor.metrics_text()),
        "/healthz": lambda: Reply(200, _TEXT, b"ok\n"),
        "/readyz": ready,
    }
    with EndpointServer(routes, port=port) as server:
        console.print(f"metrics at {server.url}/metrics (health: /healthz, /readyz)", highlight=False)
        yield monitor

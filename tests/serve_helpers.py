"""``hhrt serve`` of the golden tiny model on the session's Ray cluster: the recipe behind the session
fixture ``tiny_server`` (conftest) that the Ray Serve modules (tests/test_serve.py,
tests/test_serve_interop.py) share, and the constants their requests need.

Everything stays on loopback: the cluster's nodes (the ``ray_cluster`` fixture starts them so) and the HTTP
proxy, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOKEN = "test-token-123"
INPUT_SIZE = 64  # the smallest valid size: fast, and the tiny model still finds people
MAX_BYTES = 2 * 2**20
BODY_TIMEOUT_S = 2.0  # short: the slow-client test waits for it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def estimator_options(golden_dir: Path) -> dict:
    return {"weights": str(golden_dir / "tiny_model.npz"), "input_size": INPUT_SIZE, "backend": "torch",
            "device": "cpu"}  # fmt: skip


@contextmanager
def tiny_server(golden_dir: Path) -> Iterator[str]:
    """Serve the tiny model (token, 2 MB bodies, 2 s upload deadline, batches of up to 8 within 50 ms, one
    torch thread, half a CPU); yields its URL. Needs the ``ray_cluster`` fixture's cluster."""
    import ray
    from ray import serve

    from hhrnet_rt.serve import ServeSettings, start_server, stop_server

    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    try:
        settings = ServeSettings(token=TOKEN, max_bytes=MAX_BYTES, max_batch=8, batch_wait_ms=50,
                                 body_timeout_s=BODY_TIMEOUT_S)  # fmt: skip
        yield start_server(
            estimator_options(golden_dir), settings, port=free_port(), cpus_per_replica=0.5, torch_threads=1
        )
    finally:
        # The application and Serve itself go (their CPUs back to the cluster); the cluster stays.
        stop_server(shutdown_ray=False)
        serve.shutdown()

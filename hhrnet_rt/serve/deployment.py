"""The Ray Serve deployment of ``hhrt serve``: one :class:`~hhrnet_rt.PoseEstimator` per replica.

Imports Ray at the top: only :mod:`hhrnet_rt.serve.server` imports this module, after checking that Ray
is installed (``pip install -e ".[ray]"``).

Batching: concurrent ``POST /v1/poses`` requests that reach one replica within ``batch_wait_ms`` are
decoded to images and given to ``PoseEstimator.predict_batch`` together (``@serve.batch``), which runs
frames of one network-input shape as one backend call. The call runs in a worker thread so the replica's
event loop keeps reading requests (and filling the next batch) meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray import serve
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from hhrnet_rt.runtime.config import EstimatorConfig
from hhrnet_rt.runtime.estimator import PoseEstimator
from hhrnet_rt.serve import api
from hhrnet_rt.serve.handler import Answer, ClientGone, RequestHandler, ServeSettings, health_answer

DEPLOYMENT_NAME = "hhrt-poses"
HEALTH_DEPLOYMENT = "hhrt-health"
# Ray's INFO lines (one per request, every replica event) would bury hhrt's own output; warnings and
# errors still reach the terminal, and everything is in Ray's log folder (/tmp/ray/session_latest/logs).
QUIET_LOGS = {"log_level": "WARNING"}


def _replica_grpc_on_loopback() -> None:
    """Bind each replica's inter-deployment gRPC server to 127.0.0.1 on a node that advertises 127.0.0.1.

    Ray Serve (2.60) binds it to every interface (``[::]:0``) whatever the node's address, and its handlers
    unpickle what they receive. The routers reach it at the node's address, so on hhrt's loopback-only
    local clusters nothing but this machine's loopback may use it (tests/test_serve.py checks every
    listening socket of a run). Nodes with a routable address, joined with ``--address``, keep Ray's binding.
    Applied when this module is imported, which every replica does before its gRPC server starts.
    """
    try:
        from ray.serve._private import replica
    except ImportError:  # another Ray layout: nothing to adjust
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "hhrt_loopback", False):
        return

    def bind(server: Any, address: str) -> int:
        if address.startswith("[::]:") and ray.util.get_node_ip_address() == "127.0.0.1":
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(server, address)

    bind.hhrt_loopback = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = bind


_replica_grpc_on_loopback()


class PoseDeployment:
    """A replica: builds its estimator once, then answers HTTP requests through :class:`RequestHandler`.

    Args:
        config: what the estimator is built from, resolved here: on the replica's node, so
            ``backend="auto"`` finds that node's GPU (``torch_threads`` applies to the replica's process).
        settings: limits, token and batching.
    """

    def __init__(self, config: EstimatorConfig, settings: ServeSettings) -> None:
        # OpenCV's own pixel cap, a second line behind the header check (read at the first decode): a
        # decoder that disagreed with the header walk would still stop here.
        os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(settings.max_pixels))
        self.estimator = PoseEstimator.from_config(config)
        # @serve.batch returns a wrapper with these setters; Ray's type hints declare a plain coroutine.
        self._predict_many.set_max_batch_size(settings.max_batch)  # type: ignore[attr-defined]
        self._predict_many.set_batch_wait_timeout_s(settings.batch_wait_ms / 1000.0)  # type: ignore[attr-defined]
        # Live counts, shown by /v1/info (the handler keeps a reference to this dict).
        self.batches = {"calls": 0, "frames": 0, "largest": 0}
        facts = self.estimator.describe()
        self.handler = RequestHandler(
            settings,
            self._predict_many,
            {"model": facts, "batches": self.batches},
            self.estimator.check_shape,
        )

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)  # replaced in __init__ by the settings
    async def _predict_many(self, images: list[Any]) -> list[Any]:
        self.batches["calls"] += 1
        self.batches["frames"] += len(images)
        self.batches["largest"] = max(self.batches["largest"], len(images))
        return await asyncio.to_thread(self.estimator.predict_batch, images)

    async def answer(self, request: Request) -> Response:
        """Every route of :data:`APP`: the handler decides."""

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in request.stream():
                    yield chunk
            except ClientDisconnect:  # one line in the log, not starlette's traceback
                raise ClientGone from None

        client = request.client.host if request.client is not None else None
        return _response(
            await self.handler.answer(request.method, request.url.path, request.headers, body, client)
        )


# Ray Serve's FastAPI ingress: the documented routes (OpenAPI at /openapi.json, Swagger UI at /docs) all go
# to PoseDeployment.answer. A class of its own, not a decorator: the routes are added from api.ROUTES
# first, and PoseDeployment stays a plain class a test (or another front end) can build in-process (the
# ingress wrapper's __init__ is a coroutine that only Serve runs).
APP = api.new_app()
api.add_routes(APP, PoseDeployment.answer)
PoseIngress = serve.ingress(APP)(PoseDeployment)


class HealthDeployment:
    """``/v1/health`` on its own replica (no model, no CPU reserved): it answers while the model's
    replicas are busy or held by slow uploads."""

    async def __call__(self, request: Request) -> Response:
        return _response(health_answer(request.method, request.url.path))


def _response(answer: Answer) -> Response:
    headers = dict(answer.headers or {})
    return Response(answer.body, status_code=answer.status, media_type="application/json", headers=headers)


def build_health_app() -> Any:
    """The application that answers ``/v1/health`` (routed by the longer prefix, before the poses app)."""
    options: dict[str, Any] = {"name": HEALTH_DEPLOYMENT, "ray_actor_options": {"num_cpus": 0},
                               "logging_config": QUIET_LOGS}  # fmt: skip
    return serve.deployment(HealthDeployment, **options).bind()  # type: ignore[attr-defined]


def build_app(
    config: EstimatorConfig,
    settings: ServeSettings,
    *,
    replicas: int | tuple[int, int] = 1,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
) -> Any:
    """The Serve application: ``replicas`` a fixed count, or ``(min, max)`` for autoscaling on load."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "ray_actor_options": {"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        # Enough requests in a replica at once to fill a batch while the previous one runs.
        "max_ongoing_requests": max(2 * settings.max_batch, 4),
        "logging_config": QUIET_LOGS,
    }
    if isinstance(replicas, tuple):
        low, high = replicas
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": max(settings.max_batch, 2),
        }
    else:
        options["num_replicas"] = replicas
    deployment = serve.deployment(PoseIngress, **options)
    # serve.deployment(cls, **options) returns a Deployment; Ray's overloads type it as a decorator.
    return deployment.bind(config, settings)  # type: ignore[attr-defined]

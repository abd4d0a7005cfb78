"""Start and stop the ``hhrt serve`` application on a Ray cluster (a local one unless an address is given).

Example:
    >>> config = EstimatorConfig(weights="w32_512", backend="auto")                 # doctest: +SKIP
    >>> url = start_server(config, ServeSettings(), port=8000)                     # doctest: +SKIP
    >>> PoseClient(url).predict(cv2.imread("people.jpg"))                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from typing import Any

from hhrnet_rt.cluster.ray_setup import RAY_INSTALL_HINT, check_resources, init_keeping_signals
from hhrnet_rt.cluster.ray_setup import require_ray as import_ray
from hhrnet_rt.core.access import check_bind
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, option
from hhrnet_rt.runtime.config import EstimatorConfig
from hhrnet_rt.serve.handler import ServeSettings
from hhrnet_rt.serve.protocol import HEALTH_PATH

APP_NAME = "hhrt"
HEALTH_APP_NAME = "hhrt-health"


def require_ray(*, loopback: bool = False):
    """``ray`` and ``ray.serve``, or a message that says how to install them.

    ``loopback``: a local cluster started by this process stays on 127.0.0.1
    (:func:`hhrnet_rt.cluster.ray_setup.require_ray`, the one place that knows how).
    """

    ray = import_ray(loopback=loopback)
    try:
        from ray import serve
    except ImportError as exc:
        raise BackendUnavailableError(
            f"hhrt serve needs Ray Serve ({exc.name} is missing): {RAY_INSTALL_HINT}"
        ) from None
    return ray, serve


def start_server(
    config: EstimatorConfig | Mapping[str, Any],
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    replicas: int | tuple[int, int] = 1,
    gpus_per_replica: float | None = None,
    cpus_per_replica: float = 1.0,
    torch_threads: int | None = None,
    num_cpus: int | None = None,
) -> str:
    """Deploy the pose application and wait until every replica has loaded its model; returns the URL.

    Args:
        config: what each replica builds its estimator from (``PoseEstimator.from_config``, resolved on
            the replica's node; paths must exist on every node), or the same as
            :class:`~hhrnet_rt.PoseEstimator` keyword arguments (``weights`` included).
        host, port: where Serve's HTTP proxy listens (127.0.0.1: this machine only).
        address: an existing cluster (``auto``, ``ray://host:10001``); ``None`` starts a local Ray.
        replicas: a count, or ``(min, max)`` to autoscale on load.
        gpus_per_replica: GPUs each replica reserves; ``None``: 1 where the cluster has GPUs, else 0.
            Without a reservation Ray neither places replicas by GPU nor gives each one its own: every
            replica would see all GPUs and use the first.
        torch_threads: sets ``config.torch_threads`` (torch's CPU threads in each replica).
        num_cpus: CPUs of a local Ray started here (``None``: all of them).
    """
    check_bind(host, settings.token)
    if address is None:  # a local cluster: its proxy listens here (a joined cluster's, on its nodes)
        check_port_free(host, port)
    if not isinstance(config, EstimatorConfig):
        config = EstimatorConfig(**config)
    if torch_threads is not None:
        config = dataclasses.replace(config, torch_threads=torch_threads)
    # A local cluster started here binds to 127.0.0.1 (its nodes and ports, not only Serve's HTTP proxy).
    ray, serve = require_ray(loopback=address is None)
    from hhrnet_rt.serve.deployment import build_app, build_health_app

    if isinstance(replicas, tuple) and not 0 <= replicas[0] <= replicas[1] or replicas == 0:
        raise InputError(f"replicas must be at least 1 (or min <= max for autoscaling), got {replicas}")
    if not ray.is_initialized():
        # No dashboard: it is another HTTP server (and port) this command did not ask for.
        kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        init_keeping_signals(ray, address=address, **kwargs)  # SIGTERM: the caller's way out, not Ray's
    from hhrnet_rt.serve.deployment import QUIET_LOGS

    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    check_resources(
        ray, {"CPU": cpus_per_replica, "GPU": gpus_per_replica}, replicas[0] if isinstance(replicas, tuple) else replicas,
        "replica", f"lower {option('replicas')}, {option('cpus_per_replica')} or {option('gpus_per_replica')}, "
        "or add nodes",
    )  # fmt: skip

    serve.start(http_options={"host": host, "port": port}, logging_config=QUIET_LOGS)
    app = build_app(
        config,
        settings,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        cpus_per_replica=cpus_per_replica,
    )
    serve.run(build_health_app(), name=HEALTH_APP_NAME, route_prefix=HEALTH_PATH, blocking=False)
    serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)  # returns when the replicas are up
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another program holds, before Ray starts: Ray's own failure comes as two tracebacks
    from its proxy before the message that matters.

    Raises:
        InputError: the port is taken (or the address is not this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is free
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another program uses that port, or "
                f"the address is not this machine's; choose another {option('port')} (or {option('host')})"
            ) from None


def stop_server(*, shutdown_ray: bool = True) -> None:
    """Remove the application. ``shutdown_ray``: also stop Serve and the local Ray this process started;
    ``False`` (a cluster joined with ``address``): only this application goes, other Serve applications
    on the cluster keep running."""
    ray, serve = require_ray()
    if not ray.is_initialized():
        return
    if shutdown_ray:
        serve.shutdown()
        ray.shutdown()
    else:
        serve.delete(APP_NAME)
        serve.delete(HEALTH_APP_NAME)

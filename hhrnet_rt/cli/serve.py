"""Command ``hhrt serve``: poses over HTTP with Ray Serve (the clients' side: :mod:`hhrnet_rt.cli.remote`).

The server's model options are the ones ``hhrt video`` takes, gathered into one
:class:`~hhrnet_rt.runtime.config.EstimatorConfig`; each replica builds its estimator from it on its own
node (so ``--backend auto`` chooses where the GPU is, not here).
"""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape

from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.estimator import for_workers, model_config
from hhrnet_rt.cli.options import (
    AUTO_BACKEND,
    Backend,
    BatchWaitMs,
    CpusPerReplica,
    DecodeOn,
    DecodeOnOpt,
    Device,
    Engine,
    Fast,
    Flip,
    GpusPerReplica,
    Host,
    InputSize,
    MaxAspect,
    MaxReplicas,
    MaxRequestMb,
    MinReplicas,
    Port,
    PrecisionOpt,
    Refine,
    Replicas,
    ServeAddress,
    ServeMaxBatch,
    ServeToken,
    Threads,
    Weights,
)
from hhrnet_rt.core.access import check_bind
from hhrnet_rt.core.errors import BackendUnavailableError, InputError
from hhrnet_rt.runtime.preprocess import DEFAULT_MAX_ASPECT
from hhrnet_rt.serve import ServeSettings, oip
from hhrnet_rt.serve.server import require_ray, start_server, stop_server


@app.command()
@handle_errors
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    token: ServeToken = None,
    address: ServeAddress = None,
    replicas: Replicas = 1,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    gpus_per_replica: GpusPerReplica = None,
    cpus_per_replica: CpusPerReplica = 1.0,
    max_batch: ServeMaxBatch = 8,
    batch_wait_ms: BatchWaitMs = 10.0,
    max_request_mb: MaxRequestMb = 32.0,
    weights: Weights = None,
    backend: Backend = AUTO_BACKEND,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    max_aspect: MaxAspect = DEFAULT_MAX_ASPECT,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
) -> None:
    """Serve poses over HTTP with Ray Serve: POST an image to /v1/poses, get JSON people back; also the Open
    Inference Protocol v2 (KServe/Triton clients), an upload page at / and the API at /docs (Ctrl-C stops).

    Needs Ray Serve: the ray extra of hhrnet-rt (see docs/serving.md).
    """

    check_bind(host, token)
    # Then the one missing piece most users will meet. A local cluster stays on loopback.
    require_ray(loopback=address is None)
    scale = _scale(replicas, min_replicas, max_replicas)
    model = model_config(weights=weights, backend=backend, engine=engine, precision=precision, device=device,
                         input_size=input_size, flip=flip, fast=fast, refine=refine, decode_on=decode_on,
                         threads=threads, max_aspect=max_aspect)  # fmt: skip
    config = for_workers(model)  # each replica resolves it on its node: --backend auto finds its GPU
    settings = ServeSettings(max_batch=max_batch, batch_wait_ms=batch_wait_ms, token=token or None,
                             max_bytes=int(max_request_mb * 2**20))  # fmt: skip
    try:
        with console.status("starting Ray Serve and loading the model in each replica..."):
            url = _start(start_server, config, settings, host=host, port=port, address=address, replicas=scale,
                         gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica)  # fmt: skip
        console.print(
            f"serving on [bold]{escape(url)}[/]: open it in a browser to try an image; POST images to /v1/poses "
            f"or use the Open Inference Protocol v2 (model {oip.MODEL_NAME!r}); API at {escape(url)}/docs "
            "(Ctrl-C stops)",
            highlight=False,
        )
        while True:
            time.sleep(1.0)
    finally:
        stop_server(shutdown_ray=address is None)


def _scale(replicas: int, low: int | None, high: int | None) -> int | tuple[int, int]:
    """A fixed replica count, or ``(min, max)`` for autoscaling."""
    if (low is None) != (high is None):
        raise InputError("autoscaling needs both --min-replicas and --max-replicas")
    if low is None or high is None:
        return replicas
    if low > high:
        raise InputError(f"--min-replicas {low} is above --max-replicas {high}")
    return low, high


def _start(start_server: Any, config: Any, settings: ServeSettings, **kwargs: Any) -> str:
    """start_server, with Ray's failures (a replica that cannot load its model, a port in use) as one line."""
    try:
        return start_server(config, settings, **kwargs)
    except (InputError, BackendUnavailableError, KeyboardInterrupt):
        raise
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        # Ray's deployment errors end with the replica's exception: the line a user can act on.
        cause = lines[-1].strip() if lines else type(exc).__name__
        raise BackendUnavailableError(f"the server did not start: {cause}") from None

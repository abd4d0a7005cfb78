"""Command ``hhrt serve``: poses over HTTP with Ray Serve (the clients' options: :mod:`hhrnet_rt.cli.remote`).

The server's model options are the ones ``hhrt video`` takes; each replica builds its estimator from
them on its own node (so ``--backend auto`` chooses where the GPU is, not here).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from hhrnet_rt.cli.app import BackendName, DecodeOn, DecodeOnOpt, app, console, handle_errors
from hhrnet_rt.cli.model_options import (
    Backend,
    Device,
    Engine,
    Fast,
    Flip,
    InputSize,
    PrecisionOpt,
    Refine,
    Threads,
    Weights,
    _download_before_spinner,
    _preset_input_size,
    fast_preset,
)
from hhrnet_rt.cli.remote import TOKEN_ENV
from hhrnet_rt.core.errors import BackendUnavailableError, InputError, WeightsError
from hhrnet_rt.core.inputs import check_input_file
from hhrnet_rt.model.download import NAMED_WEIGHTS
from hhrnet_rt.serve import ServeSettings
from hhrnet_rt.serve.server import require_ray, start_server, stop_server

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- the server: hhrt serve ---------------------------------------------------------------------------


def _estimator_options(
    weights, backend, engine, device, input_size, flip, refine, precision, decode_on, fast, threads
) -> dict:
    """PoseEstimator keyword arguments for the replicas, with the CLI's defaults (``make_estimator``'s)."""

    input_size, flip = fast_preset(fast, input_size, flip)
    if engine is not None:
        engine = str(check_input_file(engine, "engine file").resolve())
    else:
        weights = weights or "w32_512"
        input_size = input_size or _preset_input_size(weights)
    if weights is not None and weights != "random" and weights not in NAMED_WEIGHTS:
        # A missing file is found here, not as a replica failing to start.
        weights = str(check_input_file(weights, "weights file", error=WeightsError).resolve())
    _download_before_spinner(weights)  # replicas on this machine then find it in the cache
    return {
        "weights": weights, "engine": engine, "backend": backend.value, "device": device,
        "input_size": input_size, "flip": flip, "refine": refine, "decode_on": decode_on.value,
        "precision": precision.value if precision is not None else None, "onnx_threads": threads,
    }  # fmt: skip


@app.command()
@handle_errors
def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but 127.0.0.1 is reachable from other machines."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_ENV,
            help="Require 'Authorization: Bearer TOKEN' on /v1/poses and /v1/info.",
            show_default=False,
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Join a running Ray cluster (auto, ray://host:10001); default: start a local Ray.",
            show_default=False,
        ),
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, help="Replicas (each holds one model).")] = 1,
    min_replicas: Annotated[
        int | None,
        typer.Option(min=0, help="Autoscale: fewest replicas (with --max-replicas).", show_default=False),
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option(min=1, help="Autoscale: most replicas.", show_default=False)
    ] = None,
    gpus_per_replica: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="GPUs each replica reserves (0.5: two replicas per GPU). Default: 1 where the cluster has "
            "GPUs, else 0.",
            show_default=False,
        ),
    ] = None,
    cpus_per_replica: Annotated[float, typer.Option(min=0.0, help="CPUs each replica reserves.")] = 1.0,
    max_batch: Annotated[
        int, typer.Option(min=1, max=256, help="Most requests one replica runs as one batch.")
    ] = 8,
    batch_wait_ms: Annotated[
        float, typer.Option(min=0.0, max=1000.0, help="How long a batch waits to fill up.")
    ] = 10.0,
    max_request_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest request body accepted (413 above).")
    ] = 32.0,
    weights: Weights = None,
    backend: Backend = BackendName.auto,
    engine: Engine = None,
    precision: PrecisionOpt = None,
    device: Device = None,
    input_size: InputSize = None,
    flip: Flip = None,
    fast: Fast = False,
    refine: Refine = True,
    decode_on: DecodeOnOpt = DecodeOn.auto,
    threads: Threads = None,
) -> None:
    """Serve poses over HTTP with Ray Serve: POST an image to /v1/poses, get JSON people back (Ctrl-C stops).

    Needs Ray Serve: the ray extra of hhrnet-rt (see README, Serving).
    """

    # Before anything else: the one missing piece most users will meet. A local cluster stays on loopback.
    require_ray(loopback=address is None)
    if (min_replicas is None) != (max_replicas is None):
        raise InputError("autoscaling needs both --min-replicas and --max-replicas")
    scale = (min_replicas, max_replicas) if min_replicas is not None else replicas
    if isinstance(scale, tuple) and scale[0] > scale[1]:
        raise InputError(f"--min-replicas {scale[0]} is above --max-replicas {scale[1]}")
    if host not in LOOPBACK and not token:
        console.print(f"[yellow]warning:[/] listening on {escape(host)} without --token: anyone who can reach "
                      "this port can use the server", highlight=False)  # fmt: skip
    options = _estimator_options(
        weights, backend, engine, device, input_size, flip, refine, precision, decode_on, fast, threads
    )
    settings = ServeSettings(max_batch=max_batch, batch_wait_ms=batch_wait_ms, token=token or None,
                             max_bytes=int(max_request_mb * 2**20))  # fmt: skip
    try:
        with console.status("starting Ray Serve and loading the model in each replica..."):
            url = _start(start_server, options, settings, host=host, port=port, address=address, replicas=scale,
                         gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica, torch_threads=threads)  # fmt: skip
        console.print(
            f"serving on [bold]{escape(url)}[/]: POST an image to /v1/poses (Ctrl-C stops)", highlight=False
        )
        while True:
            time.sleep(1.0)
    finally:
        stop_server(shutdown_ray=address is None)


def _start(start_server, options, settings, **kwargs) -> str:
    """start_server, with Ray's failures (a replica that cannot load its model, a port in use) as one line."""
    try:
        return start_server(options, settings, **kwargs)
    except (InputError, BackendUnavailableError, KeyboardInterrupt):
        raise
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        # Ray's deployment errors end with the replica's exception: the line a user can act on.
        cause = lines[-1].strip() if lines else type(exc).__name__
        raise BackendUnavailableError(f"the server did not start: {cause}") from None

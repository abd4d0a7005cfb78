"""``hhrt video`` / ``hhrt webcam`` with ``--server URL``: inference on an ``hhrt serve`` server.

The options are in :mod:`hhrnet_rt.cli.run_options`; the stages themselves are
:class:`hhrnet_rt.serve.RemoteEstimator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.markup import escape

from hhrnet_rt.cli.app import console
from hhrnet_rt.cli.run_options import SendFormat
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.serve import PoseClient, RemoteEstimator

# A server that does not answer before the run is a typo or a server not started: say so soon. During
# the run, requests are retried for PoseClient's longer default (a replica restarting).
START_RETRY_S = 5.0


@dataclass(frozen=True)
class ServerOptions:
    """``--server``, ``--token``, ``--send`` and ``--in-flight``."""

    url: str
    token: str | None = None
    send: SendFormat = SendFormat.jpeg
    in_flight: int = 4


# Options that choose the model: with --server the server's model answers, so they would be ignored.
_MODEL_OPTIONS = ("weights", "engine", "precision", "device", "input_size", "flip", "fast", "threads",
                  "backend", "decode_on", "refine", "max_aspect")  # fmt: skip


def remote_estimator(ctx: typer.Context, server: ServerOptions) -> RemoteEstimator:
    """The pipeline stages on the server (:class:`~hhrnet_rt.serve.RemoteEstimator`), after one ``/v1/info``
    that proves the server answers and accepts the token."""

    given = [name for name in _MODEL_OPTIONS if _typed(ctx, name)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise InputError(f"{flags}: with --server the server's model is used; start `hhrt serve` with them")
    client = PoseClient(server.url, token=server.token, image_format=server.send.value)
    estimator = RemoteEstimator(client, max_in_flight=server.in_flight)
    with console.status(f"asking {server.url} ..."):
        facts = estimator.describe(retry_s=START_RETRY_S)
    shown = ", ".join(
        f"{k} {facts[k]}" for k in ("backend", "device", "precision", "input_size", "flip") if k in facts
    )
    console.print(
        f"server: [bold]{escape(server.url)}[/] ({escape(shown)}), frames sent as {server.send.value}",
        highlight=False,
    )
    return estimator


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the command's option ``name`` was given (on the command line or by its variable)."""
    source = ctx.get_parameter_source(name) if name in ctx.params else None
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

"""The ``--server URL`` options of ``hhrt video`` / ``hhrt webcam``: inference on an ``hhrt serve`` server.

Kept apart from :mod:`hhrnet_rt.cli.media` so the video commands take them with a few lines; the stages
themselves are :class:`hhrnet_rt.serve.RemoteEstimator`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from hhrnet_rt.cli.app import console
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.serve import PoseClient, RemoteEstimator

TOKEN_ENV = "HHRT_TOKEN"
# A server that does not answer before the run is a typo or a server not started: say so soon. During
# the run, requests are retried for PoseClient's longer default (a replica restarting).
START_RETRY_S = 5.0


class SendFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"


ServerUrl = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Run inference on an `hhrt serve` server (http://host:port): capture, drawing and writing "
        "stay here; the model options are the server's.",
        show_default=False,
    ),
]
ClientToken = Annotated[
    str | None,
    typer.Option("--token", envvar=TOKEN_ENV, help="Bearer token for --server.", show_default=False),
]
SendAs = Annotated[
    SendFormat,
    typer.Option(
        "--send",
        case_sensitive=False,
        help="How frames travel to --server: jpeg (small) or png (lossless: the same poses as a local run).",
    ),
]
InFlight = Annotated[
    int, typer.Option("--in-flight", min=1, max=64, help="Requests to --server in flight at once, at most.")
]

# Options that choose the model: with --server the server's model answers, so they would be ignored.
_MODEL_OPTIONS = ("weights", "engine", "precision", "device", "input_size", "flip", "fast", "threads",
                  "backend", "decode_on", "refine")  # fmt: skip


def remote_estimator(ctx: typer.Context, server: str, token: str | None, send: SendFormat, in_flight: int):
    """The pipeline stages on ``server`` (:class:`~hhrnet_rt.serve.RemoteEstimator`), after one ``/v1/info``
    that proves the server answers and accepts the token."""

    given = [name for name in _MODEL_OPTIONS if _typed(ctx, name)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise InputError(f"{flags}: with --server the server's model is used; start `hhrt serve` with them")
    client = PoseClient(server, token=token, image_format=send.value)
    estimator = RemoteEstimator(client, max_in_flight=in_flight)
    with console.status(f"asking {server} ..."):
        facts = estimator.describe(retry_s=START_RETRY_S)
    shown = ", ".join(
        f"{k} {facts[k]}" for k in ("backend", "device", "precision", "input_size", "flip") if k in facts
    )
    console.print(
        f"server: [bold]{escape(server)}[/] ({escape(shown)}), frames sent as {send.value}", highlight=False
    )
    return estimator


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the command's option ``name`` was given (on the command line or by its variable)."""
    source = ctx.get_parameter_source(name) if name in ctx.params else None
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

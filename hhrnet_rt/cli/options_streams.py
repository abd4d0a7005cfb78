"""The options of live inputs and of a run with several inputs: reconnecting, failing alone or all at
once, and the metrics endpoint (``hhrt video``, ``hhrt webcam``)."""

from __future__ import annotations

from typing import Annotated

import typer

from hhrnet_rt.core.access import listen_address
from hhrnet_rt.core.errors import InputError
from hhrnet_rt.video.reconnect import DEFAULT_STALL_TIMEOUT_S

_LIVE = "Live inputs and failures"

#: ``--stall-timeout``'s default (seconds without a frame before a live stream counts as lost).
STALL_TIMEOUT_S = DEFAULT_STALL_TIMEOUT_S

Reconnect = Annotated[
    int | None,
    typer.Option(
        "--reconnect",
        min=1,
        metavar="N",
        help="Cameras and stream URLs: give a lost stream up as failed after N tries in a row to reach it "
        "again (tries wait 0.5 s doubling to 30 s). Default: try forever.",
        show_default=False,
        rich_help_panel=_LIVE,
    ),
]
NoReconnect = Annotated[
    bool,
    typer.Option(
        "--no-reconnect",
        help="Cameras and stream URLs: a stream that breaks off ends (one that does not open fails at once) "
        "instead of being reached again.",
        rich_help_panel=_LIVE,
    ),
]
StallTimeout = Annotated[
    float,
    typer.Option(
        "--stall-timeout",
        min=0.1,
        metavar="SECONDS",
        help="A live stream that delivers no frame for this long counts as lost (and is reconnected).",
        rich_help_panel=_LIVE,
    ),
]
FailFast = Annotated[
    bool,
    typer.Option(
        "--fail-fast",
        help="The first input that fails stops every input (default: it ends alone, the others run on and "
        "the exit code is 9).",
        rich_help_panel=_LIVE,
    ),
]
MetricsPort = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        metavar="PORT",
        help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics while the run lasts, with /healthz "
        "and /readyz (0: a free port, printed).",
        show_default=False,
        rich_help_panel=_LIVE,
    ),
]


def _web_address(value: str | None) -> str | None:
    if value is not None:
        try:
            listen_address(value)
        except InputError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


WebAddress = Annotated[
    str | None,
    typer.Option(
        "--web",
        metavar="[HOST:]PORT",
        callback=_web_address,
        help="Show the run live in a browser at http://127.0.0.1:PORT/ (annotated frames of every stream, "
        "their numbers, a snapshot button; 0: a free port, printed). HOST:PORT listens elsewhere "
        "(0.0.0.0:PORT: every network) and then needs a token (HHRT_TOKEN or --token): open the page once "
        "with ?token=... See docs/web.md.",
        show_default=False,
        rich_help_panel=_LIVE,
    ),
]
TrackMaxGap = Annotated[
    float,
    typer.Option(
        "--track-max-gap",
        min=0.0,
        metavar="SECONDS",
        help="A live stream that was away at most this long keeps its people's IDs (a longer outage starts "
        "them afresh); smoothing always restarts after an outage.",
        rich_help_panel="Tracking and smoothing",
    ),
]
SegmentTime = Annotated[
    float | None,
    typer.Option(
        "--segment-time",
        min=1.0,
        metavar="SECONDS",
        help="Write the mp4 in files of this many seconds (OUT_000.mp4, OUT_001.mp4 ...): an mp4 plays only "
        "once closed, so a killed run or a power cut loses at most the file being written.",
        show_default=False,
        rich_help_panel=_LIVE,
    ),
]

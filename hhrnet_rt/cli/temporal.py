"""Options ``--track`` and ``--smooth`` of ``hhrt video`` and ``hhrt webcam``, and the settings they make.

The commands take these as parameters and hand :func:`temporal_settings` to the run, which asks it for a
fresh post-decode hook per stream (:meth:`hhrnet_rt.track.hook.TemporalSettings.hook`): each input or
camera has its own tracker and filters, so IDs never leak from one stream into another.
"""

from __future__ import annotations

from typing import Annotated

import typer

from hhrnet_rt.track.hook import TemporalSettings

DEFAULTS = TemporalSettings()  # the defaults the commands show
_PANEL = "Tracking and smoothing"

Track = Annotated[
    bool,
    typer.Option(
        "--track",
        help='Give each person an ID that stays the same across frames (JSON "id", COCO "track_id", '
        "a colour per ID on the picture).",
        rich_help_panel=_PANEL,
    ),
]
TrackMinHits = Annotated[
    int,
    typer.Option(
        min=1, help="Frames in a row a new person must be seen before getting an ID.", rich_help_panel=_PANEL
    ),
]
TrackMaxAge = Annotated[
    int,
    typer.Option(min=0, help="Frames a person may go unseen and keep the ID.", rich_help_panel=_PANEL),
]
TrackMinOks = Annotated[
    float,
    typer.Option(
        min=0.0, max=1.0, help="Least keypoint similarity (OKS) to the person's predicted pose for a match.",
        rich_help_panel=_PANEL,
    ),
]  # fmt: skip
Smooth = Annotated[
    bool,
    typer.Option(
        "--smooth",
        help="Smooth the joints over time (One-Euro filter per tracked joint; turns --track on). JSON "
        'records then say "smoothed": true.',
        rich_help_panel=_PANEL,
    ),
]
SmoothMinCutoff = Annotated[
    float,
    typer.Option(
        min=0.001, help="Cutoff (Hz) for joints at rest: lower smooths more.", rich_help_panel=_PANEL
    ),
]
SmoothBeta = Annotated[
    float,
    typer.Option(min=0.0, help="Cutoff rise per pixel/second of speed: higher lags less on fast moves.",
                 rich_help_panel=_PANEL),
]  # fmt: skip
SmoothDCutoff = Annotated[
    float,
    typer.Option(min=0.001, help="Cutoff (Hz) of the joint speed estimate.", rich_help_panel=_PANEL),
]


def temporal_settings(
    track: bool, min_hits: int, max_age: int, min_oks: float,
    smooth: bool, min_cutoff: float, beta: float, d_cutoff: float,
) -> TemporalSettings:  # fmt: skip
    """The settings the options describe (``--smooth`` implies ``--track``: a filter follows one ID)."""
    return TemporalSettings(track or smooth, min_hits, max_age, min_oks, smooth, min_cutoff, beta, d_cutoff)

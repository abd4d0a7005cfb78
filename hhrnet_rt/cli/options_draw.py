"""The options about what people see: the overlay (``--line-width``, ``--labels``, ``--boxes``,
``--show-below``) and how much hhrt says (``--quiet``, ``--verbose``).

The overlay options become one :class:`~hhrnet_rt.draw.PoseStyle` (:func:`overlay_style`), the style
``hhrt video``, ``webcam`` and ``image`` draw with (Ray workers get it in their recipe).
"""

from __future__ import annotations

from typing import Annotated

import typer

from hhrnet_rt.draw import PoseStyle

LineWidth = Annotated[
    int | None,
    typer.Option(
        "--line-width",
        min=1,
        max=100,
        help="Skeleton line width in pixels (joints and labels follow it). Default: scaled to the frame, "
        "2 px at 640x480.",
        show_default=False,
    ),
]
Labels = Annotated[
    bool,
    typer.Option(
        "--labels/--no-labels",
        help="Label each person drawn: #ID with --track, else the person score (on a filled box).",
    ),
]
Boxes = Annotated[bool, typer.Option("--boxes", help="Draw a box around each person's joints.")]
ShowBelow = Annotated[
    bool,
    typer.Option(
        "--show-below",
        help="Also draw the people scoring 0.1 or less, which the picture hides by default (low-score "
        "fragments; the JSON and COCO files keep them either way). With --min-score the picture shows "
        "exactly the people kept.",
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress and no summary: only warnings and errors."),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Also print the per-stage timings and queue waits in the summary."),
]


def overlay_style(line_width: int | None, labels: bool, boxes: bool, show_below: bool) -> PoseStyle:
    """The overlay options as a style (``--show-below``: no picture-only threshold)."""
    return PoseStyle(line_width=line_width, labels=labels, boxes=boxes,
                     person_threshold=None if show_below else PoseStyle.person_threshold)  # fmt: skip

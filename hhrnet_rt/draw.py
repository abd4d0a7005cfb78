"""The annotator: style in the constructor, one method, ``annotate(frame, poses)``; and the HUD's text.

:class:`PoseAnnotator` is what ``hhrt video``, ``webcam`` and ``image`` draw with, and what
:meth:`hhrnet_rt.Poses.plot` does in one call; the drawing itself is :mod:`hhrnet_rt.overlay` (arrays in,
pixels out). A video loop keeps one annotator and calls it per frame.

Example:
    >>> import numpy as np
    >>> from hhrnet_rt import Poses
    >>> annotator = PoseAnnotator(PoseStyle(line_width=3, boxes=True))
    >>> frame = np.zeros((120, 160, 3), np.uint8)
    >>> annotator.annotate(frame, Poses.empty(17)) is frame
    True
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hhrnet_rt.overlay import PoseStyle, draw_hud, draw_people, people_drawn
from hhrnet_rt.poses import Poses

__all__ = ["PoseAnnotator", "PoseStyle", "annotator_for", "draw_hud", "hud_ids_line"]


class PoseAnnotator:
    """Draws people on frames: skeleton and joints in one colour per person (per ID when tracked),
    labels on a filled box, optional boxes; the skeleton comes from the joint count (COCO 17,
    CrowdPose 14).

    Args:
        style: a :class:`PoseStyle` (the default style when omitted); ``PoseAnnotator(line_width=3)``
            is a shortcut for ``PoseAnnotator(PoseStyle(line_width=3))``.
    """

    def __init__(self, style: PoseStyle | None = None, **style_fields) -> None:
        if style is not None and style_fields:
            raise TypeError("give a PoseStyle or style keywords, not both")
        self.style = style if style is not None else PoseStyle(**style_fields)

    def drawn(self, poses: Poses) -> np.ndarray:
        """(P,) bool: which people :meth:`annotate` draws; the HUD and summaries count these."""
        return people_drawn(poses.scores, self.style)

    def annotate(self, frame_bgr: np.ndarray, poses: Poses) -> np.ndarray:
        """Draw ``poses`` onto ``frame_bgr`` in place and return it (copy first to keep the original:
        :meth:`hhrnet_rt.Poses.plot` does).

        Raises:
            ValueError: the frame is not an (H, W, 3) uint8 array.
        """
        return draw_people(frame_bgr, poses.keypoints, poses.scores, poses.ids, self.style)


def annotator_for(min_score: float | None, style: PoseStyle | None = None) -> PoseAnnotator:
    """The annotator that goes with a people choice (:meth:`Poses.select`): with ``min_score`` the people
    were chosen before drawing, so all of them are drawn (drawn = counted = written); without it,
    ``style`` as given (default: hides low-score fragments from the picture only)."""
    style = style or PoseStyle()
    if min_score is not None and style.person_threshold is not None:
        style = replace(style, person_threshold=None)
    return PoseAnnotator(style)


def hud_ids_line(poses: Poses, most: int = 8) -> str:
    """HUD text naming the tracked people's IDs, lowest first (``ids 0 3 7 +2``: two more not listed).
    Give it the people drawn (``poses[annotator.drawn(poses)]``), so the line matches the picture."""
    ids = sorted(int(i) for i in (poses.ids if poses.ids is not None else ()) if i >= 0)
    shown = " ".join(str(i) for i in ids[:most]) or "-"
    return f"ids {shown}" + (f" +{len(ids) - most}" if len(ids) > most else "")

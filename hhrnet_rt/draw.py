"""Overlay: skeletons and joints per person, and a HUD text box.

Example:
    >>> import numpy as np
    >>> from hhrnet_rt import Poses
    >>> frame = np.zeros((120, 160, 3), np.uint8)
    >>> out = PoseAnnotator(PoseStyle()).annotate(frame, Poses.empty(17))
    >>> out is frame
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hhrnet_rt.core.skeleton import PERSON_COLORS_BGR, skeleton_for
from hhrnet_rt.poses import Poses

# Sub-pixel drawing: OpenCV takes fixed-point coordinates with this many fractional bits, so joints land
# where the decoder put them instead of on the nearest integer pixel.
_SHIFT = 4
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class PoseStyle:
    """How people are drawn.

    Attributes:
        joint_radius: circle radius in pixels.
        line_thickness: skeleton line thickness in pixels.
        score_threshold: joints whose score is at or below this are not drawn (nor their edges).
        person_threshold: people whose score is at or below this are not drawn at all. The official
            decoder keeps every group, including fragments that start from one stray peak (score at
            most 1/17 of it) and that refine then completes, often on top of another person; 0.1 hides
            those from the picture only (JSON and COCO outputs keep everyone, as the official
            evaluation does). ``None`` draws everyone it is given: what ``hhrt --min-score`` uses, as
            the people are then chosen once, before drawing, counting and writing
            (:meth:`Poses.select`).
        show_person_score: write the person score above the person's top-most joint.
        colors: BGR colours, one per person, cycled; tracked people (``Poses.ids``) take the colour of
            their ID, so a person keeps one colour from frame to frame, and get ``#ID`` above the head.
        untracked_color: colour of people a tracker has not confirmed yet (ID -1).
    """

    joint_radius: int = 3
    line_thickness: int = 2
    score_threshold: float = 0.1
    person_threshold: float | None = 0.1
    show_person_score: bool = False
    colors: tuple[tuple[int, int, int], ...] = PERSON_COLORS_BGR
    untracked_color: tuple[int, int, int] = (160, 160, 160)


class PoseAnnotator:
    """Draws people on a frame; the skeleton comes from the joint count (COCO 17, CrowdPose 14).

    Args:
        style: a :class:`PoseStyle`; default style when omitted.
    """

    def __init__(self, style: PoseStyle | None = None) -> None:
        self.style = style or PoseStyle()

    def drawn(self, poses: Poses) -> np.ndarray:
        """(P,) bool: which people :meth:`annotate` draws; the HUD and summaries count these."""
        if self.style.person_threshold is None:
            return np.ones(len(poses), bool)
        return poses.scores > self.style.person_threshold

    def annotate(self, frame_bgr: np.ndarray, poses: Poses) -> np.ndarray:
        """Draw ``poses`` onto ``frame_bgr`` in place and return it (copy first to keep the original).

        Raises:
            ValueError: the frame is not an (H, W, 3) uint8 array.
        """
        if frame_bgr.dtype != np.uint8 or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(f"frame: expected (H, W, 3) uint8 BGR, got {frame_bgr.shape} {frame_bgr.dtype}")
        style = self.style
        edges = skeleton_for(poses.num_joints)
        drawn = self.drawn(poses)
        for p, (person, score) in enumerate(zip(poses.keypoints, poses.scores, strict=True)):
            if not drawn[p]:
                continue
            color = self._color(p, poses.ids)
            visible = person[:, 2] > style.score_threshold
            if not np.isfinite(person[:, :2]).all():
                visible &= np.isfinite(person[:, :2]).all(axis=1)
            # Clip far-off (or non-finite, already hidden) coordinates: OpenCV's fixed point is int32.
            xy = np.clip(np.nan_to_num(person[:, :2], nan=0.0, posinf=0.0, neginf=0.0), -1e6, 1e6)
            pts = np.round(xy * _ONE).astype(np.int64)
            for a, b in edges:
                if visible[a] and visible[b]:
                    cv2.line(
                        frame_bgr, _pt(pts[a]), _pt(pts[b]), color, style.line_thickness, cv2.LINE_AA, _SHIFT
                    )
            for j in np.flatnonzero(visible):
                cv2.circle(frame_bgr, _pt(pts[j]), style.joint_radius * _ONE, color, -1, cv2.LINE_AA, _SHIFT)
            labels = []
            if poses.ids is not None and poses.ids[p] >= 0:
                labels.append(f"#{poses.ids[p]}")
            if style.show_person_score:
                labels.append(f"{score:.2f}")
            if labels and visible.any():
                top = int(np.argmin(np.where(visible, person[:, 1], np.inf)))
                x, y = int(xy[top, 0]), int(xy[top, 1]) - 2 * style.joint_radius - 4
                cv2.putText(frame_bgr, " ".join(labels), (x, max(y, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                            cv2.LINE_AA)  # fmt: skip
        return frame_bgr

    def _color(self, p: int, ids: np.ndarray | None) -> tuple[int, int, int]:
        colors = self.style.colors
        if ids is None:
            return colors[p % len(colors)]
        return colors[int(ids[p]) % len(colors)] if ids[p] >= 0 else self.style.untracked_color


def annotator_for(min_score: float | None) -> PoseAnnotator:
    """The annotator that goes with a people choice (:meth:`Poses.select`): with ``min_score`` the people
    were chosen before drawing, so all of them are drawn (drawn = counted = written); without it, the
    default style, which hides low-score fragments from the picture only."""
    return PoseAnnotator(PoseStyle(person_threshold=None)) if min_score is not None else PoseAnnotator()


def hud_ids_line(poses: Poses, most: int = 8) -> str:
    """HUD text naming the tracked people's IDs, lowest first (``ids 0 3 7 +2``: two more not listed)."""
    ids = sorted(int(i) for i in (poses.ids if poses.ids is not None else ()) if i >= 0)
    shown = " ".join(str(i) for i in ids[:most]) or "-"
    return f"ids {shown}" + (f" +{len(ids) - most}" if len(ids) > most else "")


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(xy[0]), int(xy[1])


def draw_hud(
    frame_bgr: np.ndarray,
    lines: Sequence[str],
    *,
    origin: tuple[int, int] = (8, 8),
    scale: float = 0.5,
    color: tuple[int, int, int] = (255, 255, 255),
    background: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Write text lines on a filled rectangle (readable on any picture), in place; returns the frame."""
    if not lines:
        return frame_bgr
    font, thickness, pad = cv2.FONT_HERSHEY_SIMPLEX, 1, 4
    sizes = [cv2.getTextSize(text, font, scale, thickness) for text in lines]
    line_h = max(h + base for (_, h), base in sizes) + pad
    width = max(w for (w, _), _ in sizes) + 2 * pad
    x0, y0 = origin
    cv2.rectangle(frame_bgr, (x0, y0), (x0 + width, y0 + line_h * len(lines) + pad), background, -1)
    for i, text in enumerate(lines):
        baseline_y = y0 + pad + (i + 1) * line_h - sizes[i][1] - pad // 2
        cv2.putText(frame_bgr, text, (x0 + pad, baseline_y), font, scale, color, thickness, cv2.LINE_AA)
    return frame_bgr

"""Drawing keypoint arrays onto BGR frames: skeletons, joints, boxes, labels and the HUD box.

This is the array level under both :meth:`hhrnet_rt.Poses.plot` and :class:`hhrnet_rt.draw.PoseAnnotator`
(it takes ``keypoints``/``scores``/``ids`` arrays, not a :class:`~hhrnet_rt.poses.Poses`, so ``poses.py``
and ``draw.py`` can both import it without importing each other). Sizes follow the frame: a line width
of about 0.3 % of the frame's mean side (2 px at 640x480, 4-5 px at 1080p), joints a little wider,
label text in proportion, every label on a filled box in the person's colour with black or white text,
whichever contrasts more, so an ID stays readable on any clothing or background.

Example:
    >>> import numpy as np
    >>> frame = np.zeros((120, 160, 3), np.uint8)
    >>> keypoints = np.zeros((1, 17, 3), np.float32); keypoints[0, 5:7] = (60, 40, 0.9), (100, 40, 0.9)
    >>> draw_people(frame, keypoints, np.array([0.8], np.float32), None, PoseStyle()) is frame
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hhrnet_rt.core.skeleton import PERSON_COLORS_BGR, skeleton_for

# Sub-pixel drawing: OpenCV takes fixed-point coordinates with this many fractional bits, so joints land
# where the decoder put them instead of on the nearest integer pixel.
_SHIFT = 4
_ONE = 1 << _SHIFT
# OpenCV's fixed point is int32: far-off (or non-finite, already hidden) coordinates are clipped first.
_FAR = 1e6
#: The default line width: this share of the frame's mean side, at least MIN_LINE_WIDTH pixels (the serve
#: upload page draws with the same rule).
LINE_WIDTH_SHARE = 0.003
MIN_LINE_WIDTH = 2
Color = tuple[int, int, int]


@dataclass(frozen=True)
class PoseStyle:
    """How people are drawn (every field also a keyword of :meth:`hhrnet_rt.Poses.plot`).

    Attributes:
        line_width: skeleton line width in pixels; ``None`` scales it with the frame (2 px at 640x480).
        joint_radius: joint circle radius in pixels; ``None``: the line width.
        score_threshold: joints whose score is at or below this are not drawn (nor their edges).
        person_threshold: people whose score is at or below this are not drawn at all. The official
            decoder keeps every group, including fragments that start from one stray peak (score at
            most 1/17 of it) and that refine then completes, often on top of another person; 0.1 hides
            those from the picture only (JSON and COCO outputs keep everyone, as the official
            evaluation does). ``None`` draws everyone it is given: what ``hhrt --min-score`` and
            ``--show-below`` use (the people were then chosen before drawing, counting and writing).
        labels: write a label above each person: ``#ID`` for a tracked person (``Poses.ids``; none while
            the tracker has not confirmed the person), else the person score (``0.83``).
        show_person_score: add the score to a tracked person's label too (``#4 0.83``).
        boxes: draw each person's box around the joints drawn.
        colors: BGR colours, one per person, cycled; tracked people take the colour of their ID, so a
            person keeps one colour from frame to frame.
        untracked_color: colour of people a tracker has not confirmed yet (ID -1).
        caption: a line written at the bottom left of every frame (``hhrt demo`` without real weights
            says there that the poses are meaningless); empty: none.
    """

    line_width: int | None = None
    joint_radius: int | None = None
    score_threshold: float = 0.1
    person_threshold: float | None = 0.1
    labels: bool = True
    show_person_score: bool = False
    boxes: bool = False
    colors: tuple[Color, ...] = PERSON_COLORS_BGR
    untracked_color: Color = (160, 160, 160)
    caption: str = ""

    def __post_init__(self) -> None:
        for name in ("line_width", "joint_radius"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | np.integer) and 1 <= value <= 100):
                raise ValueError(f"{name} must be a whole number of pixels from 1 to 100, got {value!r}")
        if not self.colors:
            raise ValueError("colors must hold at least one BGR colour")

    def width_for(self, frame_hw: tuple[int, int]) -> int:
        """The line width on a frame of this size (``line_width``, or about 0.3 % of the mean side)."""
        if self.line_width is not None:
            return int(self.line_width)
        return max(MIN_LINE_WIDTH, round(sum(frame_hw) / 2 * LINE_WIDTH_SHARE))


def people_drawn(scores: np.ndarray, style: PoseStyle) -> np.ndarray:
    """(P,) bool: which people :func:`draw_people` draws under ``style`` (the HUD counts these)."""
    if style.person_threshold is None:
        return np.ones(len(scores), bool)
    return np.asarray(scores) > style.person_threshold


def check_frame(frame_bgr: np.ndarray) -> None:
    """Raise ValueError unless ``frame_bgr`` is an (H, W, 3) uint8 array (what OpenCV reads)."""
    shape_ok = isinstance(frame_bgr, np.ndarray) and frame_bgr.ndim == 3 and frame_bgr.shape[2] == 3
    if not shape_ok or frame_bgr.dtype != np.uint8:
        got = f"{frame_bgr.shape} {frame_bgr.dtype}" if isinstance(frame_bgr, np.ndarray) else type(frame_bgr)
        raise ValueError(f"frame: expected an (H, W, 3) uint8 BGR array, got {got}")


def draw_people(
    frame_bgr: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    ids: np.ndarray | None,
    style: PoseStyle,
) -> np.ndarray:
    """Draw people given as arrays onto ``frame_bgr`` in place and return it.

    Args:
        keypoints: (P, K, 3) ``x, y, score`` in the frame's pixels; the skeleton follows K (COCO 17,
            CrowdPose 14; other counts get joints only).
        scores: (P,) person scores.
        ids: (P,) tracker IDs (-1: not confirmed) or ``None``.

    Raises:
        ValueError: the frame is not an (H, W, 3) uint8 array.
    """
    import cv2

    check_frame(frame_bgr)
    width = style.width_for(frame_bgr.shape[:2])
    radius = style.joint_radius if style.joint_radius is not None else width
    edges = skeleton_for(keypoints.shape[1]) if keypoints.ndim == 3 else ()
    drawn = people_drawn(scores, style)
    labels: list[tuple[str, tuple[int, int], Color]] = []
    for p, person in enumerate(keypoints):
        if not drawn[p]:
            continue
        color = _color(style, p, ids)
        finite = np.isfinite(person[:, :2]).all(axis=1)
        visible = (person[:, 2] > style.score_threshold) & finite
        if not visible.any():
            continue
        xy = np.clip(np.nan_to_num(person[:, :2], nan=0.0, posinf=0.0, neginf=0.0), -_FAR, _FAR)
        pts = np.round(xy * _ONE).astype(np.int64)
        for a, b in edges:
            if visible[a] and visible[b]:
                cv2.line(frame_bgr, _pt(pts[a]), _pt(pts[b]), color, width, cv2.LINE_AA, _SHIFT)
        for j in np.flatnonzero(visible):
            cv2.circle(frame_bgr, _pt(pts[j]), radius * _ONE, color, -1, cv2.LINE_AA, _SHIFT)
        seen = xy[visible]
        x1, y1 = seen.min(axis=0)
        x2, y2 = seen.max(axis=0)
        if style.boxes:
            pad = radius + width
            cv2.rectangle(frame_bgr, (int(x1) - pad, int(y1) - pad), (int(x2) + pad, int(y2) + pad), color,
                          max(1, width // 2), cv2.LINE_AA)  # fmt: skip
        text = _label_text(style, float(scores[p]), None if ids is None else int(ids[p]))
        if text:
            # Above the top-most joint (or the box), centred on the person.
            lift = radius + width + (radius + width if style.boxes else 0)
            labels.append((text, (int((x1 + x2) / 2), int(y1) - lift), color))
    for text, anchor, color in labels:  # after every skeleton: no limb is drawn over a label
        draw_label(frame_bgr, text, anchor, color, scale=width / 3)
    if style.caption:
        draw_caption(frame_bgr, style.caption)
    return frame_bgr


def draw_caption(frame_bgr: np.ndarray, text: str) -> np.ndarray:
    """One line of white text on black at the bottom left, sized like the HUD (:func:`hud_scale`)."""
    import cv2

    scale = hud_scale(frame_bgr.shape[1])
    (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    height = th + base + 3 * 4  # draw_hud's box: the text, its baseline, padding
    return draw_hud(frame_bgr, [text], origin=(8, max(0, frame_bgr.shape[0] - height - 8)), scale=scale)


def _label_text(style: PoseStyle, score: float, person_id: int | None) -> str:
    if not style.labels:
        return ""
    if person_id is None:  # nothing tracks these people: the score is what tells them apart
        return f"{score:.2f}"
    parts = [f"#{person_id}"] if person_id >= 0 else []  # not confirmed yet: grey, no name
    if style.show_person_score:
        parts.append(f"{score:.2f}")
    return " ".join(parts)


def _color(style: PoseStyle, p: int, ids: np.ndarray | None) -> Color:
    colors = style.colors
    if ids is None:
        return colors[p % len(colors)]
    return colors[int(ids[p]) % len(colors)] if ids[p] >= 0 else style.untracked_color


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(xy[0]), int(xy[1])


def text_color_on(background: Color) -> Color:
    """Black or white, whichever contrasts more with a BGR ``background`` (ITU-R BT.601 luma)."""
    b, g, r = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw_label(
    frame_bgr: np.ndarray, text: str, anchor: tuple[int, int], color: Color, *, scale: float = 0.6
) -> np.ndarray:
    """Write ``text`` on a filled box of ``color``, centred above ``anchor`` (x, y of the box's bottom
    middle), kept inside the frame; black or white text, whichever contrasts more. In place.

    ``scale`` is OpenCV's font scale (0.6 is about 13 px tall); at least 0.4 is used, below which the
    Hershey font is no longer legible.
    """
    import cv2

    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.4, scale)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = max(2, round(th * 0.3))
    h, w = frame_bgr.shape[:2]
    box_w, box_h = tw + 2 * pad, th + base + 2 * pad
    x0 = min(max(anchor[0] - box_w // 2, 0), max(w - box_w, 0))
    y0 = min(max(anchor[1] - box_h, 0), max(h - box_h, 0))
    cv2.rectangle(frame_bgr, (x0, y0), (x0 + box_w - 1, y0 + box_h - 1), color, -1)
    cv2.putText(frame_bgr, text, (x0 + pad, y0 + pad + th), font, scale, text_color_on(color), thickness,
                cv2.LINE_AA)  # fmt: skip
    return frame_bgr


def draw_hud(
    frame_bgr: np.ndarray,
    lines: Sequence[str],
    *,
    origin: tuple[int, int] = (8, 8),
    scale: float = 0.5,
    color: Color = (255, 255, 255),
    background: Color = (0, 0, 0),
) -> np.ndarray:
    """Write text lines on a filled rectangle (readable on any picture), in place; returns the frame."""
    import cv2

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


def hud_scale(frame_width: int) -> float:
    """HUD font scale for a frame: the box covers about the same share of any frame's width."""
    return min(1.0, max(0.4, frame_width / 1280))

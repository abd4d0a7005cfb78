"""The validated result type every backend and decoder path returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from hhrnet_rt.overlay import PoseStyle, draw_people

#: Version of the keypoint records' layout (JSON lines, ``hhrt image --json``); see
#: ``schemas/keypoints.schema.json``. Raised when a field changes meaning or disappears.
KEYPOINTS_SCHEMA = "hhrnet-rt/keypoints/1"
# Rounding of written records: 0.01 px is far below any network's accuracy, 1e-4 keeps the score order of
# real detections; full float32 digits (``412.50833129882812``) only tripled the files.
XY_DECIMALS = 2
SCORE_DECIMALS = 4


class _EmptyDescriptor:
    """``Poses.empty(K)`` builds an empty result; ``poses.empty()`` says whether a result has nobody.

    Both spellings are natural for users (numpy-style constructor, and the question on an instance), so one
    name serves both instead of guessing which one callers mean.
    """

    def __get__(self, instance, owner):
        if instance is None:

            def build(num_joints: int = 17) -> Poses:
                return owner(
                    keypoints=np.zeros((0, num_joints, 3), np.float32), scores=np.zeros((0,), np.float32)
                )

            return build
        return lambda: len(instance) == 0


@dataclass(frozen=True, eq=False)
class Poses:
    """People found in one image.

    Attributes:
        keypoints: (P, K, 3) float32 rows ``x, y, score`` in original-image pixels. A joint the decoder did
            not find has score 0.
        scores: (P,) float32 person scores (official: mean of the K joint scores before refine).
        meta: free-form facts about the result (e.g. ``{"smoothed": True}`` after temporal smoothing).
        ids: (P,) int64 person IDs from a tracker (:mod:`hhrnet_rt.track`), -1 for a person the tracker
            has not confirmed yet; ``None`` when nothing tracked these people. Kept through indexing.

    Example:
        >>> poses = Poses.empty(17)
        >>> len(poses), poses.empty()
        (0, True)
        >>> len(poses[poses.scores > 0.3])
        0
    """

    keypoints: np.ndarray
    scores: np.ndarray
    meta: dict = field(default_factory=dict, compare=False)
    ids: np.ndarray | None = None

    empty = _EmptyDescriptor()

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float32)
        sc = np.asarray(self.scores, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise ValueError(f"keypoints: expected (P, K, 3), got {kp.shape}")
        if sc.shape != (kp.shape[0],):
            raise ValueError(f"scores: expected ({kp.shape[0]},) to match keypoints, got {sc.shape}")
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", sc)
        if self.ids is not None:
            ids = np.asarray(self.ids)
            if ids.shape != sc.shape or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
                raise ValueError(f"ids: expected ({kp.shape[0]},) integers to match keypoints, got {ids.shape} "
                                 f"{ids.dtype}")  # fmt: skip
            object.__setattr__(self, "ids", ids.astype(np.int64))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.keypoints.shape[1])

    def __getitem__(self, index) -> Poses:
        """People picked by an int, a slice, an index array or a boolean mask (``poses[poses.scores > .3]``);
        always a :class:`Poses` (one person stays (1, K, 3)), ``meta`` is kept and ``ids`` follow their people."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.size == 0:  # [] is float64 to numpy: "nobody", not an error
                index = index.astype(np.intp)
            if index.dtype == bool and index.shape != self.scores.shape:
                raise IndexError(f"boolean mask of shape {index.shape} for {len(self)} people")
        ids = None if self.ids is None else self.ids[index]
        return replace(self, keypoints=self.keypoints[index], scores=self.scores[index], ids=ids)

    def with_ids(self, ids) -> Poses:
        """The same people with tracker IDs attached (see ``ids``)."""
        return replace(self, ids=np.asarray(ids, np.int64).reshape(-1))

    def select(self, min_score: float | None = None, max_people: int | None = None) -> Poses:
        """The people with score >= ``min_score``, at most ``max_people`` of them (the highest scores),
        in their original order (so colours and indices stay as the decoder gave them).

        ``None`` leaves that limit off; ``select()`` returns ``self``.
        """
        if max_people is not None and max_people < 0:
            raise ValueError(f"max_people must be >= 0, got {max_people}")
        keep = np.arange(len(self))
        if min_score is not None:
            keep = keep[self.scores >= min_score]
        if max_people is not None and len(keep) > max_people:
            best = np.argsort(-self.scores[keep], kind="stable")[:max_people]
            keep = np.sort(keep[best])
        return self if len(keep) == len(self) else self[keep]

    def bboxes(self, min_joint_score: float = 0.0) -> np.ndarray:
        """(P, 4) float32 ``x1, y1, x2, y2`` around each person's joints with score > ``min_joint_score``.

        A joint not found has score 0 and meaningless x/y, so it never widens a box. A person without
        any such joint gets a row of NaN.
        """
        boxes = np.full((len(self), 4), np.nan, np.float32)
        for p, person in enumerate(self.keypoints):
            seen = (person[:, 2] > min_joint_score) & np.isfinite(person[:, :2]).all(axis=1)
            if seen.any():
                xy = person[seen, :2]
                boxes[p] = (*xy.min(axis=0), *xy.max(axis=0))
        return boxes

    def plot(self, image_bgr: np.ndarray, **style) -> np.ndarray:
        """A copy of ``image_bgr`` with these people drawn on it (the image itself is left as it was).

        Args:
            image_bgr: (H, W, 3) uint8, as OpenCV reads it (the image these poses were found in).
            **style: fields of :class:`hhrnet_rt.draw.PoseStyle`: ``line_width``, ``labels``, ``boxes``,
                ``person_threshold`` (``None`` draws everyone), ``show_person_score``, ...

        Raises:
            ValueError: the image is not (H, W, 3) uint8, or a style value is out of range.
            TypeError: an unknown style keyword.

        Example:
            >>> import numpy as np
            >>> Poses.empty(17).plot(np.zeros((48, 64, 3), np.uint8), boxes=True).shape
            (48, 64, 3)
        """
        return draw_people(np.array(image_bgr, copy=True), self.keypoints, self.scores, self.ids,
                           PoseStyle(**style))  # fmt: skip

    def to_records(self) -> list[dict]:
        """JSON-ready list: one ``{"score": s, "keypoints": [[x, y, score] * K]}`` per person, x/y rounded
        to 0.01 px and scores to 1e-4 (see ``XY_DECIMALS``); a non-finite value becomes ``None`` (JSON
        has no NaN). Tracked people (``ids`` set) also get ``"id"``: the ID, or ``None`` while the
        tracker has not confirmed the person (a shared -1 would read as one person to a ``group by``)."""
        records = [
            {
                "score": _rounded(s, SCORE_DECIMALS),
                "keypoints": [
                    [_rounded(x, XY_DECIMALS), _rounded(y, XY_DECIMALS), _rounded(v, SCORE_DECIMALS)]
                    for x, y, v in person
                ],
            }
            for person, s in zip(self.keypoints, self.scores, strict=True)
        ]
        if self.ids is not None:
            for record, person_id in zip(records, self.ids.tolist(), strict=True):
                record["id"] = person_id if person_id >= 0 else None
        return records

    def to_supervision(self):
        """The people as ``supervision.KeyPoints``: ``xy`` (P, K, 2), ``keypoint_confidence`` (P, K),
        ``detection_confidence`` (P,) = the person scores, ``visible`` = joints found (score > 0),
        ``class_id`` 0 (person); tracker IDs, when set, in ``data["tracker_id"]``.

        Raises:
            ImportError: supervision is not installed (``pip install supervision``); hhrnet-rt does not
                depend on it.
        """
        try:
            import supervision as sv
        except ImportError as exc:
            raise ImportError("Poses.to_supervision needs supervision: pip install supervision") from exc
        data: dict[str, np.ndarray | list] = {} if self.ids is None else {"tracker_id": self.ids.copy()}
        return sv.KeyPoints(
            xy=self.keypoints[:, :, :2].copy(),
            class_id=np.zeros(len(self), dtype=int),
            keypoint_confidence=self.keypoints[:, :, 2].copy(),
            detection_confidence=self.scores.copy(),
            visible=(self.keypoints[:, :, 2] > 0) & np.isfinite(self.keypoints[:, :, :2]).all(axis=2),
            data=data,
        )


def _rounded(value, decimals: int) -> float | None:
    value = float(value)
    return round(value, decimals) if np.isfinite(value) else None

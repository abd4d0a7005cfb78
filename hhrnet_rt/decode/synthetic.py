"""Heatmaps and tag maps synthesised from known people, for tests and benchmarks.

The recipe follows the one behind the golden grouping cases: a COCO-like template skeleton per person
(random size, position, mirroring, joint jitter); every joint a Gaussian blob with a sub-pixel centre
and a height in U(0.35, 1); some joints weak (below the 0.1 threshold) or absent; a channel takes the
maximum over people and values below 1e-3 become exactly 0. Tag maps are a Voronoi partition per joint
channel: each pixel takes the tag of the person whose joint is nearest, that is the person tag plus a
per-(person, joint) N(0, 0.08) offset; the second tag dimension (flip) is the person tag + N(0, 0.1).
Person tags are about 1.7 apart, so a correct decoder groups every person back together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# COCO joint positions for a standing person of height 1, centred on the hips (x right, y down).
_COCO_TEMPLATE = np.array(
    [
        (0.00, -0.45), (-0.03, -0.47), (0.03, -0.47), (-0.06, -0.45), (0.06, -0.45),
        (-0.13, -0.30), (0.13, -0.30), (-0.17, -0.12), (0.17, -0.12), (-0.18, 0.03), (0.18, 0.03),
        (-0.08, 0.02), (0.08, 0.02), (-0.09, 0.25), (0.09, 0.25), (-0.09, 0.48), (0.09, 0.48),
    ],
    dtype=np.float64,
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticMaps:
    """Synthesised decoder input and its ground truth.

    Attributes:
        heatmaps: (K, H, W) float32.
        tags: (K, H, W, L) float32.
        joints: (P, K, 3) float32 ground truth x, y (pixel-index units) and blob height (0 = absent).
        person_tags: (P, L) float32.
    """

    heatmaps: np.ndarray
    tags: np.ndarray
    joints: np.ndarray
    person_tags: np.ndarray


def _template(num_joints: int, rng: np.random.Generator) -> np.ndarray:
    if num_joints <= len(_COCO_TEMPLATE):
        return _COCO_TEMPLATE[:num_joints]
    extra = rng.uniform(-0.2, 0.2, size=(num_joints - len(_COCO_TEMPLATE), 2))
    return np.concatenate([_COCO_TEMPLATE, extra])


def _place_people(num_people, height, width, rng):
    """Centres and sizes on a jittered grid, so people overlap little."""
    cols = max(1, int(np.ceil(np.sqrt(num_people * width / max(height, 1)))))
    rows = max(1, int(np.ceil(num_people / cols)))
    cell_w, cell_h = width / cols, height / rows
    cells = rng.permutation(rows * cols)[:num_people]
    size = 0.8 * min(cell_h, 2.2 * cell_w) * rng.uniform(0.75, 1.0, num_people)
    cx = (cells % cols + 0.5 + rng.uniform(-0.08, 0.08, num_people)) * cell_w
    cy = (cells // cols + 0.5 + rng.uniform(-0.05, 0.05, num_people)) * cell_h
    return cx, cy, size


def synthesize(
    num_people: int,
    num_joints: int = 17,
    height: int = 128,
    width: int = 128,
    tag_dims: int = 2,
    *,
    seed: int = 0,
    sigma: float = 2.0,
    weak_fraction: float = 0.05,
    absent_fraction: float = 0.05,
    background: float = 0.0,
) -> SyntheticMaps:
    """Synthesise heatmaps and tags of ``num_people`` people.

    Args:
        num_people: P people (0 is allowed: empty maps).
        num_joints, height, width, tag_dims: K, H, W and L of the maps.
        seed: random seed; the same arguments give the same maps.
        sigma: Gaussian blob sigma in pixels.
        weak_fraction: share of joints drawn with height U(0.03, 0.09) (below the threshold).
        absent_fraction: share of joints not drawn at all (height 0 in ``joints``).
        background: if > 0, add uniform noise in [0, background) everywhere (quantised to 1/4096)
            instead of the exact-zero background.

    Returns:
        :class:`SyntheticMaps`.
    """
    rng = np.random.default_rng(seed)
    K, H, W, L, P = num_joints, height, width, tag_dims, num_people
    template = _template(K, rng)
    cx, cy, size = _place_people(P, H, W, rng) if P else (np.zeros(0),) * 3
    joints = np.zeros((P, K, 3), np.float32)
    order = rng.permutation(P)
    person_tags = np.zeros((P, L), np.float32)
    person_tags[:, 0] = 1.7 * (order - (P - 1) / 2.0) + rng.normal(0, 0.05, P)
    for d in range(1, L):
        person_tags[:, d] = person_tags[:, 0] + rng.normal(0, 0.1, P)
    for p in range(P):
        mirror = -1.0 if rng.random() < 0.5 else 1.0
        xy = template * size[p] * np.array([mirror, 1.0]) + rng.normal(0, 0.015 * size[p], (K, 2))
        joints[p, :, 0] = cx[p] + xy[:, 0]
        joints[p, :, 1] = cy[p] + xy[:, 1]
        kind = rng.random(K)
        joints[p, :, 2] = np.where(
            kind < absent_fraction,
            0.0,
            np.where(
                kind < absent_fraction + weak_fraction, rng.uniform(0.03, 0.09, K), rng.uniform(0.35, 1.0, K)
            ),
        )
    inside = (
        (joints[..., 0] >= 0) & (joints[..., 0] <= W - 1) & (joints[..., 1] >= 0) & (joints[..., 1] <= H - 1)
    )
    joints[~inside, 2] = 0.0

    heatmaps = np.zeros((K, H, W), np.float32)
    r = int(np.ceil(4 * sigma))
    for p in range(P):
        for j in range(K):
            h = joints[p, j, 2]
            if h <= 0:
                continue
            x0, y0 = joints[p, j, 0], joints[p, j, 1]
            xs = np.arange(max(int(x0) - r, 0), min(int(x0) + r + 2, W))
            ys = np.arange(max(int(y0) - r, 0), min(int(y0) + r + 2, H))
            g = h * np.exp(-((xs[None, :] - x0) ** 2 + (ys[:, None] - y0) ** 2) / (2 * sigma**2))
            view = heatmaps[j, ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1] if len(xs) and len(ys) else None
            if view is not None:
                np.maximum(view, g.astype(np.float32), out=view)
    heatmaps[heatmaps < 1e-3] = 0.0
    if background > 0:
        noise = np.floor(rng.uniform(0, background, heatmaps.shape) * 4096) / 4096
        heatmaps = np.maximum(heatmaps, noise.astype(np.float32))

    tags = np.zeros((K, H, W, L), np.float32)
    if P:
        offsets = rng.normal(0, 0.08, (P, K)).astype(np.float32)
        yy = np.arange(H, dtype=np.float32)
        xx = np.arange(W, dtype=np.float32)
        for j in range(K):
            # Voronoi cell of each person's joint j (absent joints still own a cell: they are occluded).
            d2 = (yy[None, :, None] - joints[:, j, 1, None, None]) ** 2 + (
                xx[None, None, :] - joints[:, j, 0, None, None]
            ) ** 2
            owner = np.argmin(d2, axis=0)
            per_person = person_tags.copy()
            per_person[:, 0] += offsets[:, j]
            tags[j] = per_person[owner]
    return SyntheticMaps(heatmaps=heatmaps, tags=tags, joints=joints, person_tags=person_tags)


def person_template(num_joints: int = 17, seed: int = 0) -> np.ndarray:
    """(K, 2) joint positions of a standing person of height 1 centred on the hips (x right, y down): the
    COCO template the maps above are drawn from (joints past COCO's 17 are random, from ``seed``). Other
    synthetic data (e.g. :mod:`hhrnet_rt.track.synthetic`) builds people from it."""
    return _template(num_joints, np.random.default_rng(seed)).copy()

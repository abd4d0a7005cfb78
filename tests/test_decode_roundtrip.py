"""Heatmaps and tags synthesised from known people decode back to those people."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt.decode import parse
from hhrnet_rt.decode.synthetic import synthesize


def _match(grouped: np.ndarray, joints: np.ndarray) -> dict[int, int]:
    """gt person -> decoded person, from the strong joints (height >= 0.35); asserts 1 px accuracy."""
    owner: dict[int, int] = {}
    for q in range(joints.shape[0]):
        for j in np.flatnonzero(joints[q, :, 2] >= 0.35):
            gx, gy = joints[q, j, :2]
            # Decoded coordinates carry the official +0.5 (and +-0.25) pixel convention.
            d = np.hypot(grouped[:, j, 0] - 0.5 - gx, grouped[:, j, 1] - 0.5 - gy)
            d[grouped[:, j, 2] <= 0] = np.inf
            p = int(np.argmin(d))
            assert d[p] <= 1.0, f"gt person {q} joint {j} at ({gx:.2f}, {gy:.2f}) not decoded within 1 px"
            assert owner.setdefault(q, p) == p, f"gt person {q} is split over decoded people"
    return owner


@pytest.mark.parametrize("tag_dims", [1, 2])
@pytest.mark.parametrize("people", [1, 3, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_people_come_back(people, seed, tag_dims):
    m = synthesize(people, 17, 96, 128, tag_dims, seed=seed, sigma=2.0)
    grouped, scores = parse(m.heatmaps, m.tags, adjust=True, refine=False)
    assert grouped.shape == (people, 17, 3 + tag_dims)
    owner = _match(grouped, m.joints)
    assert sorted(owner.values()) == list(range(people))  # one decoded person per gt person
    for q, p in owner.items():
        # Detected joints are exactly the gt joints above the threshold (weak ones stay missing).
        strong = m.joints[q, :, 2] >= 0.35
        assert np.all(grouped[p, strong, 2] > 0.1)
        assert np.all(grouped[p, m.joints[q, :, 2] < 0.1, 2] == 0)
        np.testing.assert_allclose(grouped[p, strong, 3], m.person_tags[q, 0], atol=0.5)
        assert scores[p] == pytest.approx(grouped[p, :, 2].mean(), rel=1e-6)

    refined, refined_scores = parse(m.heatmaps, m.tags)
    np.testing.assert_array_equal(refined_scores, scores)  # scores are taken before refine
    assert _match(refined, m.joints) == owner
    for q, p in owner.items():
        # refine fills weak joints (0.03-0.09 blobs in the person's tag region) at their place.
        for j in np.flatnonzero((m.joints[q, :, 2] > 0.03) & (m.joints[q, :, 2] < 0.1)):
            assert refined[p, j, 2] > 0
            dist = np.hypot(
                refined[p, j, 0] - 0.5 - m.joints[q, j, 0], refined[p, j, 1] - 0.5 - m.joints[q, j, 1]
            )
            assert dist <= 1.0


def test_non_square_and_other_joint_counts():
    for joints, size in ((14, (128, 96)), (5, (64, 160))):
        m = synthesize(4, joints, *size, 2, seed=7, sigma=2.0)
        grouped, _ = parse(m.heatmaps, m.tags, adjust=True, refine=False)
        assert grouped.shape == (4, joints, 5)
        assert sorted(_match(grouped, m.joints).values()) == [0, 1, 2, 3]

"""CrowdPose (14 joints) is grouped in the official order: the first 14 entries of the COCO joint_order.

The official HeatmapParser keeps one 17-entry ``joint_order`` and loops ``i`` over ``range(num_joints)``,
so a 14-joint model visits joints ``[0,1,2,3,4,5,6,11,12,7,8,9,10,13]``: both hips (11, 12) before the
left elbow (7). Grouping is greedy in that order, so the order decides who ends up with whom.
"""

from __future__ import annotations

import numpy as np
import pytest
from decode_reference import reference_parse

from hhrnet_rt.decode import parse
from hhrnet_rt.decode.params import DecodeParams

OFFICIAL_14 = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13)
NAIVE_14 = tuple(range(14))


def three_joint_chain() -> tuple[np.ndarray, np.ndarray]:
    """Joint 6 (tag 0), joint 7 (tag +0.9) and joint 11 (tag -0.9), one peak each, far apart.

    Whichever of 7 and 11 is visited first joins joint 6's person (distance 0.9 < 1) and pulls the
    person's mean tag towards itself, so the other one is then 1.35 away and starts a person of its own.
    0..13 gives {6, 7} + {11}; the official order gives {6, 11} + {7}.
    """
    det = np.zeros((14, 32, 32), np.float32)
    tags = np.zeros((14, 32, 32, 1), np.float32)
    for joint, (y, x), tag in ((6, (8, 8), 0.0), (7, (8, 24), 0.9), (11, (24, 16), -0.9)):
        det[joint, y, x] = 0.8
        tags[joint, y, x, 0] = tag
    return det, tags


def partners_of_joint_6(grouped: np.ndarray) -> set[int]:
    (person,) = [p for p in grouped if p[6, 2] > 0]
    return {j for j in range(14) if j != 6 and person[j, 2] > 0}


def test_default_order_for_14_joints_is_the_official_one():
    assert DecodeParams().order_for(14) == OFFICIAL_14
    assert DecodeParams().order_for(17) == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)
    # K = 8..12: the first K official entries are no permutation (the official code fails there).
    assert DecodeParams().order_for(10) == tuple(range(10))
    assert DecodeParams(joint_order=NAIVE_14).order_for(14) == NAIVE_14  # an explicit order still wins


def test_official_and_naive_orders_group_other_people():
    det, tags = three_joint_chain()
    official, _ = parse(det, tags, adjust=False, refine=False)
    naive, _ = parse(det, tags, DecodeParams(joint_order=NAIVE_14), adjust=False, refine=False)
    assert len(official) == len(naive) == 2
    assert partners_of_joint_6(official) == {11}
    assert partners_of_joint_6(naive) == {7}


def test_reference_states_the_official_order():
    det, tags = three_joint_chain()
    grouped, _ = reference_parse(det, tags, adjust=False, refine=False)
    assert partners_of_joint_6(grouped) == {11}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parse_equals_reference_on_14_joint_noise(seed):
    """The golden 'noise' recipe with 14 joints: about 30 people and many ties, where the two orders
    disagree (checked below), so equality with the reference pins the order on a hard case too."""
    rng = np.random.default_rng(seed)
    det = rng.uniform(-0.1, 1.0, (14, 16, 20)).astype(np.float32)
    tags = (np.round(rng.normal(0, 2, (14, 16, 20, 1)) * 256) / 256).astype(np.float32)
    ours, scores = parse(det, tags)
    expected, expected_scores = reference_parse(det, tags)
    assert ours.shape == expected.shape
    # Positions are exact (both add +-0.25 and +0.5 to integers); values and tags are float32 copies of the
    # same numbers but pass through float64 in the reference, so allow one float32 rounding step.
    np.testing.assert_array_equal(ours[..., :2], expected[..., :2])
    np.testing.assert_allclose(ours[..., 2:], expected[..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6, atol=0)
    naive, _ = parse(det, tags, DecodeParams(joint_order=NAIVE_14))
    assert naive.shape != ours.shape or not np.array_equal(naive, ours)

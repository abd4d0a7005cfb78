"""Property tests of hhrnet_rt.decode.parse: equal to a plain re-statement of the official parser on
random inputs, and never crashing (right shapes and dtypes) on hostile ones (NaN, inf, tiny maps)."""

from __future__ import annotations

import numpy as np
import pytest
from decode_reference import reference_parse, untie_peaks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.decode import parse
from hhrnet_rt.decode.npsum import mean_rows_f32, pairwise_sum_f32
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.decode.synthetic import synthesize


def assert_same_people(ours, expected):
    (g, s), (eg, es) = ours, expected
    assert g.shape == eg.shape
    np.testing.assert_array_equal(g[..., :2], eg[..., :2])
    np.testing.assert_allclose(g[..., 2:], eg[..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s, es, rtol=1e-6, atol=0)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    people=st.integers(0, 12),
    joints=st.sampled_from([17, 14, 5]),
    size=st.sampled_from([(40, 56), (64, 48), (33, 71)]),
    tag_dims=st.sampled_from([1, 2]),
    background=st.sampled_from([0.0, 0.02]),
    flags=st.sampled_from([(False, False), (True, False), (True, True), (False, True)]),
    seed=st.integers(0, 10_000),
)
def test_parse_equals_reference_on_synthetic_people(people, joints, size, tag_dims, background, flags, seed):
    m = synthesize(people, joints, *size, tag_dims, seed=seed, sigma=1.5, background=background)
    do_adjust, do_refine = flags
    ours = parse(m.heatmaps, m.tags, adjust=do_adjust, refine=do_refine)
    assert_same_people(ours, reference_parse(m.heatmaps, m.tags, adjust=do_adjust, refine=do_refine))


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.sampled_from([(24, 24), (16, 40), (9, 13)]),
    tag_dims=st.sampled_from([1, 2]),
    params=st.sampled_from(
        [
            DecodeParams(),
            DecodeParams(max_num_people=4),
            DecodeParams(max_num_people=3, ignore_too_much=True),
            DecodeParams(use_detection_val=False, tag_threshold=2.0),
            DecodeParams(detection_threshold=0.5, joint_order=tuple(reversed(range(17)))),
        ]
    ),
)
def test_parse_equals_reference_on_noise(seed, size, tag_dims, params):
    """The golden 'noise' recipe (det ~ U(-0.1, 1), tags N(0, 2) on a 1/256 grid): many people,
    many munkres ties, refine everywhere; plus non-default settings."""
    det, tags = raw_noise_maps(seed, size, tag_dims)
    det = untie_peaks(det, params.detection_threshold)  # torch.topk's order of equal peaks is unspecified
    assert_same_people(parse(det, tags, params), reference_parse(det, tags, params))


def raw_noise_maps(seed, size, tag_dims):
    rng = np.random.default_rng(seed)
    det = rng.uniform(-0.1, 1.0, (17, *size)).astype(np.float32)
    tags = (np.round(rng.normal(0, 2, (17, *size, tag_dims)) * 256) / 256).astype(np.float32)
    return det, tags


@pytest.mark.parametrize("seed, size, tag_dims", [(173, (16, 40), 1), (965, (16, 40), 2)])
def test_noise_seeds_that_had_equal_peaks(seed, size, tag_dims):
    """These maps hold two equal float32 peaks in one channel, which torch.topk (CPU) and parse
    ranked differently, so the grouping differed: the reference refuses them, untied they agree."""
    raw, tags = raw_noise_maps(seed, size, tag_dims)
    with pytest.raises(ValueError, match="equal peak values"):
        reference_parse(raw, tags)
    det = untie_peaks(raw)
    assert_same_people(parse(det, tags), reference_parse(det, tags))


finite_or_not = st.one_of(
    st.floats(-2, 2, width=32),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, np.nan, np.inf, -np.inf]),
)


@settings(max_examples=60, deadline=None)
@given(
    joints=st.sampled_from([1, 5, 14, 17]),
    size=st.sampled_from([(1, 1), (2, 3), (3, 2), (7, 5), (12, 17)]),
    tag_dims=st.sampled_from([1, 2]),
    data=st.data(),
    flags=st.sampled_from([(False, False), (True, True)]),
)
def test_parse_never_crashes(joints, size, tag_dims, data, flags):
    shape = (joints, *size)
    det = data.draw(
        st.one_of(
            hnp.arrays(np.float32, shape, elements=finite_or_not),
            st.sampled_from([0.0, 0.3, -1.0, np.nan, np.inf]).map(lambda v: np.full(shape, v, np.float32)),
        )
    )
    tags = data.draw(hnp.arrays(np.float32, (*shape, tag_dims), elements=finite_or_not))
    grouped, scores = parse(det, tags, adjust=flags[0], refine=flags[1])
    assert grouped.dtype == np.float32 and scores.dtype == np.float32
    assert grouped.ndim == 3 and grouped.shape[1:] == (joints, 3 + tag_dims)
    assert scores.shape == (grouped.shape[0],)
    # Documented: NaN never becomes a joint value, and joints lie on the map (+0.5 +-0.25 convention).
    present = grouped[..., 2] != 0
    assert not np.isnan(grouped[..., 2]).any()
    assert np.all(grouped[..., 0][present] >= 0) and np.all(grouped[..., 0][present] <= size[1])
    assert np.all(grouped[..., 1][present] >= 0) and np.all(grouped[..., 1][present] <= size[0])


def test_nan_and_inf_semantics():
    det = np.zeros((1, 9, 9), np.float32)
    tags = np.zeros((1, 9, 9, 1), np.float32)
    det[0, 2, 2] = np.nan  # never a peak and does not suppress its neighbour
    det[0, 3, 3] = 0.5
    det[0, 7, 7] = np.inf  # an ordinary, largest value
    grouped, scores = parse(det, tags, DecodeParams(joint_order=(0,)), adjust=False, refine=False)
    assert grouped.shape == (1, 1, 4)  # both peaks share tag 0.0: the second overwrites the first
    assert grouped[0, 0, 2] == 0.5 and scores[0] == 0.5
    tags[0, 3, 3, 0] = np.nan  # a NaN tag never matches an existing person
    grouped, _ = parse(det, tags, DecodeParams(joint_order=(0,)), adjust=False, refine=False)
    assert grouped.shape[0] == 2 and np.isinf(grouped[0, 0, 2])


def test_empty_and_invalid_inputs():
    grouped, scores = parse(np.zeros((17, 8, 8), np.float32), np.zeros((17, 8, 8, 2), np.float32))
    assert grouped.shape == (0, 17, 5) and scores.shape == (0,)
    grouped, scores = parse(np.zeros((17, 0, 8), np.float32), np.zeros((17, 0, 8, 1), np.float32))
    assert grouped.shape == (0, 17, 4)
    grouped, _ = parse(np.zeros((4, 8, 8)), np.zeros((4, 8, 8)))  # float64 and (K, H, W) tags accepted
    assert grouped.shape == (0, 4, 4)
    with pytest.raises(InputError, match=r"\(K, H, W\)"):
        parse(np.zeros((1, 17, 8, 8)), np.zeros((1, 17, 8, 8, 2)))
    with pytest.raises(InputError, match="tags must have shape"):
        parse(np.zeros((17, 8, 8)), np.zeros((17, 8, 9, 2)))
    with pytest.raises(InputError, match="odd"):
        parse(np.zeros((17, 8, 8)), np.zeros((17, 8, 8, 2)), DecodeParams(nms_kernel=4))
    with pytest.raises(InputError, match="joint_order"):
        parse(np.zeros((5, 8, 8)), np.zeros((5, 8, 8, 2)), DecodeParams(joint_order=(0, 1)))


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(1, 3)),
        elements=st.floats(-1e4, 1e4, width=32) | st.floats(-1 / 1024, 1 / 1024, width=32),
    )
)
def test_numpy_float32_summation_orders(rows):
    """The sums the official means depend on: np.mean of a list of tags and a strided column mean."""
    out = np.zeros(rows.shape[1], np.float32)
    mean_rows_f32(rows, rows.shape[0], out)
    np.testing.assert_array_equal(out, np.mean([r for r in rows], axis=0))
    col = np.ascontiguousarray(rows[:, 0])
    assert pairwise_sum_f32(col, len(col)) / np.float32(len(col)) == rows[:, 0].mean()


def test_nms_kernel_one_keeps_every_pixel_and_three_suppresses():
    det = np.zeros((1, 3, 5), np.float32)
    det[0, 1] = [0.2, 0.3, 0.4, 0.5, 0.6]
    tags = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)  # distinct tags: one person per peak
    one = DecodeParams(nms_kernel=1, joint_order=(0,))
    grouped, _ = parse(det, tags, one, adjust=False, refine=False)
    assert grouped[:, 0, 2].tolist() == pytest.approx([0.6, 0.5, 0.4, 0.3, 0.2])  # descending, top-k order
    three = DecodeParams(nms_kernel=3, joint_order=(0,))
    grouped, _ = parse(det, tags, three, adjust=False, refine=False)
    assert grouped[:, 0, :3].tolist() == [[4.0, 1.0, pytest.approx(0.6)]]


def test_parse_from_several_threads_at_once(golden_npz):
    """The kernels release the GIL and share no state: concurrent calls give the serial result."""
    from concurrent.futures import ThreadPoolExecutor

    g = golden_npz("grouping_cases")
    det, tag = g["case4_det"][0], g["case4_tag"][0]
    expected = parse(det, tag)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: parse(det, tag), range(16)))
    for grouped, scores in results:
        np.testing.assert_array_equal(grouped, expected[0])
        np.testing.assert_array_equal(scores, expected[1])


def test_threshold_compares_like_float64():
    """A peak of exactly float32(0.1) is above the float64 threshold 0.1, as in the official code."""
    det = np.zeros((1, 5, 5), np.float32)
    det[0, 2, 2] = np.float32(0.1)
    tags = np.zeros((1, 5, 5, 1), np.float32)
    grouped, _ = parse(det, tags, DecodeParams(joint_order=(0,)), adjust=False, refine=False)
    assert grouped.shape == (1, 1, 4) and grouped[0, 0, 2] == np.float32(0.1)
    grouped, _ = parse(det, tags, DecodeParams(joint_order=(0,), detection_threshold=float(np.float32(0.1))))
    assert grouped.shape == (0, 1, 4)  # equal is not above

"""The per-tile maxima the NMS pass hands to refine, and refine's tile pruning on maps large enough to
have many tiles (the other decode tests use small maps): both against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from decode_reference import reference_parse, untie_peaks
from hypothesis import given, settings
from hypothesis import strategies as st

from hhrnet_rt.decode import parse
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.decode.peaks import TILE, float32_threshold, top_k_peaks
from hhrnet_rt.decode.synthetic import synthesize


def numpy_tile_maxima(hm: np.ndarray) -> np.ndarray:
    """(K, n_tiles) maximum of the positive pixels of each TILE x TILE tile (0 if none, NaN ignored)."""
    K, H, W = hm.shape
    ty_n, tx_n = -(-H // TILE), -(-W // TILE)
    pad = np.zeros((K, ty_n * TILE, tx_n * TILE), np.float32)
    pad[:, :H, :W] = np.where(np.isnan(hm), 0, hm)
    tiles = pad.reshape(K, ty_n, TILE, tx_n, TILE).max(axis=(2, 4))
    return np.maximum(tiles, 0).reshape(K, -1)


@pytest.mark.parametrize("cpu_order", [True, False])
@pytest.mark.parametrize("threshold", [0.1, 0.0, -0.05])
@pytest.mark.parametrize("shape", [(3, 16, 16), (2, 37, 53), (2, 1, 70), (1, 64, 5)])
def test_tile_maxima_match_numpy(shape, threshold, cpu_order):
    rng = np.random.default_rng(sum(shape))
    hm = rng.uniform(-0.2, 1.0, shape).astype(np.float32)
    hm[rng.random(shape) < 0.3] = 0.0
    hm[rng.random(shape) < 0.05] = np.nan
    _, _, _, tmax = top_k_peaks(hm, float32_threshold(threshold), 30, 2, cpu_order)
    np.testing.assert_array_equal(tmax, numpy_tile_maxima(hm))


def assert_same(ours, ref):
    (g, s), (rg, rs) = ours, ref
    assert g.shape == rg.shape
    np.testing.assert_array_equal(g[..., :2], rg[..., :2])
    np.testing.assert_allclose(g[..., 2:], rg[..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(s, rs, rtol=1e-6, atol=0)


@settings(max_examples=12, deadline=None)
@given(
    people=st.integers(1, 14),
    size=st.sampled_from([(96, 112), (80, 131), (57, 100)]),
    tag_dims=st.sampled_from([1, 2]),
    background=st.sampled_from([0.0, 0.02]),
    seed=st.integers(0, 10_000),
)
def test_refine_on_many_tiles_equals_reference(people, size, tag_dims, background, seed):
    m = synthesize(people, 17, *size, tag_dims, seed=seed, sigma=2.5, background=background)
    assert_same(parse(m.heatmaps, m.tags), reference_parse(m.heatmaps, m.tags))


def raw_quantised_maps(seed: int, tag_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Values at or below the detection threshold coarsely quantised (zeros, negatives and small
    positives: many equal refine targets) and tags on a half-unit grid (exact half-way distances).
    Values above the threshold stay continuous, yet two of them can round to the same float32."""
    rng = np.random.default_rng(seed)
    K, H, W = 17, 70, 90
    det = rng.uniform(-0.3, 1.0, (K, H, W))
    low = det <= 0.1
    det[low] = np.round(det[low] * 32) / 32
    det[rng.random((K, H, W)) < 0.6] = 0.0
    tags = np.round(rng.normal(0, 1.5, (K, H, W, tag_dims)) * 2) / 2
    return det.astype(np.float32), tags.astype(np.float32)


def quantised_maps(seed: int, tag_dims: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`raw_quantised_maps` with equal peaks untied: torch.topk ranks them in an unspecified order."""
    det, tags = raw_quantised_maps(seed, tag_dims)
    return untie_peaks(det), tags


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), tag_dims=st.sampled_from([1, 2]))
def test_refine_ties_on_quantised_maps_equal_reference(seed, tag_dims):
    """First-occurrence ties across tiles must resolve as numpy's, munkres ties as munkres 1.1.4's."""
    det, tags = quantised_maps(seed, tag_dims)
    params = DecodeParams(max_num_people=8)
    assert_same(parse(det, tags, params), reference_parse(det, tags, params))


# Seeds whose float32 maps had two equal peak values among a joint's top-k candidates before
# untie_peaks: torch.topk (CPU) ranked them one way, parse by flat index, and the grouping differed.
@pytest.mark.parametrize("seed, tag_dims", [(5780, 2), (550, 1)])
def test_quantised_maps_that_had_equal_peaks(seed, tag_dims):
    raw, tags = raw_quantised_maps(seed, tag_dims)
    params = DecodeParams(max_num_people=8)
    with pytest.raises(ValueError, match="equal peak values"):
        reference_parse(raw, tags, params)  # no official answer to compare with
    det = untie_peaks(raw)
    assert_same(parse(det, tags, params), reference_parse(det, tags, params))
    for plane in det.reshape(det.shape[0], -1):
        above = plane[plane > 0.1]
        assert np.unique(above).size == above.size


def test_equal_peaks_rank_by_flat_index():
    """topk_ties="index" (torch.topk leaves the order of equal values unspecified): lowest flat index
    first, so with max_num_people=2 the first two of three equal peaks in row-major order win."""
    det = np.zeros((1, 20, 20), np.float32)
    for y, x in ((15, 3), (2, 12), (9, 17)):
        det[0, y, x] = 0.75
    tags = np.zeros((1, 20, 20, 1), np.float32)
    tags[0, 2, 12, 0], tags[0, 9, 17, 0], tags[0, 15, 3, 0] = 1.0, 4.0, 7.0  # one person each
    params = DecodeParams(max_num_people=2, joint_order=(0,), topk_ties="index")
    grouped, _ = parse(det, tags, params, adjust=False, refine=False)
    np.testing.assert_array_equal(grouped[:, 0, :2], [[12, 2], [17, 9]])


def test_equal_peaks_follow_torch_cpu_topk_by_default():
    """The default topk_ties="cpu": of two equal peaks behind a larger one, max_num_people=2 keeps the one
    torch.topk(2) keeps on the CPU (its heap pops the earlier one), not the lower flat index."""
    det = np.zeros((1, 20, 20), np.float32)
    for (y, x), v in (((2, 12), 0.75), ((9, 17), 0.75), ((15, 3), 0.9)):
        det[0, y, x] = v
    tags = np.zeros((1, 20, 20, 1), np.float32)
    tags[0, 2, 12, 0], tags[0, 9, 17, 0], tags[0, 15, 3, 0] = 1.0, 4.0, 7.0
    _, ind = torch.from_numpy(det).view(1, -1).topk(2)
    expected = sorted([int(i) % 20, int(i) // 20] for i in ind[0])
    assert expected == [[3, 15], [17, 9]]
    p = DecodeParams(max_num_people=2, joint_order=(0,))
    grouped, _ = parse(det, tags, p, adjust=False, refine=False)
    assert sorted(grouped[:, 0, :2].tolist()) == expected
    by_index, _ = parse(
        det,
        tags,
        DecodeParams(max_num_people=2, joint_order=(0,), topk_ties="index"),
        adjust=False,
        refine=False,
    )
    assert sorted(by_index[:, 0, :2].tolist()) == [[3, 15], [12, 2]]

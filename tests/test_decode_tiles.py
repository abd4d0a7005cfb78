"""The per-tile maxima the NMS pass hands to refine, and refine's tile pruning on maps large enough to
have many tiles (the other decode tests use small maps): both against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
from decode_reference import reference_parse
from hypothesis import given, settings
from hypothesis import strategies as st

from hhrnet_rt.config import DecodeParams
from hhrnet_rt.decode import parse
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


@pytest.mark.parametrize("threshold", [0.1, 0.0, -0.05])
@pytest.mark.parametrize("shape", [(3, 16, 16), (2, 37, 53), (2, 1, 70), (1, 64, 5)])
def test_tile_maxima_match_numpy(shape, threshold):
    rng = np.random.default_rng(sum(shape))
    hm = rng.uniform(-0.2, 1.0, shape).astype(np.float32)
    hm[rng.random(shape) < 0.3] = 0.0
    hm[rng.random(shape) < 0.05] = np.nan
    _, _, _, tmax = top_k_peaks(hm, float32_threshold(threshold), 30, 2)
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


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), tag_dims=st.sampled_from([1, 2]))
def test_refine_ties_on_quantised_maps_equal_reference(seed, tag_dims):
    """Values at or below the detection threshold coarsely quantised (zeros, negatives and small
    positives: many equal refine targets) and tags on a half-unit grid (exact half-way distances):
    first-occurrence ties across tiles must resolve as numpy's. Values above the threshold stay
    continuous, so top-k has no ties (their order in torch.topk is implementation-defined)."""
    rng = np.random.default_rng(seed)
    K, H, W = 17, 70, 90
    det = rng.uniform(-0.3, 1.0, (K, H, W))
    low = det <= 0.1
    det[low] = np.round(det[low] * 32) / 32
    det[rng.random((K, H, W)) < 0.6] = 0.0
    tags = np.round(rng.normal(0, 1.5, (K, H, W, tag_dims)) * 2) / 2
    det, tags = det.astype(np.float32), tags.astype(np.float32)
    params = DecodeParams(max_num_people=8)
    assert_same(parse(det, tags, params), reference_parse(det, tags, params))

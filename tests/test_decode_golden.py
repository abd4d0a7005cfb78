"""parse() and top_k() against the official HeatmapParser outputs stored in golden/grouping_cases.npz."""

from __future__ import annotations

import numpy as np
import pytest

from hhrnet_rt.decode import parse, top_k

CASES = range(9)
VARIANTS = {"raw": (False, False), "a": (True, False), "ar": (True, True)}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", CASES)
def test_parse_matches_official(golden_npz, case, variant):
    g = golden_npz("grouping_cases")
    det = g[f"case{case}_det"][0]
    tag = g[f"case{case}_tag"][0]
    do_adjust, do_refine = VARIANTS[variant]
    grouped, scores = parse(det, tag, adjust=do_adjust, refine=do_refine)
    expected = g[f"case{case}_{variant}_grouped"]
    expected_scores = g[f"case{case}_{variant}_scores"]
    assert grouped.dtype == np.float32 and scores.dtype == np.float32
    assert grouped.shape == expected.shape  # same people count, K and 3 + L
    np.testing.assert_array_equal(grouped[..., :2], expected[..., :2])  # x, y exact, same order
    np.testing.assert_allclose(grouped[..., 2:], expected[..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6, atol=0)


@pytest.mark.parametrize("case", CASES)
def test_top_k_matches_official(golden_npz, case):
    g = golden_npz("grouping_cases")
    det = g[f"case{case}_det"][0]
    tag = g[f"case{case}_tag"][0]
    ours = top_k(det, tag)
    val_ref = g[f"case{case}_topk_val_k"]
    loc_ref = g[f"case{case}_topk_loc_k"]
    tag_ref = g[f"case{case}_topk_tag_k"]
    for j in range(det.shape[0]):
        keep = val_ref[j] > 0.1  # entries with val 0 are tied zeros: their order is implementation-defined
        n = int(keep.sum())
        assert ours["counts"][j] == n
        assert np.all(keep[:n])  # the official ones above threshold are a prefix (descending order)
        np.testing.assert_array_equal(ours["val_k"][j, :n], val_ref[j, :n])
        np.testing.assert_array_equal(ours["loc_k"][j, :n], loc_ref[j, :n])
        np.testing.assert_array_equal(ours["tag_k"][j, :n], tag_ref[j, :n])


def test_multiscale_case_parse_inputs(golden_npz):
    """The stored multi-scale parse input (real tiny-model maps, L=2) decodes to the stored people."""
    m = golden_npz("multiscale_case")
    grouped, scores = parse(m["final_heatmaps"][0], m["tags"][0])
    assert grouped.shape == m["grouped"].shape
    np.testing.assert_array_equal(grouped[..., :2], m["grouped"][..., :2])
    np.testing.assert_allclose(grouped[..., 2:], m["grouped"][..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, m["scores"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("flip", [True, False])
def test_pipeline_case_parse_inputs(golden_npz, flip):
    """The tiny model's real projected maps from golden/pipeline_case.npz (flip: L=2, else L=1)."""
    p = golden_npz("pipeline_case")
    if flip:
        det = (p["s128_heatmaps_orig"] + p["s128_heatmaps_flip"]) / 2.0  # asserted exact upstream
        tags = p["s128_flip_tags"]
    else:
        det, tags = p["s128_heatmaps_orig"], p["s128_flip_tags"][..., 0:1]
    name = "flip" if flip else "noflip"
    grouped, scores = parse(det[0], tags[0])
    expected = p[f"s128_{name}_grouped"]
    assert grouped.shape == expected.shape
    np.testing.assert_array_equal(grouped[..., :2], expected[..., :2])
    np.testing.assert_allclose(grouped[..., 2:], expected[..., 2:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, p[f"s128_{name}_scores"], rtol=1e-6, atol=0)

"""PoseGraph and project_and_aggregate against the official intermediates (golden pipeline/multiscale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hhrnet_rt.core.tag_layout import by_pixel
from hhrnet_rt.model.graph import PoseGraph, project_and_aggregate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class StoredOutputs(nn.Module):
    """Returns the golden network outputs for the golden input and its mirror image; anything else fails.

    Works per image of the batch, because the flip graph runs ``[x, flip(x)]`` as one batch of 2.
    """

    def __init__(self, z):
        super().__init__()
        self.x = torch.from_numpy(z["s128_input"])
        self.z = z

    def _one(self, x):
        if torch.equal(x, self.x):
            which = "orig"
        elif torch.equal(x, torch.flip(self.x, [3])):
            which = "flipinput"
        else:
            raise AssertionError("the graph fed the network something other than x or flip(x)")
        return [torch.from_numpy(self.z[f"s128_model_out_{which}_{i}"]) for i in (0, 1)]

    def forward(self, x):
        outs = [self._one(x[i : i + 1]) for i in range(x.shape[0])]
        return tuple(torch.cat([o[i] for o in outs]) for i in (0, 1))


@pytest.fixture(scope="module")
def pipeline(golden_npz):
    return golden_npz("pipeline_case")


def _run(graph, x):
    """Heatmaps and the per-pixel view of the planar tags, as the golden data (official layout) has them."""
    with torch.inference_mode():
        heatmaps, tags = graph(torch.from_numpy(x))
    return heatmaps.numpy(), by_pixel(tags.numpy())


def test_flip_graph_matches_official_intermediates(pipeline):
    heatmaps, tags = _run(PoseGraph(StoredOutputs(pipeline), num_joints=17), pipeline["s128_input"])
    final = (pipeline["s128_heatmaps_orig"] + pipeline["s128_heatmaps_flip"]) / np.float32(2.0)
    assert heatmaps.shape == (1, 17, 128, 192) and tags.shape == (1, 17, 128, 192, 2)
    # The brief allows atol 1e-5; the graph follows the official float order, so it is bit-exact.
    np.testing.assert_allclose(heatmaps, final, rtol=0, atol=1e-5)
    np.testing.assert_allclose(tags, pipeline["s128_flip_tags"], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(heatmaps, final)
    np.testing.assert_array_equal(tags, pipeline["s128_flip_tags"])


def test_noflip_graph_matches_official_intermediates(pipeline):
    graph = PoseGraph(StoredOutputs(pipeline), flip=False, num_joints=17)
    heatmaps, tags = _run(graph, pipeline["s128_input"])
    np.testing.assert_array_equal(heatmaps, pipeline["s128_heatmaps_orig"])
    np.testing.assert_array_equal(tags, pipeline["s128_flip_tags"][..., :1])


def test_stats_of_the_parse_inputs(pipeline):
    for flip in (True, False):
        heatmaps, tags = _run(
            PoseGraph(StoredOutputs(pipeline), flip=flip, num_joints=17), pipeline["s128_input"]
        )
        name = "flip" if flip else "noflip"
        np.testing.assert_allclose(_stats(heatmaps), pipeline[f"s128_{name}_final_heatmaps_stats"], rtol=1e-9)
        np.testing.assert_allclose(_stats(tags), pipeline[f"s128_{name}_tags_stats"], rtol=1e-9)


def test_unprojected_graph_then_aggregation_equals_projected_graph(pipeline):
    net = StoredOutputs(pipeline)
    x = pipeline["s128_input"]
    heatmaps, tags = _run(PoseGraph(net, num_joints=17), x)
    with torch.inference_mode():
        half = PoseGraph(net, project=False, num_joints=17)(torch.from_numpy(x))
        assert half[0].shape == (1, 17, 2, 64, 96) and half[1].shape == (1, 17, 2, 64, 96)
        h2, t2 = project_and_aggregate([(1.0, *half)], (128, 192))
    np.testing.assert_array_equal(h2.numpy(), heatmaps)
    np.testing.assert_array_equal(by_pixel(t2.numpy()), tags)


def test_tags_leave_the_graph_as_planes(pipeline):
    """(N, K, L, H, W) contiguous: each joint's L planes side by side, no per-pixel interleaving."""
    for flip, planes in ((True, 2), (False, 1)):
        graph = PoseGraph(StoredOutputs(pipeline), flip=flip, num_joints=17)
        with torch.inference_mode():
            _, tags = graph(torch.from_numpy(pipeline["s128_input"]))
        assert tags.shape == (1, 17, planes, 128, 192) and tags.is_contiguous()
        np.testing.assert_array_equal(
            tags[0, 3, planes - 1].numpy(), pipeline["s128_flip_tags"][0, 3, ..., planes - 1]
        )


def test_flip_index_is_applied(pipeline):
    # A wrong permutation (identity) must change the result: the check above is not vacuous.
    graph = PoseGraph(StoredOutputs(pipeline), flip_index=list(range(17)), num_joints=17)
    heatmaps, _ = _run(graph, pipeline["s128_input"])
    final = (pipeline["s128_heatmaps_orig"] + pipeline["s128_heatmaps_flip"]) / np.float32(2.0)
    assert np.abs(heatmaps - final).max() > 1e-3


def test_flip_needs_a_joint_count():
    with pytest.raises(ValueError, match="flip_index"):
        PoseGraph(nn.Identity())
    with pytest.raises(ValueError, match="entries"):
        PoseGraph(nn.Identity(), flip_index=[0, 1], num_joints=17)


def test_project_and_aggregate_needs_scale_one():
    t = torch.zeros(1, 2, 4, 4, 1)
    with pytest.raises(ValueError, match="1.0"):
        project_and_aggregate([(2.0, t, t), (0.5, t, t)], (8, 8))
    with pytest.raises(ValueError, match="at least one"):
        project_and_aggregate([], (8, 8))


def _stats(a):
    a = np.asarray(a, np.float64)
    return np.array([a.sum(), np.abs(a).sum(), a.min(), a.max(), (a * a).sum()])


def test_batch_of_two_equals_single_runs(tiny_network, pipeline):
    x = pipeline["s128_input"]
    x2 = np.concatenate([x, x[:, :, :, ::-1]], axis=0)
    graph = PoseGraph(tiny_network).eval()
    h, t = _run(graph, np.ascontiguousarray(x2))
    for i in range(2):
        hi, ti = _run(graph, np.ascontiguousarray(x2[i : i + 1]))
        np.testing.assert_allclose(h[i : i + 1], hi, rtol=0, atol=1e-5)
        np.testing.assert_allclose(t[i : i + 1], ti, rtol=0, atol=1e-5)


def test_multiscale_with_the_tiny_model(tiny_network, golden_npz):
    """Official multi-scale: per-scale projected maps (stats) and the aggregated final maps and tags."""
    m = golden_npz("multiscale_case")
    graph = PoseGraph(tiny_network, project=False).eval()
    base_hw = (int(m["base_size_wh"][1]), int(m["base_size_wh"][0]))
    per_scale = []
    with torch.inference_mode():
        for prefix, scale in (("0p5", 0.5), ("2p0", 2.0), ("1p0", 1.0)):  # any order: sorted inside
            heatmaps, tags = graph(torch.from_numpy(m[f"scale{prefix}_input"]))
            per_scale.append((scale, heatmaps, tags))
            proj = [
                torch.nn.functional.interpolate(
                    heatmaps[:, :, f], base_hw, mode="bilinear", align_corners=False
                )
                for f in range(2)
            ]
            # Network outputs may differ from the golden run by ~1e-6 (thread count); stats are sums.
            for name, arr in (("orig", proj[0]), ("flip", proj[1]), ("avg", (proj[0] + proj[1]) / 2.0)):
                np.testing.assert_allclose(
                    _stats(arr), m[f"scale{prefix}_heatmaps_{name}_stats"], rtol=1e-5, atol=1e-5
                )
            for f, name in enumerate(("orig", "flip")):
                tag = torch.nn.functional.interpolate(
                    tags[:, :, f], base_hw, mode="bilinear", align_corners=False
                )
                np.testing.assert_allclose(
                    _stats(tag), m[f"scale{prefix}_tags_{name}_stats"], rtol=1e-5, atol=1e-5
                )
        final, tags = project_and_aggregate(per_scale, base_hw)
    np.testing.assert_allclose(final.numpy(), m["final_heatmaps"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(by_pixel(tags.numpy()), m["tags"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(_stats(final), m["final_heatmaps_stats"], rtol=1e-6)
    np.testing.assert_allclose(_stats(tags), m["tags_stats"], rtol=1e-6)

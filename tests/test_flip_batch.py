"""The flip test as ONE batch of 2N: same maps as the former two-pass graph, one copy of each convolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hhrnet_rt.core.tag_layout import by_pixel
from hhrnet_rt.model.graph import PoseGraph

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# oneDNN (torch's CPU convolutions) picks its kernel by batch size, so the network's outputs for image i
# of a batch of 2 differ from a batch of 1 in the last bits. Measured on this CPU (tiny golden model,
# 128x192 golden input, outputs up to ~11): 5.1e-6 max |diff| (3.3e-6 on the 1/2 head); with oneDNN
# off, 0. Everything after the network is per element and in the official order: the projected maps
# differ by 1.7e-6 (heatmaps) and 9.5e-7 (tags). 5e-5: 10x headroom for other CPUs' kernels. End to end
# (tests/test_estimator.py, golden pipeline case, 1 thread): same people, x/y identical (to the old graph
# and to the golden run), joint scores move by at most 1.2e-6 against the old graph (asserted: 1e-5).
BATCH_ATOL = 5e-5


class _CountingNetwork(nn.Module):
    """Wraps a network and records the batch size of every call."""

    def __init__(self, network):
        super().__init__()
        self.network = network
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(int(x.shape[0]))
        return self.network(x)


def _two_pass_reference(network, x, flip_index, *, project=True):
    """The former PoseGraph: one network call per pass (original, mirrored), official float order."""
    size = x.shape[2:]

    def one_pass(inp, mirrored):
        out0, out1 = network(inp)
        k = out1.shape[1]
        up0 = F.interpolate(out0, size=out1.shape[2:], mode="bilinear", align_corners=False)
        hm0, tags, hm1 = up0[:, :k], up0[:, k:], out1
        if mirrored:
            hm0, tags, hm1 = (torch.flip(t, [3])[:, flip_index] for t in (hm0, tags, hm1))
        return (hm0 + hm1) / 2, tags

    hms, tgs = zip(one_pass(x, False), one_pass(torch.flip(x, [3]), True), strict=True)
    if not project:
        return torch.stack(hms, dim=4), torch.stack(tgs, dim=4)
    up = [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in hms + tgs]
    return (up[0] + up[1]) / 2.0, torch.stack(up[2:], dim=4)


@pytest.fixture(scope="module")
def golden_input(golden_npz):
    return torch.from_numpy(golden_npz("pipeline_case")["s128_input"])


@pytest.mark.parametrize("project", [True, False], ids=["projected", "half"])
@pytest.mark.parametrize("batch", [1, 2])
def test_flip_batch_equals_the_two_pass_graph(tiny_network, golden_input, project, batch):
    x = torch.cat([golden_input, golden_input.flip(2)])[:batch]  # a second, different image
    counting = _CountingNetwork(tiny_network)
    graph = PoseGraph(counting, project=project, num_joints=17).eval()
    with torch.inference_mode():
        heatmaps, tags = graph(x)
        assert counting.batches == [2 * batch]  # one network call on [x, flip(x)]
        ref_heatmaps, ref_tags = _two_pass_reference(tiny_network, x, graph.flip_index, project=project)
    # The graph returns planes (N, K, P, h, w); the former graph stacked the passes last.
    heatmaps, tags = (heatmaps if project else by_pixel(heatmaps)), by_pixel(tags)
    assert heatmaps.shape == ref_heatmaps.shape and tags.shape == ref_tags.shape
    np.testing.assert_allclose(heatmaps.numpy(), ref_heatmaps.numpy(), rtol=0, atol=BATCH_ATOL)
    np.testing.assert_allclose(tags.numpy(), ref_tags.numpy(), rtol=0, atol=BATCH_ATOL)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch's notice when toggling
def test_flip_batch_is_exact_when_the_convolutions_are(tiny_network, golden_input):
    # With oneDNN off, torch's reference convolution does not depend on the batch size: the rest of the
    # graph must then give bit-identical maps (the split, flip-back and permutation are exact).
    graph = PoseGraph(tiny_network, num_joints=17).eval()
    with torch.backends.mkldnn.flags(enabled=False), torch.inference_mode():
        heatmaps, tags = graph(golden_input)
        ref_heatmaps, ref_tags = _two_pass_reference(tiny_network, golden_input, graph.flip_index)
    np.testing.assert_array_equal(heatmaps.numpy(), ref_heatmaps.numpy())
    # Exact also for the tags: upsampling the paired planes in one call is per channel.
    np.testing.assert_array_equal(by_pixel(tags).numpy(), ref_tags.numpy())


def test_no_flip_runs_the_batch_as_given(tiny_network, golden_input):
    counting = _CountingNetwork(tiny_network)
    with torch.inference_mode():
        PoseGraph(counting, flip=False, num_joints=17)(golden_input)
    assert counting.batches == [1]


def _conv_count(graph, path):
    import onnx

    from hhrnet_rt.artifacts.sidecar import INPUT_NAME, OUTPUT_NAMES, dynamic_axes
    from hhrnet_rt.model.onnx_export import export_onnx

    export_onnx(
        graph.eval(),
        path,
        example_input=torch.zeros(1, 3, 64, 64),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_axes=dynamic_axes(graph.project),
    )
    model = onnx.load(str(path))
    return sum(node.op_type == "Conv" for node in model.graph.node)


@pytest.mark.slow
def test_onnx_flip_graph_holds_each_convolution_once(tiny_network, tmp_path):
    n_layers = sum(isinstance(m, nn.Conv2d) for m in tiny_network.modules())
    plain = _conv_count(PoseGraph(tiny_network, flip=False, num_joints=17), tmp_path / "noflip.onnx")
    flipped = _conv_count(PoseGraph(tiny_network, flip=True, num_joints=17), tmp_path / "flip.onnx")
    # The tracing exporter folds BatchNorm into Conv and keeps every Conv2d; the former two-pass graph
    # had 2 * n_layers here.
    assert plain == n_layers > 0
    assert flipped == plain


def test_onnx_cache_key_follows_the_graph_layout(tiny_network, monkeypatch):
    # Files exported by the former two-pass graph must not be reused from the ONNX Runtime cache.
    from hhrnet_rt.runtime.backends.onnx_cache import graph_cache_key

    graph = PoseGraph(tiny_network, num_joints=17)
    before = graph_cache_key(graph)
    monkeypatch.setattr(PoseGraph, "LAYOUT", "two-pass")
    assert graph_cache_key(graph) != before

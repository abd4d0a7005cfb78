"""Planar tags (hhrnet_rt.core.tag_layout): the per-pixel view the decoders' API takes costs no copy, and
decoding it gives exactly what decoding an interleaved array of the same values gives."""

from __future__ import annotations

import numpy as np
import torch

from hhrnet_rt.core.tag_layout import by_pixel, interleaved_problem, planar
from hhrnet_rt.decode import parse, top_k
from hhrnet_rt.decode.synthetic import synthesize


def test_by_pixel_is_a_view_and_planar_undoes_it_without_a_copy():
    planes = np.arange(2 * 3 * 2 * 4 * 5, dtype=np.float32).reshape(2, 3, 2, 4, 5)  # (N, K, L, H, W)
    view = by_pixel(planes[1])
    assert view.shape == (3, 4, 5, 2) and np.shares_memory(view, planes)
    assert view[2, 3, 4, 1] == planes[1, 2, 1, 3, 4]
    back = planar(view)
    assert back.flags.c_contiguous and np.shares_memory(back, planes)
    interleaved = np.ascontiguousarray(view)  # what older exports returned: a copy is needed there
    np.testing.assert_array_equal(planar(interleaved), planes[1])
    assert not np.shares_memory(planar(interleaved), interleaved)
    t = torch.from_numpy(planes)
    assert by_pixel(t).shape == (2, 3, 4, 5, 2) and by_pixel(t).data_ptr() == t.data_ptr()


def test_decoding_the_planar_view_equals_decoding_interleaved_tags():
    for L in (1, 2):
        m = synthesize(6, 17, 64, 80, L, seed=L, sigma=2.0)
        view = by_pixel(np.ascontiguousarray(np.moveaxis(m.tags, -1, 1)))  # planes, seen per pixel
        assert view.flags.c_contiguous == (L == 1) and np.array_equal(view, m.tags)  # L = 1: same memory
        ours, ref = parse(m.heatmaps, view), parse(m.heatmaps, m.tags)
        assert ours[0].shape[0] > 0
        np.testing.assert_array_equal(ours[0], ref[0])  # same inputs, same kernels: exact
        np.testing.assert_array_equal(ours[1], ref[1])
        np.testing.assert_array_equal(top_k(m.heatmaps, view)["tag_k"], top_k(m.heatmaps, m.tags)["tag_k"])


def test_interleaved_outputs_are_recognised():
    assert interleaved_problem((1, 17, 64, 96), (1, 17, 2, 64, 96)) is None
    assert "rebuild it" in interleaved_problem((1, 17, 64, 96), (1, 17, 64, 96, 2))
    assert "are not (N, K, L, H, W) planes" in interleaved_problem((1, 17, 64, 96), (1, 17, 64, 2))

"""DecodeParams.topk_ties: the "cpu" order replays torch.topk on the CPU exactly, ties included.

The official parser takes ``torch.topk`` of ``det * (maxpool(det) == det)``; among equal values torch
promises no order, yet it decides which person a joint joins. These tests compare hhrnet-rt's replay
with torch itself on maps full of exact ties, through both branches of torch's CPU kernel
(``partial_sort`` when ``64 * k <= H * W``, else ``nth_element`` + ``sort``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hhrnet_rt.core.errors import InputError
from hhrnet_rt.decode import top_k
from hhrnet_rt.decode.params import DecodeParams
from hhrnet_rt.decode.topk_order import topk_in_place


def official_top_k(det: np.ndarray, k: int, radius: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The official NMS + ``torch.topk`` on (K, H, W): (values, flat indices), each (K, k)."""
    t = torch.from_numpy(det)[None]
    pooled = torch.nn.functional.max_pool2d(t, 2 * radius + 1, 1, radius)
    nms = (t * (pooled == t).float()).view(1, det.shape[0], -1)
    val, ind = nms.topk(k, dim=2)
    return val[0].numpy(), ind[0].numpy()


def tied_maps(seed: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Maps of few distinct levels: many NMS peaks share a value, some above 0.1 and many at 0."""
    rng = np.random.default_rng(seed)
    levels = np.array([0.0, 0.05, 0.3, 0.3, 0.6, 0.9], np.float32)
    det = levels[rng.integers(0, len(levels), shape)]
    # Sparse isolated peaks so that many survive NMS with equal values.
    det *= rng.random(shape) < 0.08
    return det.astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 64, 64), (2, 40, 56), (2, 20, 24), (1, 6, 7)])
@pytest.mark.parametrize("seed", range(4))
def test_cpu_order_equals_torch_topk(seed, shape):
    det = tied_maps(seed, shape)
    tags = np.zeros(shape + (1,), np.float32)
    K, H, W = shape
    k = min(30, H * W)
    params = DecodeParams(max_num_people=k)
    ours = top_k(det, tags, params)
    ref_val, ref_ind = official_top_k(det, k)
    for j in range(K):
        n = int((ref_val[j] > 0.1).sum())
        assert ours["counts"][j] == n
        np.testing.assert_array_equal(ours["val_k"][j, :n], ref_val[j, :n])
        flat = ours["loc_k"][j, :n, 1] * W + ours["loc_k"][j, :n, 0]
        np.testing.assert_array_equal(flat, ref_ind[j, :n])


def test_the_two_orders_differ_only_among_ties():
    det = tied_maps(7, (3, 64, 64))
    tags = np.zeros((3, 64, 64, 1), np.float32)
    cpu = top_k(det, tags, DecodeParams(topk_ties="cpu"))
    index = top_k(det, tags, DecodeParams(topk_ties="index"))
    np.testing.assert_array_equal(cpu["counts"], index["counts"])
    np.testing.assert_array_equal(cpu["val_k"], index["val_k"])
    # The same candidates, but at least one group of equal values in another order: the switch matters.
    assert not np.array_equal(cpu["loc_k"], index["loc_k"])
    for j in range(3):
        n = cpu["counts"][j]
        flat = index["loc_k"][j, :n, 1] * 64 + index["loc_k"][j, :n, 0]
        for v in np.unique(index["val_k"][j, :n]):
            same = flat[index["val_k"][j, :n] == v]
            assert np.all(np.diff(same) > 0)  # "index": equal values by flat index, lowest first


@pytest.mark.parametrize("n,k", [(50, 7), (500, 7), (4000, 30), (33, 33)])
def test_replay_of_both_branches_on_raw_values(n, k):
    """topk_in_place (the libstdc++ replay) on arbitrary tied keys, negatives included, equals torch."""
    rng = np.random.default_rng(n + k)
    qv = rng.integers(-3, 4, n).astype(np.float32) / 2
    val, ind = torch.from_numpy(qv.copy()).topk(k)
    qi = np.arange(n, dtype=np.int64)
    topk_in_place(qv, qi, k)
    np.testing.assert_array_equal(qv[:k], val.numpy())
    np.testing.assert_array_equal(qi[:k], ind.numpy())


def test_unknown_tie_rule_is_refused():
    det = np.zeros((17, 8, 8), np.float32)
    with pytest.raises(InputError, match="topk_ties"):
        top_k(det, np.zeros((17, 8, 8, 1), np.float32), DecodeParams(topk_ties="cuda"))

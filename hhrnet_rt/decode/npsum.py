"""numpy's float32 summation orders, reproduced so means come out bit-identical to the official code.

numpy sums a float32 reduction in float32, and *how* depends on the memory layout (checked against
numpy 2.4 on every length up to 20; ``tests/test_decode_properties.py`` re-checks it):

- a reduction along a contiguous or strided 1-D run (``person[:, 2].mean()`` for the score, and
  ``np.mean(list_of_1_element_tags, axis=0)`` because the length-1 axis is dropped) uses numpy's
  *pairwise* sum: below 8 terms left to right; from 8 to 128 terms eight interleaved accumulators
  combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the remainder left to right;
- ``np.mean(list_of_L_element_tags, axis=0)`` with L >= 2 walks the list in order: a plain sequential
  sum per tag dimension.

The mean is then that float32 sum divided by the count in float32.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel


@kernel
def _pairwise_block(a, s, n):
    """numpy's pairwise base case for ``a[s:s+n]``, n <= 128."""
    if n < 8:
        res = np.float32(0.0)
        for i in range(s, s + n):
            res = res + a[i]
        return res
    r0 = a[s]
    r1 = a[s + 1]
    r2 = a[s + 2]
    r3 = a[s + 3]
    r4 = a[s + 4]
    r5 = a[s + 5]
    r6 = a[s + 6]
    r7 = a[s + 7]
    i = s + 8
    stop = s + n - n % 8
    while i < stop:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < s + n:
        res = res + a[i]
        i += 1
    return res


@kernel
def _pairwise_range(a, s, n):
    """numpy's recursive split (half, rounded down to a multiple of 8) without recursion: Numba's
    disk cache crashes on recursive functions, so the call tree is walked with explicit stacks."""
    if n <= 128:
        return _pairwise_block(a, s, n)
    seg_s = np.empty(64, np.int64)
    seg_n = np.empty(64, np.int64)
    state = np.empty(64, np.int64)
    vals = np.empty(64, np.float32)
    top = 0
    nv = 0
    seg_s[0] = s
    seg_n[0] = n
    state[0] = 0
    while top >= 0:
        cs = seg_s[top]
        cn = seg_n[top]
        if cn <= 128:
            vals[nv] = _pairwise_block(a, cs, cn)
            nv += 1
            top -= 1
            continue
        n2 = cn // 2
        n2 -= n2 % 8
        if state[top] == 0:
            state[top] = 1
            top += 1
            seg_s[top] = cs
            seg_n[top] = n2
            state[top] = 0
        elif state[top] == 1:
            state[top] = 2
            top += 1
            seg_s[top] = cs + n2
            seg_n[top] = cn - n2
            state[top] = 0
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
    return vals[0]


@kernel
def pairwise_sum_f32(a, n):
    """numpy's float32 ``pairwise_sum`` of ``a[:n]`` (1-D float32 array), as float32."""
    return _pairwise_range(a, 0, n)


@kernel
def mean_rows_f32(rows, n, out):
    """``np.mean(list(rows[:n]), axis=0)`` for float32 rows of length L, written into ``out`` (L,).

    L == 1 takes numpy's pairwise path, L >= 2 the sequential one (see the module docstring).
    """
    L = rows.shape[1]
    cnt = np.float32(n)
    if L == 1:
        out[0] = pairwise_sum_f32(rows[:, 0], n) / cnt
        return
    for d in range(L):
        s = np.float32(0.0)
        for i in range(n):
            s = s + rows[i, d]
        out[d] = s / cnt

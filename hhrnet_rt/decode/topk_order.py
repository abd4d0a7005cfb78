"""``torch.topk`` on the CPU, step by step: which of equal peaks the official parser gets first.

The official ``top_k`` takes ``torch.topk(30)`` of each joint's NMS map. Among equal values torch promises
no order, but its CPU kernel (``aten/src/ATen/native/TopKImpl.h``, unchanged in torch 2.x) is a fixed
algorithm: pairs (value, flat index) go through libstdc++'s ``std::partial_sort`` (a heap of the first k
pairs, every later pair that beats the heap's smallest replaces it, then ``sort_heap``) when
``64 * k <= n`` pixels, else ``std::nth_element`` (introselect) then ``std::sort`` of the first k - 1, with
the comparator ``a.value > b.value``. Which equal pair ends first depends on the heap's (or the
partitions') whole history, including pixels far below the detection threshold, so the steps are
reproduced here as libstdc++ writes them (``bits/stl_heap.h``, ``bits/stl_algo.h``): same moves, same
comparisons. ``tests/test_topk_order.py`` checks the result against ``torch.topk`` itself.

Only the comparator's NaN rule is not followed: hhrnet-rt never lets a NaN pixel be a candidate, so the
caller gives NaN pixels the key ``-inf`` (see :mod:`.peaks`).

Arrays: ``qv`` (float32 keys) and ``qi`` (int64 flat indices) are one array of pairs; ``first`` etc. are
positions in them, as the iterators of the C++ code.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel

SORT_THRESHOLD = 16  # libstdc++ _S_threshold: std::sort leaves runs this short to insertion sort


@kernel
def adjust_heap(qv, qi, first, hole, length, v, i):
    """``std::__adjust_heap``: sift the hole at ``first + hole`` down to a leaf, then push (v, i) up."""
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if qv[first + child] > qv[first + child - 1]:
            child -= 1
        qv[first + hole] = qv[first + child]
        qi[first + hole] = qi[first + child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        qv[first + hole] = qv[first + child - 1]
        qi[first + hole] = qi[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and qv[first + parent] > v:
        qv[first + hole] = qv[first + parent]
        qi[first + hole] = qi[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    qv[first + hole] = v
    qi[first + hole] = i


@kernel
def make_heap(qv, qi, first, last):
    """``std::__make_heap`` on [first, last)."""
    length = last - first
    if length < 2:
        return
    parent = (length - 2) // 2
    while True:
        adjust_heap(qv, qi, first, parent, length, qv[first + parent], qi[first + parent])
        if parent == 0:
            return
        parent -= 1


@kernel
def pop_heap_into(qv, qi, first, middle, at):
    """``std::__pop_heap(first, middle, at)``: (qv[at], qi[at]) enters the heap, its top goes to ``at``."""
    v = qv[at]
    i = qi[at]
    qv[at] = qv[first]
    qi[at] = qi[first]
    adjust_heap(qv, qi, first, 0, middle - first, v, i)


@kernel
def sort_heap(qv, qi, first, last):
    """``std::__sort_heap``: the heap [first, last) into comparator order (descending values)."""
    while last - first > 1:
        last -= 1
        pop_heap_into(qv, qi, first, last, last)


@kernel
def heap_select(qv, qi, first, middle, last):
    """``std::__heap_select``: the best ``middle - first`` pairs of [first, last) into a heap at the front."""
    make_heap(qv, qi, first, middle)
    for at in range(middle, last):
        if qv[at] > qv[first]:
            pop_heap_into(qv, qi, first, middle, at)


@kernel
def _swap(qv, qi, a, b):
    v = qv[a]
    qv[a] = qv[b]
    qv[b] = v
    i = qi[a]
    qi[a] = qi[b]
    qi[b] = i


@kernel
def _partition_pivot(qv, qi, first, last):
    """``std::__unguarded_partition_pivot``: median of three moved to ``first``, then Hoare partition."""
    mid = first + (last - first) // 2
    a, b, c = first + 1, mid, last - 1
    if qv[a] > qv[b]:
        if qv[b] > qv[c]:
            _swap(qv, qi, first, b)
        elif qv[a] > qv[c]:
            _swap(qv, qi, first, c)
        else:
            _swap(qv, qi, first, a)
    elif qv[a] > qv[c]:
        _swap(qv, qi, first, a)
    elif qv[b] > qv[c]:
        _swap(qv, qi, first, c)
    else:
        _swap(qv, qi, first, b)
    lo, hi = first + 1, last
    pivot = qv[first]
    while True:
        while qv[lo] > pivot:
            lo += 1
        hi -= 1
        while pivot > qv[hi]:
            hi -= 1
        if not lo < hi:
            return lo
        _swap(qv, qi, lo, hi)
        lo += 1


@kernel
def _linear_insert(qv, qi, last):
    """``std::__unguarded_linear_insert``."""
    v = qv[last]
    i = qi[last]
    prev = last - 1
    while v > qv[prev]:
        qv[last] = qv[prev]
        qi[last] = qi[prev]
        last = prev
        prev -= 1
    qv[last] = v
    qi[last] = i


@kernel
def _insertion_sort(qv, qi, first, last):
    """``std::__insertion_sort``."""
    if first == last:
        return
    for at in range(first + 1, last):
        if qv[at] > qv[first]:
            v = qv[at]
            i = qi[at]
            for m in range(at, first, -1):
                qv[m] = qv[m - 1]
                qi[m] = qi[m - 1]
            qv[first] = v
            qi[first] = i
        else:
            _linear_insert(qv, qi, at)


@kernel
def _log2(n):
    """``std::__lg``: floor(log2(n)) for n >= 1."""
    r = 0
    while n > 1:
        n >>= 1
        r += 1
    return r


@kernel
def nth_element(qv, qi, first, nth, last):
    """``std::nth_element`` (``std::__introselect``)."""
    if first == last or nth == last:
        return
    depth = 2 * _log2(last - first)
    while last - first > 3:
        if depth == 0:
            heap_select(qv, qi, first, nth + 1, last)
            _swap(qv, qi, first, nth)
            return
        depth -= 1
        cut = _partition_pivot(qv, qi, first, last)
        if cut <= nth:
            first = cut
        else:
            last = cut
    _insertion_sort(qv, qi, first, last)


@kernel
def sort(qv, qi, first, last):
    """``std::sort``: ``std::__introsort_loop`` (its recursion on an explicit stack, same order of work)
    then ``std::__final_insertion_sort``."""
    if first == last:
        return
    top = 0
    stack_first = np.empty(128, np.int64)
    stack_last = np.empty(128, np.int64)
    stack_depth = np.empty(128, np.int64)
    stack_first[0], stack_last[0], stack_depth[0] = first, last, 2 * _log2(last - first)
    top = 1
    while top > 0:
        top -= 1
        lo, hi, depth = stack_first[top], stack_last[top], stack_depth[top]
        while hi - lo > SORT_THRESHOLD:
            if depth == 0:
                heap_select(qv, qi, lo, hi, hi)  # std::__partial_sort(lo, hi, hi)
                sort_heap(qv, qi, lo, hi)
                break
            depth -= 1
            cut = _partition_pivot(qv, qi, lo, hi)
            # The C++ code recurses on [cut, hi) first and then loops on [lo, cut): that order is kept
            # by finishing the right part before the left one (pushed below it on the stack).
            stack_first[top], stack_last[top], stack_depth[top] = lo, cut, depth
            top += 1
            lo = cut
    if last - first > SORT_THRESHOLD:
        _insertion_sort(qv, qi, first, first + SORT_THRESHOLD)
        for at in range(first + SORT_THRESHOLD, last):
            _linear_insert(qv, qi, at)
    else:
        _insertion_sort(qv, qi, first, last)


@kernel
def uses_heap(k, n):
    """True when torch's CPU top-k takes ``std::partial_sort`` (``64 * k <= n``), not nth_element."""
    return k * 64 <= n


@kernel
def topk_in_place(qv, qi, k):
    """torch's CPU ``topk(k, largest=True, sorted=True)`` on all n pairs: the first ``k`` are the result."""
    n = qv.shape[0]
    if k <= 0 or n == 0:
        return
    if uses_heap(k, n):
        heap_select(qv, qi, 0, k, n)
        sort_heap(qv, qi, 0, k)
    else:
        nth_element(qv, qi, 0, k - 1, n)
        sort(qv, qi, 0, k - 1)

"""Numba port of the classic ``munkres`` 1.1.x (bmc/munkres) Hungarian algorithm, tie for tie.

The official grouping feeds Munkres cost matrices full of equal costs (``round(dist) * 100 - val``), so
*which* optimal assignment comes out decides who is grouped with whom. Only a step-by-step port of
munkres 1.1.x (1.1.2 and 1.1.4 share the algorithm) reproduces the official people; scipy's solver or
munkres 3.0.0 return other optimal assignments. The steps that decide ties, kept exactly:

- non-square input is padded with zeros to ``max(rows, cols)`` square (zero rows or zero columns);
- step 1 subtracts row minima only;
- step 2 stars zeros row-major;
- step 4 searches with ``__find_a_zero(row, col)``: rows cyclically from ``row``; in each, columns
  cyclically from ``col``; the *last* uncovered zero of the first row that has one wins. After priming
  a zero whose row has a star, the search restarts at ``(row, star_col)``;
- step 5 takes the first star in a column and the first prime in a row;
- step 6 adds the minimum to covered rows, *then* subtracts it from uncovered columns, cell by cell in
  float64 (the round-off decides what is ``== 0`` later); the minimum search starts at ``sys.maxsize``.

The scans are restructured for speed (e.g. the "last zero in cyclic order" is found by scanning that
order backwards), never reordered in a way that could change a result.
"""

from __future__ import annotations

import numpy as np

from hhrnet_rt.decode.cache import kernel

# float(sys.maxsize): munkres 1.1.x starts its minimum search at sys.maxsize. No float64 lies strictly
# between 2**63 - 1 and 2**63, so comparing against 2**63 as a float gives the same answers.
_SYS_MAXSIZE = 9.223372036854775807e18


@kernel
def _find_a_zero(c, row_cov, col_cov, i0, j0):
    """munkres 1.1.x ``__find_a_zero``: last uncovered zero (cyclic from j0) in the first such row."""
    n = c.shape[0]
    i = i0
    for _ in range(n):
        if not row_cov[i]:
            # The original scans j0, j0+1, ... (cyclic) and keeps overwriting its answer, so the last
            # uncovered zero in that order wins: scan the same order backwards and stop at the first.
            for t in range(n - 1, -1, -1):
                j = j0 + t
                if j >= n:
                    j -= n
                if not col_cov[j] and c[i, j] == 0.0:
                    return i, j
        i += 1
        if i == n:
            i = 0
    return -1, -1


@kernel
def solve_square(c):
    """Run munkres 1.1.x steps 1-6 on the square float64 matrix ``c`` (modified in place).

    Returns:
        ``star_col`` (n,) int64: the starred column of each row (every row gets one).
    """
    n = c.shape[0]
    marked = np.zeros((n, n), np.int8)  # 1 = star, 2 = prime
    row_cov = np.zeros(n, np.bool_)
    col_cov = np.zeros(n, np.bool_)
    path = np.zeros((2 * n + 1, 2), np.int64)

    # Step 1: subtract each row's minimum (Python's min keeps the first minimum; the value is the same).
    for i in range(n):
        m = c[i, 0]
        for j in range(1, n):
            if c[i, j] < m:
                m = c[i, j]
        for j in range(n):
            c[i, j] -= m
    # Step 2: star zeros row-major, one per row and column (covers used as scratch, then cleared).
    for i in range(n):
        for j in range(n):
            if c[i, j] == 0.0 and not col_cov[j] and not row_cov[i]:
                marked[i, j] = 1
                col_cov[j] = True
                row_cov[i] = True
                break
    row_cov[:] = False
    col_cov[:] = False

    while True:
        # Step 3: cover the starred columns; done when all n are covered.
        count = 0
        for i in range(n):
            for j in range(n):
                if marked[i, j] == 1 and not col_cov[j]:
                    col_cov[j] = True
                    count += 1
        if count >= n:
            break
        # Steps 4 and 6 alternate until step 4 finds a prime with no star in its row.
        z0_r = -1
        z0_c = -1
        while z0_r < 0:
            # Step 4 (each entry restarts the search at (0, 0), as the original does).
            row = 0
            col = 0
            while True:
                row, col = _find_a_zero(c, row_cov, col_cov, row, col)
                if row < 0:
                    break
                marked[row, col] = 2
                starred = -1  # the column of this row's star
                for j in range(n):
                    if marked[row, j] == 1:
                        starred = j
                        break
                if starred >= 0:
                    col = starred
                    row_cov[row] = True
                    col_cov[col] = False
                else:
                    z0_r = row
                    z0_c = col
                    break
            if z0_r >= 0:
                break
            # Step 6: smallest uncovered value, added to covered rows then subtracted from uncovered
            # columns, in that order on the same cell.
            minval = _SYS_MAXSIZE
            for i in range(n):
                if row_cov[i]:
                    continue
                for j in range(n):
                    if not col_cov[j] and minval > c[i, j]:
                        minval = c[i, j]
            for i in range(n):
                for j in range(n):
                    if row_cov[i]:
                        c[i, j] += minval
                    if not col_cov[j]:
                        c[i, j] -= minval
        # Step 5: alternating path of primes and stars starting at the uncovered prime Z0.
        count = 0
        path[0, 0] = z0_r
        path[0, 1] = z0_c
        while True:
            r = -1
            for i in range(n):
                if marked[i, path[count, 1]] == 1:
                    r = i
                    break
            if r < 0:
                break
            count += 1
            path[count, 0] = r
            path[count, 1] = path[count - 1, 1]
            pc = -1
            for j in range(n):
                if marked[r, j] == 2:
                    pc = j
                    break
            count += 1
            path[count, 0] = r
            path[count, 1] = pc
        for k in range(count + 1):
            if marked[path[k, 0], path[k, 1]] == 1:
                marked[path[k, 0], path[k, 1]] = 0
            else:
                marked[path[k, 0], path[k, 1]] = 1
        row_cov[:] = False
        col_cov[:] = False
        for i in range(n):
            for j in range(n):
                if marked[i, j] == 2:
                    marked[i, j] = 0

    star_col = np.full(n, -1, np.int64)
    for i in range(n):
        for j in range(n):
            if marked[i, j] == 1:
                star_col[i] = j
                break
    return star_col


@kernel
def assign(cost):
    """munkres 1.1.x ``Munkres().compute(cost)`` for a (rows, cols) float64 matrix.

    Returns:
        (rows,) int64: the column assigned to each row, or -1 where the row went to a zero padding
        column (only possible when rows > cols).
    """
    rows, cols = cost.shape
    n = max(rows, cols)
    c = np.zeros((n, n), np.float64)
    c[:rows, :cols] = cost
    star_col = solve_square(c)
    out = np.full(rows, -1, np.int64)
    for i in range(rows):
        if star_col[i] < cols:
            out[i] = star_col[i]
    return out


def munkres(cost) -> np.ndarray:
    """Optimal assignment exactly as the classic ``munkres`` 1.1.x package computes it.

    Args:
        cost: (rows, cols) finite real matrix; rectangular is fine (zero padding, as munkres 1.1.x).

    Returns:
        (n, 2) int64 ``(row, col)`` pairs in row order, the same list ``Munkres().compute(cost)``
        returns; rows assigned to padding are left out. An empty matrix gives shape (0, 2).

    Raises:
        ValueError: ``cost`` is not 2-D or holds NaN/inf (the original would loop or fail on them).

    Example:
        >>> munkres([[400, 150, 400], [400, 450, 600], [300, 225, 300]]).tolist()
        [[0, 1], [1, 0], [2, 2]]
    """
    c = np.array(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"munkres needs a 2-D cost matrix, got shape {c.shape}")
    if c.size == 0:
        return np.zeros((0, 2), np.int64)
    if not np.isfinite(c).all():
        raise ValueError("munkres cost matrix holds NaN or inf; replace them with large finite costs")
    col = assign(c)
    rows = np.flatnonzero(col >= 0)
    return np.stack([rows, col[rows]], axis=1).astype(np.int64)

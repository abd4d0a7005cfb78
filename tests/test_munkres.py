"""The Numba munkres port against the 143 golden matrices and the classic munkres 1.1.4 package."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hhrnet_rt.decode import munkres


def _golden_stems(golden_npz):
    data = golden_npz("munkres_cases")
    return data, sorted({k.rsplit("_", 1)[0] for k in data})


def test_all_golden_munkres_matrices(golden_npz):
    data, stems = _golden_stems(golden_npz)
    assert len(stems) == 143  # 138 recorded from the official grouping + 5 hand-made tie matrices
    wrong = []
    for stem in stems:
        pairs = munkres(data[f"{stem}_cost"])
        expected = data[f"{stem}_pairs"].astype(np.int64).reshape(-1, 2)
        if pairs.shape != expected.shape or not np.array_equal(pairs, expected):
            wrong.append(stem)
    assert not wrong, f"pairs differ from munkres 1.1.4 for {wrong}"


def test_does_not_modify_input_and_returns_int64():
    cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0]])
    before = cost.copy()
    pairs = munkres(cost)
    assert pairs.dtype == np.int64 and pairs.shape == (2, 2)
    assert np.array_equal(cost, before)


def test_edge_shapes_and_rejections():
    assert munkres(np.zeros((0, 3))).shape == (0, 2)
    assert munkres([[7.0]]).tolist() == [[0, 0]]
    # More rows than columns: rows assigned to the zero padding columns are left out, as in 1.1.4.
    assert munkres([[1.0], [0.0], [2.0]]).tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="NaN or inf"):
        munkres([[1.0, np.nan]])
    with pytest.raises(ValueError, match="2-D"):
        munkres([1.0, 2.0])


def _reference_pairs(cost: np.ndarray) -> np.ndarray:
    import munkres as classic  # the 1.1.4 package (dev dependency), used only as a reference

    assert classic.__version__ == "1.1.4"
    out = classic.Munkres().compute(cost.tolist())
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def _brute_force_cost(cost: np.ndarray) -> float:
    rows, cols = cost.shape
    if rows <= cols:
        return min(
            sum(cost[r, c] for r, c in enumerate(p)) for p in itertools.permutations(range(cols), rows)
        )
    return min(sum(cost[r, c] for c, r in enumerate(p)) for p in itertools.permutations(range(rows), cols))


matrices = st.tuples(st.integers(1, 6), st.integers(1, 6)).flatmap(
    lambda shape: st.one_of(
        # Tie-heavy: few distinct small integers (the grouping's rounded costs look like this).
        hnp.arrays(np.float64, shape, elements=st.integers(0, 3).map(float)),
        # Official-style: round(dist) * 100 - val.
        hnp.arrays(np.float64, shape, elements=st.integers(0, 3).map(float)).flatmap(
            lambda a: hnp.arrays(np.float64, shape, elements=st.floats(0.1, 1.0)).map(lambda v: a * 100.0 - v)
        ),
        hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3, allow_nan=False)),
    )
)


@settings(max_examples=150, deadline=None)
@given(matrices)
def test_optimal_and_equal_to_munkres_114(cost):
    pairs = munkres(cost)
    assert np.array_equal(pairs, _reference_pairs(cost))
    rows, cols = cost.shape
    assert len(pairs) == min(rows, cols)
    assert len(set(pairs[:, 0])) == len(pairs) and len(set(pairs[:, 1])) == len(pairs)
    total = float(cost[pairs[:, 0], pairs[:, 1]].sum())
    assert total == pytest.approx(_brute_force_cost(cost), rel=1e-9, abs=1e-6)

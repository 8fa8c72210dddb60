"""m5data.arrays: the sort-based set operations give NumPy's own answers."""

from __future__ import annotations

import numpy as np
import pytest

from m5data import arrays


@pytest.mark.parametrize("dtype", [np.uint64, np.int64, np.int32, np.uint16])
@pytest.mark.parametrize("n,high", [(0, 10), (1, 10), (2, 2), (1000, 50), (20_000, 2**15)])
def test_the_set_operations_equal_numpys(dtype, n, high):
    rng = np.random.default_rng(n + high)
    a = rng.integers(0, high, n).astype(dtype)
    b = rng.integers(0, high, n // 2 + 1).astype(dtype)
    u = arrays.unique(a)
    assert u.dtype == a.dtype and np.array_equal(u, np.unique(a))
    assert np.array_equal(arrays.union(a, b), np.union1d(a, b))
    assert np.array_equal(arrays.isin(a, b), np.isin(a, b))
    assert np.array_equal(arrays.isin(a, b[:0]), np.zeros(n, dtype=bool))


def test_shapes_are_those_of_numpy():
    a = np.array([[5, 1, 5], [3, 1, 9]], dtype=np.uint64)
    assert np.array_equal(arrays.unique(a), [1, 3, 5, 9])
    got = arrays.isin(a, np.array([1, 9], dtype=np.uint64))
    assert got.shape == (2, 3) and got.tolist() == [[False, True, False], [False, True, True]]
    # packed pair keys near the top of the range (lo << 32 | hi) sort and match as unsigned
    top = np.array([2**64 - 1, 2**63, 1, 2**63], dtype=np.uint64)
    assert arrays.unique(top).tolist() == [1, 2**63, 2**64 - 1]
    assert arrays.isin(top, np.array([2**64 - 1], dtype=np.uint64)).tolist() == [True, False, False, False]

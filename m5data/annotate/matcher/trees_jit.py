"""The trees' walk, compiled (numba, cached like the pools' reservoir): one pair at a time, each tree
from its root to a leaf. ``model.Trees.from_json`` guarantees children sit after their parent, so
every walk ends."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def raw(x, roots, feature, threshold, missing_left, left, right, leaf, value, out):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        s = 0.0
        for t in range(roots.shape[0]):
            node = roots[t]
            while not leaf[node]:
                v = x[i, feature[node]]
                go_left = missing_left[node] if np.isnan(v) else v <= threshold[node]
                node = left[node] if go_left else right[node]
            s += value[node]
        out[i] = s


def warm_up() -> None:
    """Compile :func:`raw` (or load it from numba's cache) with the types ``model.Trees`` passes."""
    i, f, b = np.zeros(1, dtype=np.int64), np.zeros(1), np.ones(1, dtype=np.bool_)
    raw(np.zeros((1, 1)), i, i, f, b, i, i, b, f, np.zeros(1))

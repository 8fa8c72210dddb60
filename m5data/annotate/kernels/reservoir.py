"""Top-k selection of score blocks by a per-row reservoir, compiled with numba (faiss's method for large k).

Each query row keeps a buffer of ``2 * kp`` candidates and a threshold: a gallery score enters the
buffer only when it beats the threshold; when the buffer is full, a quickselect moves its ``kp``
best to the front and the threshold becomes the lowest of them. Scores are scanned in windows of
:data:`WINDOW`, whose maximum (a loop that compiles to SIMD) is compared first, so that late in the
gallery, when the threshold is high, a window costs one vector pass. Compared with ``torch.topk``
over every block, this touches each score once and does scalar work only for the few that may
enter the top: on 25k x 250k at dim 256, top-516, it brought the exact search from 1.8x to about
1.05x the time of faiss ``IndexFlatIP`` (benchmarks/bench_pools.py).

Invariant used by the caller's tie handling: every score left out of a row is at most the lowest
score kept. NaN scores never enter (a comparison with NaN is false; no ``fastmath``).

numba comes with librosa (the extract stage); ``available()`` is false where it does not import.
"""

from __future__ import annotations

import numpy as np

WINDOW = 32  # scores per window of the vector pre-check

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency of librosa
    numba = None


def available() -> bool:
    return numba is not None


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _select(values, index, n, kp):  # pragma: no cover - compiled
        """Move the kp largest of values[:n] (with their index) to the front; return the lowest of them."""
        lo, hi = 0, n - 1
        target = kp - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            a, b, c = values[lo], values[mid], values[hi]
            if a < b:
                pivot = b if b < c else (c if a < c else a)
            else:
                pivot = a if a < c else (c if b < c else b)
            i, j = lo, hi
            while i <= j:
                while values[i] > pivot:
                    i += 1
                while values[j] < pivot:
                    j -= 1
                if i <= j:
                    values[i], values[j] = values[j], values[i]
                    index[i], index[j] = index[j], index[i]
                    i += 1
                    j -= 1
            if target <= j:
                hi = j
            elif target >= i:
                lo = i
            else:
                break
        low = values[0]
        for t in range(1, kp):
            low = min(low, values[t])
        return low

    @numba.njit(cache=True, nogil=True)
    def _push_row(row, offset, values, index, count, threshold, kp):  # pragma: no cover - compiled
        n = len(row)
        cap = len(values)
        windows = n // WINDOW
        for w in range(windows + 1):
            j0 = w * WINDOW
            if w < windows:
                m = row[j0]
                for j in range(1, WINDOW):
                    v = row[j0 + j]
                    m = v if v > m else m
                if not m > threshold:
                    continue
                j1 = j0 + WINDOW
            else:
                j1 = n
            for j in range(j0, j1):
                v = row[j]
                if v > threshold:
                    values[count] = v
                    index[count] = offset + j
                    count += 1
                    if count == cap:
                        threshold = _select(values, index, count, kp)
                        count = kp
        return count, threshold

    @numba.njit(cache=True, parallel=True)
    def _push(scores, offset, values, index, count, threshold, kp):  # pragma: no cover - compiled
        for r in numba.prange(scores.shape[0]):
            c, t = _push_row(scores[r], offset, values[r], index[r], count[r], threshold[r], kp)
            count[r] = c
            threshold[r] = t

    @numba.njit(cache=True, parallel=True)
    def _finish(values, index, count, kp):  # pragma: no cover - compiled
        for r in numba.prange(values.shape[0]):
            if count[r] > kp:
                _select(values[r], index[r], count[r], kp)
                count[r] = kp
            for t in range(count[r], kp):
                values[r, t] = -np.inf
                index[r, t] = -1


class Reservoir:
    """The running top-``kp`` of ``rows`` queries over gallery blocks pushed in any order of offsets."""

    def __init__(self, rows: int, kp: int):
        self.kp = kp
        self.values = np.empty((rows, 2 * kp), np.float32)
        self.index = np.empty((rows, 2 * kp), np.int64)
        self.count = np.zeros(rows, np.int64)
        self.threshold = np.full(rows, -np.inf, np.float32)

    def push(self, scores: np.ndarray, offset: int) -> None:
        """Offer a (rows, n) float32 C-contiguous block of scores of gallery rows offset .. offset + n."""
        _push(scores, offset, self.values, self.index, self.count, self.threshold, self.kp)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, kp) scores and gallery indexes, unordered; -inf / -1 where a row had fewer candidates."""
        _finish(self.values, self.index, self.count, self.kp)
        return self.values[:, : self.kp].copy(), self.index[:, : self.kp].copy()

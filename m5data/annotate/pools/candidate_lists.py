"""The kept candidate lists of the pools (``next_run.py``): each query's best ``K + margin``
gallery rows with their scores and a floor, how a full run's search blocks become them, and how an
incremental run merges new candidates into them.

An entry's order is (score to 6 decimals desc, product row asc): the full search's tie-break by
product_id, as the rows are in product_id order. One int64 key per entry carries both
(``(TOP - score x 1e6) << 32 | row``), so ordering a row is one integer sort and merging two
ordered rows a linear pass (compiled with numba where it imports).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..kernels.search import TIE_DECIMALS


@dataclasses.dataclass
class Lists:
    """Per query (rows into the ids, ascending): its best gallery rows (-1: none), scores (-inf: none) and floor."""

    q: np.ndarray  # int64 (nq,)
    cand: np.ndarray  # int32 (nq, L)
    score: np.ndarray  # float32 (nq, L)
    floor: np.ndarray  # float32 (nq,)


def block_lists(hits, g_rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A search block's hits as product rows and scores padded to ``width`` columns."""
    b, k = hits.scores.shape
    cand = np.full((b, width), -1, np.int32)
    score = np.full((b, width), -np.inf, np.float32)
    ok = np.isfinite(hits.scores)
    cand[:, :k] = np.where(ok, g_rows[np.where(ok, hits.index, 0)] if len(g_rows) else -1, -1)
    score[:, :k] = np.where(ok, hits.scores, -np.inf)
    return cand, score


def floors(score: np.ndarray, available: np.ndarray) -> np.ndarray:
    """A full search's floor per query: its last score when the list is shorter than what the gallery
    holds for it (``available``), -inf when it holds all of it."""
    n_valid = np.isfinite(score).sum(axis=1)
    last = score[np.arange(len(score)), np.maximum(n_valid - 1, 0)] if score.shape[1] else np.zeros(len(score), np.float32)
    return np.where(n_valid < available, last, -np.inf).astype(np.float32)


def gather_lists(kept, fp: str, nblocks: int, block: int, q_rows: np.ndarray, width: int,
                 available: np.ndarray) -> Lists | None:
    """A full run's lists from its blocks' files ``<fp>/block-<start>.npz`` (None when one is missing or
    of another width)."""
    cand = np.full((len(q_rows), width), -1, np.int32)
    score = np.full((len(q_rows), width), -np.inf, np.float32)
    for b in range(nblocks):
        try:
            with np.load(kept.fetch(f"{fp}/block-{b * block}.npz"), allow_pickle=False) as z:
                c, s = z["cand"], z["score"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if c.shape != (min(block, len(q_rows) - b * block), width):
            return None
        cand[b * block:b * block + len(c)], score[b * block:b * block + len(c)] = c, s
    return Lists(q_rows, cand, score, floors(score, available))


def save_lists(path, lists: Lists) -> None:
    with open(path, "wb") as f:
        np.savez(f, q=lists.q, cand=lists.cand, score=lists.score, floor=lists.floor)


def load_lists(path) -> Lists | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return Lists(z["q"], z["cand"], z["score"], z["floor"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_SCALE = 10 ** TIE_DECIMALS  # scores are compared (and stored) to this many decimals
_TOP = 2 * _SCALE  # above any cosine's quantised value: (TOP - q) is never negative
_EMPTY = np.iinfo(np.int64).max


def _keys(cand: np.ndarray, score: np.ndarray) -> np.ndarray:
    """One int64 per entry whose ascending order is (score to 6 decimals desc, row asc): ``(TOP -
    score x 1e6) << 32 | row``; empty entries (-1, -inf) are EMPTY."""
    ok = (cand >= 0) & np.isfinite(score)
    q = np.rint(np.where(ok, score, 0).astype(np.float64) * _SCALE).astype(np.int64)
    return np.where(ok, (_TOP - q) << 32 | np.maximum(cand, 0).astype(np.int64), _EMPTY)


def _unkey(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores (rounded to 6 decimals) of :func:`_keys`'s keys."""
    empty = key == _EMPTY
    return (np.where(empty, -1, key & 0xFFFFFFFF),
            np.where(empty, -np.inf, (_TOP - (key >> 32)) / _SCALE).astype(np.float32))


def order(cand: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row by (score to 6 decimals desc, row asc), empty entries last; the scores rounded to 6 decimals."""
    if not cand.size:
        return cand, score
    key = _keys(cand, score)
    key.sort(axis=1)
    return _unkey(key)


try:
    import numba
except ImportError:  # pragma: no cover - numba comes with librosa
    numba = None

if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _merge_rows(k1, k2, width, out):  # pragma: no cover - compiled
        """Per row, the ``width`` smallest keys of two ascending rows (EMPTY entries skipped) into ``out``."""
        for r in range(k1.shape[0]):
            i = j = n = 0
            while n < width:
                while i < k1.shape[1] and k1[r, i] == _EMPTY:
                    i += 1
                while j < k2.shape[1] and k2[r, j] == _EMPTY:
                    j += 1
                a = k1[r, i] if i < k1.shape[1] else _EMPTY
                b = k2[r, j] if j < k2.shape[1] else _EMPTY
                if a == _EMPTY and b == _EMPTY:
                    break
                if a <= b:
                    out[r, n] = a
                    i += 1
                else:
                    out[r, n] = b
                    j += 1
                n += 1
            for m in range(n, width):
                out[r, m] = _EMPTY


def merged(c1, s1, c2, s2, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``width`` entries per row of two lists each ordered as :func:`_order` orders (holes allowed):
    a linear merge (numba), else one sort of both."""
    k1, k2 = _keys(c1, s1), _keys(c2, s2)
    if numba is None:  # pragma: no cover
        key = np.concatenate([k1, k2], axis=1)
        key.sort(axis=1)
        key = key[:, :width] if key.shape[1] >= width else np.pad(key, ((0, 0), (0, width - key.shape[1])),
                                                                    constant_values=_EMPTY)
    else:
        key = np.empty((len(k1), width), np.int64)
        _merge_rows(k1, k2, width, key)
    return _unkey(key)


def merge(c1, s1, f1, c2, s2, f2, L: int):
    """Two lists per query merged, cut to ``L``; the floor rises to the best score cut off."""
    c, s = merged(c1, s1, c2, s2, L + 1)
    floor = np.maximum(np.maximum(f1, f2), s[:, L]).astype(np.float32)
    return c[:, :L], s[:, :L], floor


__all__ = ["Lists", "block_lists", "floors", "gather_lists", "load_lists", "merge", "merged", "order", "save_lists"]

"""Candidate pairs read off runs of equal keys, the step every dedup index shares: sort a key column
once and pair the rows of each run, a run over a cap linked to its first row only (a pathological key
cannot make the pair list quadratic); pairs travel packed as ``lo << 32 | hi`` uint64.

Used by :mod:`.near` (LSH and pHash indexes) and the exact rules of :mod:`.dedup`.
"""

from __future__ import annotations

import numpy as np

from ... import arrays


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(c) for c in counts])`` without the loop."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - counts, counts)


def pairs_in_runs(keys: np.ndarray, rows: np.ndarray | None = None, cap: int = 200,
                  capped: list[int] | None = None) -> np.ndarray:
    """Pairs of row indexes sharing a key, packed as ``lo << 32 | hi`` (uint64, lo < hi, unique).

    A run of more than ``cap`` rows with one key (a placeholder image, a boilerplate title) links
    every member to its first member only, instead of all its pairs: groups still form, and a
    pathological key cannot make the pair list quadratic.

    Args:
        keys: one key per row (any sortable dtype).
        rows: the row index of each key (default ``arange``).
        cap: the largest run whose pairs are all emitted.
        capped: when given, ``capped[0]`` grows by the pairs a capped run did not emit.
    """
    rows = np.arange(len(keys), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(keys) < 2:
        return np.zeros(0, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    cut = np.flatnonzero(ks[1:] != ks[:-1]) + 1
    starts = np.r_[0, cut]
    sizes = np.diff(np.r_[starts, len(ks)])
    parts = []
    small = (sizes >= 2) & (sizes <= cap)
    st, sz = starts[small], sizes[small]
    for d in range(1, int(sz.max()) if len(sz) else 1):
        sel = sz > d
        if not sel.any():
            break
        cnt = sz[sel] - d
        first = np.repeat(st[sel], cnt) + ragged_arange(cnt)
        parts.append((rows[order[first]], rows[order[first + d]]))
    big = sizes > cap
    if big.any():
        cnt = sizes[big] - 1
        if capped is not None:
            capped[0] += int((cnt * (cnt + 1) // 2 - cnt).sum())
        head = np.repeat(starts[big], cnt)
        parts.append((rows[order[head]], rows[order[head + 1 + ragged_arange(cnt)]]))
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    left = np.concatenate([p[0] for p in parts])
    right = np.concatenate([p[1] for p in parts])
    return pack(left, right)


def pack(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pairs as unique sorted uint64 ``min << 32 | max``."""
    lo = np.minimum(left, right).astype(np.uint64)
    hi = np.maximum(left, right).astype(np.uint64)
    keep = lo != hi
    return arrays.unique((lo[keep] << np.uint64(32)) | hi[keep])


def unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(left, right)`` int64 row indexes of packed pairs."""
    return ((packed >> np.uint64(32)).astype(np.int64), (packed & np.uint64(0xFFFFFFFF)).astype(np.int64))


def member(codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``np.isin(codes, wanted)`` by a hash lookup (no sort of ``codes``: an incremental run asks
    millions of keys whether they are among a few changed rows' keys)."""
    if not len(wanted):
        return np.zeros(len(codes), dtype=bool)
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(pa.array(codes), value_set=pa.array(wanted)).to_numpy(zero_copy_only=False)

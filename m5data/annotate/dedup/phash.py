"""The pHash multi-index: near-duplicate images among 64-bit perceptual hashes, never all pairs.

:func:`phash_pairs`: 64-bit hashes split into ``bands`` bands (16 bits each by default). By the
pigeonhole principle two hashes within Hamming distance ``r`` agree within ``r // bands`` bits on
at least one band, so probing every band at that radius finds every pair (multi-index hashing,
Norouzi et al. 2012); each candidate is then checked on all 64 bits. Candidates are read off runs of
equal keys (:mod:`.key_runs`), as :mod:`.near`'s MinHash/LSH index reads its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ... import arrays
from .key_runs import unpack

_M64 = (1 << 64) - 1


def parse_phash(values: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Hex pHashes -> ``(uint64 hashes, valid mask)``; a missing or malformed hash is invalid."""
    out, ok = [], []
    for v in values:
        try:
            out.append(int(v, 16) & _M64)
            ok.append(True)
        except (TypeError, ValueError):
            out.append(0)
            ok.append(False)
    return np.asarray(out, dtype=np.uint64), np.asarray(ok, dtype=bool)


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (``np.bitwise_count`` on numpy 2, a byte table before it)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT8[np.ascontiguousarray(x).view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences of two uint64 arrays."""
    return popcount(np.bitwise_xor(a, b)).astype(np.int64)


def _band(hashes: np.ndarray, j: int, bands: int) -> tuple[np.ndarray, int]:
    width = -(-64 // bands)
    lo = j * width
    bits = min(width, 64 - lo)
    mask = np.uint64((1 << bits) - 1)
    return (hashes >> np.uint64(lo)) & mask, bits


def phash_pairs(hashes: np.ndarray, threshold: int, bands: int = 4, valid: np.ndarray | None = None,
                cap: int = 200, capped: list[int] | None = None, touching: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of 64-bit hashes within Hamming distance ``threshold``, via a multi-index.

    Band ``j`` of two hashes within ``threshold`` differs in at most ``threshold // bands`` bits for
    some ``j`` (pigeonhole), so for each band every row is looked up under its own band value and,
    when that radius is 1 or more, under each value one (or more) bit flips away. Every candidate
    is checked on the full 64 bits, in one compiled pass per band (:func:`near_jit.phash_probe`)
    that keeps only the pairs within ``threshold``.

    Args:
        hashes: uint64 hashes.
        threshold: the largest Hamming distance kept.
        bands: bands the 64 bits are split into (4 = 16-bit bands; per-band radius ``threshold // bands``).
        valid: rows that take part; default all.
        cap: a bucket (rows sharing one band value) of more rows takes part through its first row
            only: its other rows link to that row and probe nothing, and a probe landing on it
            checks that row: thousands of near-identical photos (a placeholder) link as a star
            instead of all their pairs, and each row's work stays bounded.
        capped: when given, ``capped[0]`` grows by the candidate checks the cap skipped.
        touching: a bool mask of rows (an incremental dedup's changed ones): only the pairs with one
            of them as an end, probed from them alone into the index of every row
            (:func:`near_jit.phash_probe_from`); ``capped`` is not counted then.

    Returns:
        ``(left, right, distance)`` with ``left < right``.
    """
    from itertools import combinations

    from . import near_jit

    idx = np.arange(len(hashes), dtype=np.int64) if valid is None else np.flatnonzero(valid)
    h = np.ascontiguousarray(hashes[idx], dtype=np.uint64)
    radius = threshold // bands
    found = []
    for j in range(bands):
        key, bits = _band(h, j, bands)
        order = np.argsort(key, kind="stable")
        sk = key[order]
        cut = np.flatnonzero(sk[1:] != sk[:-1]) + 1 if len(sk) else np.zeros(0, dtype=np.int64)
        starts = np.r_[0, cut, len(sk)].astype(np.int64) if len(sk) else np.zeros(1, dtype=np.int64)
        ukeys = sk[starts[:-1]]
        flips = np.array([0] + [sum(1 << b for b in combo) for r in range(1, radius + 1)
                                for combo in combinations(range(bits), r)], dtype=np.uint64)
        if touching is not None:
            src = np.flatnonzero(touching[idx]).astype(np.int64)
            found.append(arrays.unique(near_jit.phash_probe_from(src, key, h, order.astype(np.int64), h[order], ukeys,
                                                                 starts, flips, threshold, cap)))
            continue
        packed, n_capped = near_jit.phash_probe(key, order.astype(np.int64), h[order], ukeys, starts, flips,
                                                threshold, cap)
        if capped is not None:
            capped[0] += int(n_capped)
        found.append(arrays.unique(packed))
    packed = arrays.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.uint64)
    left, right = unpack(packed)
    left, right = idx[left], idx[right]
    return left, right, hamming(hashes[left], hashes[right])


def brute_force_phash_pairs(hashes: np.ndarray, threshold: int, block: int = 2048) -> Iterator[tuple[int, int, int]]:
    """Every pair within ``threshold`` by comparing all pairs (the baseline of the benchmark and tests)."""
    n = len(hashes)
    for s in range(0, n, block):
        d = popcount(hashes[s:s + block, None] ^ hashes[None, :])
        rows, cols = np.nonzero(d <= threshold)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if s + r < c:
                yield s + r, c, int(d[r, c])

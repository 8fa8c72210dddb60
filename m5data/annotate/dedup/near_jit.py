"""The compiled loops of the dedup indexes (numba): MinHash, band keys, pHash probes and the share of
equal MinHash columns (the spec rule's loops are in :mod:`.spec_jit`).

Each loop is the per-row or per-pair work that numpy would do through temporaries of
``rows x permutations`` or ``rows x candidates``; compiled, it runs in one pass with no temporary.
Caller is :mod:`near`; results equal the numpy code they replaced (tested).
"""

from __future__ import annotations

import numba
import numpy as np

_M32 = np.uint64(0xFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _fmix32(x):  # pragma: no cover - compiled
    x = np.uint64(x) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & _M32
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & _M32
    x ^= x >> np.uint64(16)
    return x


@numba.njit(cache=True, nogil=True)
def mix64(x):  # pragma: no cover - compiled
    """MurmurHash3's 64-bit finaliser (a bijection that spreads every input bit) of one uint64: the
    compiled loops' (also the spec rule's block keys); :func:`mix64_array` for arrays. Not a numba
    ufunc: building one costs ~0.4 s of code generation at every import, cached or not."""
    x = np.uint64(x)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@numba.njit(cache=True, nogil=True)
def mix64_array(x):  # pragma: no cover - compiled
    """:func:`mix64` of each element of a 1-d uint64 array, as a new array (:func:`.near.fmix64`: one
    compiled pass, 6x numpy's five array passes)."""
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = mix64(x[i])
    return out


@numba.njit(cache=True, nogil=True)
def minhash(values, offsets, a, b, out):  # pragma: no cover - compiled
    """``out[i, p] = min over set i of (a[p] * fmix32(v) + b[p]) mod 2**32``; empty sets keep ``out``."""
    n = len(offsets) - 1
    P = len(a)
    a64 = a.astype(np.uint64)
    b64 = b.astype(np.uint64)
    row = np.empty(P, dtype=np.uint64)
    for i in range(n):
        lo, hi = offsets[i], offsets[i + 1]
        if hi == lo:
            continue
        for p in range(P):
            row[p] = _M32
        for v in range(lo, hi):
            x = _fmix32(values[v])
            for p in range(P):
                h = (a64[p] * x + b64[p]) & _M32
                if h < row[p]:
                    row[p] = h
        for p in range(P):
            out[i, p] = np.uint32(row[p])


@numba.njit(cache=True, nogil=True)
def band_keys(sig, bands, rows, out):  # pragma: no cover - compiled
    """``out[i, j]``: band ``j`` of signature ``i`` hashed (see :func:`near.band_keys`)."""
    for i in range(sig.shape[0]):
        for j in range(bands):
            h = np.uint64(j + 1)
            for c in range(j * rows, (j + 1) * rows):
                h = mix64(h ^ np.uint64(sig[i, c])) + np.uint64(c)
            out[i, j] = h


@numba.njit(cache=True, nogil=True)
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, nogil=True)
def _bucket(ukeys, starts, q):  # pragma: no cover - compiled
    """``(start, end)`` of key ``q`` in the sorted unique keys (binary search); empty when absent."""
    lo, hi = 0, len(ukeys)
    while lo < hi:
        mid = (lo + hi) >> 1
        if ukeys[mid] < q:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(ukeys) and ukeys[lo] == q:
        return starts[lo], starts[lo + 1]
    return 0, 0


@numba.njit(cache=True, nogil=True)
def _put_pair(out, m, a, b):  # pragma: no cover - compiled
    """``out`` with rows ``a``, ``b`` packed ``lo << 32 | hi`` at ``out[m]`` (a copy twice as long when full)."""
    if m == len(out):
        grown = np.empty(2 * len(out), dtype=np.uint64)
        grown[:m] = out[:m]
        out = grown
    lo, hi = (a, b) if a < b else (b, a)
    out[m] = (np.uint64(lo) << np.uint64(32)) | np.uint64(hi)
    return out


@numba.njit(cache=True, nogil=True)
def phash_probe(key, skey_rows, shash, ukeys, starts, flips, threshold, cap):  # pragma: no cover - compiled
    """Pairs within ``threshold`` bits found by probing one band; returns ``(packed pairs, capped checks)``.

    Args:
        key: the band value of each row.
        skey_rows: row numbers in key order (a bucket is a contiguous run).
        shash: the full hash of each row, in key order.
        ukeys, starts: the distinct band values and where each bucket starts (``len(ukeys) + 1``).
        flips: masks probed (0 first: the row's own bucket).
        threshold: the largest Hamming distance kept.
        cap: a bucket of more rows takes part through its first row only: its other rows are
            checked against that row and probe nothing; a probe that lands on it checks that row.

    Pairs are packed ``lo << 32 | hi``, possibly repeated (the caller takes the unique ones).
    """
    out = np.empty(1024, dtype=np.uint64)
    m = 0
    capped = 0
    n = len(key)
    for t in range(n):
        p = skey_rows[t]
        hp = shash[t]
        os_, oe = _bucket(ukeys, starts, key[p])
        own_small = oe - os_ <= cap
        if not own_small and skey_rows[os_] != p:
            # a bucket over the cap takes part through its first row only: the others link to it
            # and probe nothing (rows near them find that first row from their side)
            capped += oe - os_ - 2
            for f in flips[1:]:
                st, en = _bucket(ukeys, starts, key[p] ^ f)
                capped += en - st
            first = skey_rows[os_]
            if _popcount(hp ^ shash[os_]) <= threshold:
                out = _put_pair(out, m, p, first)
                m += 1
            continue
        for f in flips:
            st, en = _bucket(ukeys, starts, key[p] ^ f)
            small = en - st <= cap
            if not small:
                capped += en - st - 1
                en = st + 1  # its first row only: groups still form, pairs stay linear
            both_full = own_small and small  # then the other row finds this pair too: keep one end
            for u in range(st, en):
                o = skey_rows[u]
                if o == p or (both_full and o < p):
                    continue
                if _popcount(hp ^ shash[u]) <= threshold:
                    out = _put_pair(out, m, p, o)
                    m += 1
    return out[:m], capped


@numba.njit(cache=True, nogil=True)
def phash_probe_from(src, key, hrow, skey_rows, shash, ukeys, starts, flips, threshold, cap):  # pragma: no cover - compiled
    """:func:`phash_probe`'s pairs that touch the rows ``src`` (an incremental dedup's changed rows), probed
    from those rows only, into the index of every row: the same pairs the full probe finds with one
    of them as an end. ``hrow``: the full hash of each row, in row order; the rest as for :func:`phash_probe`.

    A full probe finds a pair from either end; from one end alone it misses only the rows of a bucket
    over ``cap`` that link to its first row, so a first row of such a bucket pairs with them here.
    """
    out = np.empty(1024, dtype=np.uint64)
    m = 0
    for i in range(len(src)):
        p = src[i]
        hp = hrow[p]
        os_, oe = _bucket(ukeys, starts, key[p])
        if oe - os_ > cap:
            if skey_rows[os_] != p:  # links to the first row and probes nothing, as in the full probe
                if _popcount(hp ^ shash[os_]) <= threshold:
                    out = _put_pair(out, m, p, skey_rows[os_])
                    m += 1
                continue
            for u in range(os_ + 1, oe):  # the first row: the others link to it from their side
                if _popcount(hp ^ shash[u]) <= threshold:
                    out = _put_pair(out, m, p, skey_rows[u])
                    m += 1
        for f in flips:
            st, en = _bucket(ukeys, starts, key[p] ^ f)
            if en - st > cap:
                en = st + 1
            for u in range(st, en):
                o = skey_rows[u]
                if o != p and _popcount(hp ^ shash[u]) <= threshold:
                    out = _put_pair(out, m, p, o)
                    m += 1
    return out[:m]


def warm_up() -> None:
    """Compile every index loop once on tiny inputs (or load it from numba's cache), e.g. before timing;
    :func:`.spec_jit.warm_up` compiles the spec rule's."""
    v = np.zeros(2, dtype=np.uint32)
    off = np.array([0, 2], dtype=np.int64)
    sig = np.zeros((1, 2), dtype=np.uint32)
    minhash(v, off, v, v, sig)
    band_keys(sig, 1, 2, np.zeros((1, 1), dtype=np.uint64))
    u = np.zeros(1, dtype=np.uint64)
    phash_probe(u, np.zeros(1, dtype=np.int64), u, u, np.array([0, 1], dtype=np.int64), u, 6, 200)
    z = np.zeros(1, dtype=np.int64)
    for bits in (np.uint16, np.uint32):  # near.Signatures' packed columns, and the full 32-bit ones
        equal_share(np.zeros((1, 2), dtype=bits), z, z, np.zeros(1))
    best_of_each(z, z + 1, np.zeros(1), 1, 2, np.zeros(1, dtype=np.bool_))


@numba.njit(cache=True, nogil=True)
def equal_share(sig, left, right, out):  # pragma: no cover - compiled
    """``out[k]``: share of equal columns of signature rows ``left[k]`` and ``right[k]``."""
    cols = sig.shape[1]
    for k in range(len(left)):
        a, b = sig[left[k]], sig[right[k]]
        same = 0
        for c in range(cols):
            if a[c] == b[c]:
                same += 1
        out[k] = same / cols


@numba.njit(cache=True, nogil=True)
def best_of_each(left, right, sim, k, n, keep):  # pragma: no cover - compiled
    """``keep[i]`` set for each pair ``(left[i], right[i])`` among either end's ``k`` most similar
    (``sim``, highest first; ties: the pair found first; NaN lowest): one pass, each row's best ``k``
    held in order (``n`` rows), instead of sorting the pairs by row and similarity."""
    best_s = np.full((n, k), -np.inf)
    best_i = np.full((n, k), -1, dtype=np.int64)
    for i in range(len(left)):
        s = sim[i]
        if s != s:
            s = -np.inf
        for end in range(2):
            r = left[i] if end == 0 else right[i]
            p = k
            while p > 0 and (best_i[r, p - 1] < 0 or best_s[r, p - 1] < s):
                p -= 1
            if p == k:
                continue
            for q in range(k - 1, p, -1):
                best_s[r, q] = best_s[r, q - 1]
                best_i[r, q] = best_i[r, q - 1]
            best_s[r, p] = s
            best_i[r, p] = i
    for r in range(n):
        for q in range(k):
            if best_i[r, q] >= 0:
                keep[best_i[r, q]] = True


@numba.njit(cache=True, nogil=True)
def string_hashes(offsets, data, valid, out):  # pragma: no cover - compiled
    """``out[i]``: a 64-bit hash of string ``i``'s bytes ``data[offsets[i]:offsets[i + 1]]`` (8 bytes at a
    time through :func:`mix64`, its length first), never 0; 0 where not ``valid``."""
    for i in range(len(out)):
        if not valid[i]:
            out[i] = 0
            continue
        s, e = offsets[i], offsets[i + 1]
        h = mix64(np.uint64(e - s) + np.uint64(0x9E3779B97F4A7C15))
        p = s
        while p < e:
            w = np.uint64(0)
            for q in range(min(8, e - p)):
                w |= np.uint64(data[p + q]) << np.uint64(8 * q)
            h = mix64(h ^ w) + np.uint64(0xD6E8FEB86659FD93)
            p += 8
        out[i] = h if h != 0 else np.uint64(1)


@numba.njit(cache=True, nogil=True)
def first_codes(h, codes, first):  # pragma: no cover - compiled
    """``codes[i]``: the rank of ``h[i]``'s first occurrence among the distinct values of ``h`` other than
    0 (a dictionary encoding's codes, by first occurrence), -1 where 0; ``first[i]``: the row of that
    first occurrence (``i`` where 0). An open-addressing table of the values (already hashes)."""
    n = len(h)
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slot_key = np.zeros(size, dtype=np.uint64)
    slot_row = np.empty(size, dtype=np.int64)
    slot_code = np.empty(size, dtype=np.int64)
    m = 0
    for i in range(n):
        x = h[i]
        if x == 0:
            codes[i] = -1
            first[i] = i
            continue
        s = x & mask
        while slot_key[s] != 0 and slot_key[s] != x:
            s = (s + np.uint64(1)) & mask
        if slot_key[s] == 0:
            slot_key[s] = x
            slot_row[s] = i
            slot_code[s] = m
            m += 1
        codes[i] = slot_code[s]
        first[i] = slot_row[s]

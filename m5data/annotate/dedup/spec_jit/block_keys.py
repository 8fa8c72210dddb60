"""The spec rule's block keys (compiled, numba): a brand spelling and two of a product's rarest values,
hashed; every key of every row (by part of the key space), and the keys of given rows found in a set."""

from __future__ import annotations

import numba
import numpy as np

from ..near_jit import mix64


@numba.njit(cache=True, nogil=True)
def _spec_key(b, k1, v1, k2, v2):  # pragma: no cover - compiled
    h = mix64(np.uint64(b) + np.uint64(0x9E3779B97F4A7C15))
    h = mix64(h ^ ((np.uint64(k1) << np.uint64(32)) | np.uint64(v1)))
    return mix64(h ^ ((np.uint64(k2) << np.uint64(32)) | np.uint64(v2)) ^ np.uint64(0xD6E8FEB86659FD93))


@numba.njit(cache=True, nogil=True)
def spec_block_keys(offsets, keys, values, brand_offsets, brands, brand_key, need, part, parts,
                    out_key, out_row):  # pragma: no cover - compiled
    """The spec rule's exact block keys: for each row, each brand spelling and each ``need`` (1 or 2)
    of its non-brand ``(property, value)`` entries of different properties, one 64-bit key; two rows
    that share a brand spelling and agree on ``need`` properties share a key. Only keys with
    ``key % parts == part`` are written; with ``out_key`` of length 0, nothing is written and the
    count is returned (the sizing pass).
    """
    m = 0
    count_only = len(out_key) == 0
    P = np.uint64(parts)
    q = np.uint64(part)
    buf = np.empty(64, dtype=np.uint64)
    for i in range(len(offsets) - 1):
        n = _row_keys(i, offsets, keys, values, brand_offsets, brands, brand_key, need, buf)
        while n < 0:  # a row of many spellings or entries: a longer buffer
            buf = np.empty(2 * len(buf), dtype=np.uint64)
            n = _row_keys(i, offsets, keys, values, brand_offsets, brands, brand_key, need, buf)
        for k in range(n):
            h = buf[k]
            if h % P == q:
                if not count_only:
                    out_key[m] = h
                    out_row[m] = i
                m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _row_keys(i, offsets, keys, values, brand_offsets, brands, brand_key, need, buf):  # pragma: no cover
    """Row ``i``'s block keys (:func:`spec_block_keys`, in its order) written to ``buf``; how many
    (``buf`` too short: -1)."""
    m = 0
    lo, hi = offsets[i], offsets[i + 1]
    for b in range(brand_offsets[i], brand_offsets[i + 1]):
        for e1 in range(lo, hi):
            if keys[e1] == brand_key:
                continue
            if need == 1:
                if m >= len(buf):
                    return -1
                buf[m] = _spec_key(brands[b], keys[e1], values[e1], 0xFFFFFFFF, 0)
                m += 1
                continue
            for e2 in range(e1 + 1, hi):
                if keys[e2] == brand_key or keys[e2] == keys[e1]:
                    continue
                if m >= len(buf):
                    return -1
                buf[m] = _spec_key(brands[b], keys[e1], values[e1], keys[e2], values[e2])
                m += 1
    return m


@numba.njit(cache=True, nogil=True)
def _in_table(table, k):  # pragma: no cover - compiled
    mask = np.uint64(len(table) - 1)
    s = mix64(k) & mask
    while table[s] != 0:
        if table[s] == k:
            return True
        s = (s + np.uint64(1)) & mask
    return False


@numba.njit(cache=True, nogil=True)
def _key_set(wanted):  # pragma: no cover - compiled
    """An open-addressing set of the distinct keys ``wanted`` (0 marks an empty slot: whether 0 is one
    of them is returned beside), for :func:`_in_set`."""
    table, _, zero_at = _key_index(wanted)
    return table, zero_at >= 0


@numba.njit(cache=True, nogil=True)
def _key_index(wanted):  # pragma: no cover - compiled
    """:func:`_key_set` of the distinct keys ``wanted`` with, per slot, its key's position in ``wanted``
    (and the position of a key 0, -1 when none): ``(table, at, zero_at)`` for :func:`_index_of`."""
    size = 16
    while size < 2 * len(wanted):
        size *= 2
    table = np.zeros(size, dtype=np.uint64)
    at = np.full(size, -1, dtype=np.int64)
    mask = np.uint64(size - 1)
    zero_at = -1
    for w in range(len(wanted)):
        k = wanted[w]
        if k == 0:
            zero_at = w
            continue
        s = mix64(k) & mask
        while table[s] != 0 and table[s] != k:
            s = (s + np.uint64(1)) & mask
        table[s] = k
        at[s] = w
    return table, at, zero_at


@numba.njit(cache=True, nogil=True)
def _index_of(table, at, zero_at, k):  # pragma: no cover - compiled
    """Key ``k``'s position in the keys of :func:`_key_index`'s ``table``; -1 when it is not one."""
    if k == 0:
        return zero_at
    mask = np.uint64(len(table) - 1)
    s = mix64(k) & mask
    while table[s] != 0:
        if table[s] == k:
            return at[s]
        s = (s + np.uint64(1)) & mask
    return -1


@numba.njit(cache=True, nogil=True)
def _in_set(table, zero, k):  # pragma: no cover - compiled
    return zero if k == 0 else _in_table(table, k)


@numba.njit(cache=True, nogil=True)
def spec_row_keys(offsets, keys, values, brand_offsets, brands, brand_key, need, wanted, entries, marked, out_key,
                  out_row):  # pragma: no cover - compiled
    """Every row's block keys (:func:`spec_block_keys`) made one row at a time, never all held: of the
    keys among ``wanted`` (distinct keys), their positions in ``wanted`` are written to ``out_key``
    (int64) and their rows to ``out_row`` (rows in order; an open-addressing index of ``wanted`` is
    made first): the rows of a few blocks, each block's position standing for its key (a counting
    sort by it groups them, no sort of the keys). Returns ``(how many keys are among wanted, out_key,
    out_row)``: the buffers are grown (doubled, copied) when they are too short, so one pass always
    does (the caller sizes them from a guess).

    ``entries`` (with ``need`` 2): the one-entry keys (``need`` 1) of the rows that made ``wanted``: a
    key of spelling ``b`` and entries ``e1``, ``e2`` is among ``wanted`` only when ``(b, e1)`` and
    ``(b, e2)`` are among them, so only the pairs of a row's entries whose one-entry key is are made
    (at 100k, 53k wanted keys of 1,294 rows: 0.54 million keys made instead of every row's 4.2 million).
    ``marked`` (bool per value code; empty: none): the values of those rows' entries, tested before an
    entry's one-entry key is made and looked up (an entry of another value cannot make one of them)."""
    table, at, zero_at = _key_index(wanted)
    etable, ezero = _key_set(entries)
    some_marked = len(marked) > 0
    pairs = need == 2
    # a filter of bits set by mix64's high bits, 8 bits per wanted key (2 MB at 2 million): most keys
    # are not wanted, and this filter, unlike the table, mostly stays in the cache
    nbits = 1 << 16
    while nbits < 8 * len(wanted) and nbits < (1 << 27):
        nbits *= 2
    bits = np.zeros(nbits // 64, dtype=np.uint64)
    bmask = np.uint64(nbits - 1)
    for k in wanted:
        if k != 0:
            f = (mix64(k) >> np.uint64(32)) & bmask
            bits[f >> np.uint64(6)] |= np.uint64(1) << (f & np.uint64(63))
    find = len(wanted) > 0
    buf = np.empty(1024, dtype=np.uint64)
    sel = np.empty(64, dtype=np.int64)
    n = 0
    for i in range(len(offsets) - 1):
        if not find:
            break
        m = 0
        if pairs:  # the pairs of the entries each spelling's one-entry key keeps (see above)
            lo, hi = offsets[i], offsets[i + 1]
            if hi - lo > len(sel):
                sel = np.empty(2 * (hi - lo), dtype=np.int64)
            for b in range(brand_offsets[i], brand_offsets[i + 1]):
                c = 0
                for e in range(lo, hi):
                    if keys[e] != brand_key and (not some_marked or marked[values[e]]) and _in_set(
                            etable, ezero, _spec_key(brands[b], keys[e], values[e], 0xFFFFFFFF, 0)):
                        sel[c] = e
                        c += 1
                for x in range(c):
                    e1 = sel[x]
                    for y in range(x + 1, c):
                        e2 = sel[y]
                        if keys[e2] == keys[e1]:
                            continue
                        if m >= len(buf):
                            grown = np.empty(2 * len(buf), dtype=np.uint64)
                            grown[:m] = buf[:m]
                            buf = grown
                        buf[m] = _spec_key(brands[b], keys[e1], values[e1], keys[e2], values[e2])
                        m += 1
        else:
            m = _row_keys(i, offsets, keys, values, brand_offsets, brands, brand_key, need, buf)
            while m < 0:
                buf = np.empty(2 * len(buf), dtype=np.uint64)
                m = _row_keys(i, offsets, keys, values, brand_offsets, brands, brand_key, need, buf)
        for t in range(m):
            k = buf[t]
            if k != 0:
                f = (mix64(k) >> np.uint64(32)) & bmask
                if not (bits[f >> np.uint64(6)] >> (f & np.uint64(63))) & np.uint64(1):
                    continue
            w = _index_of(table, at, zero_at, k)
            if w < 0:
                continue
            if n >= len(out_key):
                grown_key = np.empty(max(2 * len(out_key), 1024), dtype=out_key.dtype)
                grown_row = np.empty(len(grown_key), dtype=out_row.dtype)
                grown_key[:n] = out_key[:n]
                grown_row[:n] = out_row[:n]
                out_key, out_row = grown_key, grown_row
            out_key[n] = w
            out_row[n] = i
            n += 1
    return n, out_key, out_row

"""The pairs of each spec block that pass the spec rule (compiled, numba): a full run's pass over every
block, the pass that checks each pair once (from the block of its first shared key), and an incremental
run's pass over the rows a changed product touches."""

from __future__ import annotations

import numba
import numpy as np

from .agreement import _jaccard, _sorted_runs_share, _spec_pair, _walk_inline
from .chance import _grown


@numba.njit(cache=True, nogil=True)
def spec_block_pairs(skey, srow, pos, cap, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                     min_agreement, min_jaccard, out, counts, mine):  # pragma: no cover - compiled
    """The spec rule's candidates, checked as they are made: from position ``pos`` of the sorted
    block keys ``skey`` (``srow``: each key's row, in a stable order), every pair of a run of equal
    keys with at most ``cap`` rows (a longer run: its first row with each other one, as
    :func:`near.pairs_in_runs`) whose rows have the same brand, ``min_shared`` shared properties
    agreeing on at least ``min_agreement`` of them and entry sets of Jaccard >= ``min_jaccard``, is
    written to ``out`` packed (``lo << 32 | hi``). Stops before a run whose pairs might not fit.

    Returns ``(next position, pairs written)``; ``counts[0]`` grows by the pairs checked,
    ``counts[1]`` by those a capped run skipped. A pair that shares several keys is checked (and
    written) once per key: the caller keeps unique pairs (:func:`spec_block_pairs_once` checks it once).
    ``mine`` (bool per row; empty: every pair): only the pairs with one of its rows as an end are
    checked (an incremental run's: its blocks are read whole, so that the caps act as in a full
    search, but their other pairs stand).
    """
    none = np.zeros(0, dtype=np.int64)
    return spec_block_pairs_once(skey, srow, pos, cap, offsets, keys, values, brand_offsets, brands, brand_key,
                                 min_shared, min_agreement, min_jaccard, out, counts, mine, none, skey[:0],
                                 np.zeros(0, dtype=np.bool_), skey[:0])



@numba.njit(cache=True, nogil=True)
def _first_full_shared(i, j, row_off, row_key, row_full):  # pragma: no cover - compiled
    """The smallest block key rows ``i`` and ``j`` share whose block is not capped (their keys sorted
    in ``row_key[row_off[i]:row_off[i + 1]]``; ``row_full``: that key's block is not capped); 0 and
    False when they share none."""
    a, ae, b, be = row_off[i], row_off[i + 1], row_off[j], row_off[j + 1]
    while a < ae and b < be:
        if row_key[a] < row_key[b]:
            a += 1
        elif row_key[b] < row_key[a]:
            b += 1
        else:
            if row_full[a]:
                return row_key[a], True
            a += 1
            b += 1
    return np.uint64(0), False


@numba.njit(cache=True, nogil=True)
def _pair_once(a, b, k, kb, once, row_bits, row_off, row_key, row_full, counts, offsets, keys, values, brand_offsets,
               brands, brand_key, min_shared, min_agreement, min_jaccard, out, m):  # pragma: no cover - compiled
    """Rows ``a`` and ``b`` of the block of key ``k`` (``kb`` its bit) checked by :func:`_spec_pair`, unless
    (``once``) they share an earlier uncapped key, whose block checks them; ``m`` pairs out so far."""
    if once and (row_bits[a] & row_bits[b]) != kb:
        first, ok = _first_full_shared(a, b, row_off, row_key, row_full)
        if ok and first != k:
            return m
    counts[0] += 1
    return _spec_pair(a, b, offsets, keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement,
                      min_jaccard, out, m)


@numba.njit(cache=True, nogil=True)
def spec_block_pairs_once(skey, srow, pos, cap, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                          min_agreement, min_jaccard, out, counts, mine, row_off, row_key, row_full,
                          row_bits):  # pragma: no cover
    """:func:`spec_block_pairs`, each pair of an uncapped block checked once: in the block of the
    smallest key its rows share among the uncapped blocks (``row_off``/``row_key``/``row_full``: each
    row's keys, sorted, and whether their block is not capped; ``row_bits``: each row's uncapped keys
    as bits ``1 << (key >> 58)``, so a pair whose bits share only the block's own needs no walk of
    the lists; empty ``row_off``: every block's pairs checked, as :func:`spec_block_pairs`). The same pairs pass; on the 100k scale world's loose blocks
    of the learned matcher (one rare value) 21.4 million checks were 10.5 million distinct pairs.
    ``counts[0]`` grows by the pairs checked; ``mine`` as in :func:`spec_block_pairs`."""
    some = len(mine) > 0
    n = len(skey)
    once = len(row_off) > 0
    m = 0
    while pos < n:
        end = pos + 1
        while end < n and skey[end] == skey[pos]:
            end += 1
        size = end - pos
        full = size <= cap
        room = size * (size - 1) // 2 if full else size - 1
        if m + room > len(out):
            break
        if not full:
            counts[1] += room * (room + 1) // 2 - room
        if full and some:  # each pair with a mine row as an end, from its mine end: size x mine, not size**2
            k = skey[pos]
            kb = np.uint64(1) << (k >> np.uint64(58))
            for x in range(pos, end):
                if not mine[srow[x]]:
                    continue
                for y in range(pos, end):
                    if y == x or (y < x and mine[srow[y]]):  # the pair of two mine rows: from the first
                        continue
                    m = _pair_once(srow[x], srow[y], k, kb, once, row_bits, row_off, row_key, row_full, counts, offsets,
                                   keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement,
                                   min_jaccard, out, m)
        elif full:
            k = skey[pos]
            kb = np.uint64(1) << (k >> np.uint64(58))
            for x in range(pos, end - 1):
                for y in range(x + 1, end):
                    m = _pair_once(srow[x], srow[y], k, kb, once, row_bits, row_off, row_key, row_full, counts, offsets,
                                   keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement,
                                   min_jaccard, out, m)
        else:  # the first row with every other one
            counts[0] += room
            for y in range(pos + 1, end):
                if some and not (mine[srow[pos]] or mine[srow[y]]):
                    continue
                m = _spec_pair(srow[pos], srow[y], offsets, keys, values, brand_offsets, brands, brand_key,
                               min_shared, min_agreement, min_jaccard, out, m)
        pos = end
    return pos, m


@numba.njit(cache=True, nogil=True)
def _check_partners(x, cand, c, offsets, keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement,
                    min_jaccard, out, m):  # pragma: no cover - compiled
    """Row ``x`` with each of rows ``cand[:c]`` tested as :func:`_spec_pair` tests a pair (the same
    conditions: a shared brand spelling, ``min_shared`` shared properties agreeing on ``min_agreement``
    of them, Jaccard >= ``min_jaccard``), the passing pairs written packed from ``out[m]``: returns
    ``(out, m)`` (``out`` grown when short). One loop, the property walk inlined and first (in a
    block most pairs fail it; a block's rows share a spelling anyway): at 1M, 21 million pairs in
    ~2.8 s against ~8 s through :func:`_spec_pair`'s calls."""
    a, ae = offsets[x], offsets[x + 1]
    for t in range(c):
        j = cand[t]
        if j == x:
            continue
        b, be = offsets[j], offsets[j + 1]
        shared, equal, short = _walk_inline(keys, values, a, ae, b, be, brand_key, min_agreement)
        if short or shared < min_shared or equal < min_agreement * shared:
            continue
        same = _sorted_runs_share(brands, brand_offsets[x], brand_offsets[x + 1], brand_offsets[j], brand_offsets[j + 1])
        if not same or _jaccard(x, j, offsets, keys, values) < min_jaccard:
            continue
        out = _grown(out, m)
        out[m] = (np.uint64(min(x, j)) << np.uint64(32)) | np.uint64(max(x, j))
        m += 1
    return out, m


@numba.njit(cache=True, nogil=True)
def spec_touched_pairs(skey, srow, cap, mine, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                       min_agreement, min_jaccard, counts):  # pragma: no cover - compiled
    """An incremental run's spec pairs: of the blocks of the sorted keys ``skey`` (``srow``: each key's
    row, a key's rows sorted), the pairs with a ``mine`` row as an end that pass :func:`_spec_pair`,
    packed (``lo << 32 | hi``, unsorted, a pair possibly twice). The same pairs as
    :func:`spec_block_pairs_once` with ``mine``, found row by row instead of block by block: each
    ``mine`` row walks the rows of its uncapped blocks, and a row it met in an earlier block (a stamp
    per row) is not checked again, so each pair is checked once without a walk of the two rows' key
    lists; a pair of two ``mine`` rows is checked from its smaller row. A capped block (over ``cap``
    rows) checks its first row with each other one, as a full search does. ``counts`` as in
    :func:`spec_block_pairs_once`."""
    n = len(skey)
    n_rows = len(mine)
    nb = 0
    pos = 0
    while pos < n:  # the blocks: their starts
        end = pos + 1
        while end < n and skey[end] == skey[pos]:
            end += 1
        nb += 1
        pos = end
    bstart = np.empty(nb + 1, dtype=np.int64)
    nb = 0
    pos = 0
    while pos < n:
        end = pos + 1
        while end < n and skey[end] == skey[pos]:
            end += 1
        bstart[nb] = pos
        nb += 1
        pos = end
    bstart[nb] = n
    out = np.empty(1 << 16, dtype=np.uint64)
    m = 0
    cand = np.empty(1024, dtype=np.int64)
    # each mine row's uncapped blocks (CSR by row), the capped blocks' pairs checked on the way
    roff = np.zeros(n_rows + 1, dtype=np.int64)
    for b in range(nb):
        s, e = bstart[b], bstart[b + 1]
        size = e - s
        if size <= cap:
            for t in range(s, e):
                if mine[srow[t]]:
                    roff[srow[t] + 1] += 1
            continue
        room = size - 1
        counts[0] += room
        counts[1] += room * (room + 1) // 2 - room
        head = srow[s]
        c = 0
        for t in range(s + 1, e):
            if mine[head] or mine[srow[t]]:
                cand = _grown(cand, c)
                cand[c] = srow[t]
                c += 1
        out, m = _check_partners(head, cand, c, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                                 min_agreement, min_jaccard, out, m)
    for i in range(n_rows):
        roff[i + 1] += roff[i]
    at = roff[:-1].copy()
    rblock = np.empty(roff[n_rows], dtype=np.int64)
    for b in range(nb):
        s, e = bstart[b], bstart[b + 1]
        if e - s > cap:
            continue
        for t in range(s, e):
            r = srow[t]
            if mine[r]:
                rblock[at[r]] = b
                at[r] += 1
    stamp = np.full(n_rows, -1, dtype=np.int64)
    checked = 0
    for x in range(n_rows):
        if roff[x] == roff[x + 1]:
            continue
        stamp[x] = x
        c = 0
        for q in range(roff[x], roff[x + 1]):  # x's partners, each once: then checked in a loop of their own
            b = rblock[q]
            for t in range(bstart[b], bstart[b + 1]):
                y = srow[t]
                if stamp[y] == x:
                    continue
                stamp[y] = x
                if y < x and mine[y]:  # checked from y
                    continue
                if c == len(cand):
                    cand = _grown(cand, c)
                cand[c] = y
                c += 1
        checked += c
        out, m = _check_partners(x, cand, c, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                                 min_agreement, min_jaccard, out, m)
    counts[0] += checked
    return out[:m]

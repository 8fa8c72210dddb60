"""The compiled loops of dedup's spec rule (numba): spec agreement of pairs, the spec block keys,
the pairs of each block that pass, the Jaccard of ``property=value`` sets and the chance of an
agreement within a brand.

Each loop is the per-row or per-pair work that numpy would do through temporaries of
``rows x candidates``; compiled, it runs in one pass with no temporary. Callers are
:mod:`.dedup_spec` and :mod:`.dedup_inputs`; the index loops (MinHash, pHash) are in :mod:`.near_jit`.
"""

from __future__ import annotations

import numba
import numpy as np

from .near_jit import mix64


@numba.njit(cache=True, nogil=True)
def _next_shared_property(keys, a, ae, b, be):  # pragma: no cover - compiled
    """From positions ``a`` and ``b`` of two rows' entries (sorted by property code), the next
    property both list: ``(a, a2, b, b2)``, its runs ``[a, a2)`` and ``[b, b2)``; ``a == ae`` when
    none is left."""
    while a < ae and b < be:
        ka, kb = keys[a], keys[b]
        if ka < kb:
            a += 1
        elif kb < ka:
            b += 1
        else:
            a2, b2 = a, b
            while a2 < ae and keys[a2] == ka:
                a2 += 1
            while b2 < be and keys[b2] == ka:
                b2 += 1
            return a, a2, b, b2
    return ae, ae, be, be


@numba.njit(cache=True, nogil=True)
def _share_value(values, x, x2, y, y2):  # pragma: no cover - compiled
    """1 when the sorted runs ``values[x:x2]`` and ``values[y:y2]`` (one property's values of two rows)
    share a value, else 0."""
    while x < x2 and y < y2:
        if values[x] == values[y]:
            return 1
        if values[x] < values[y]:
            x += 1
        else:
            y += 1
    return 0


@numba.njit(cache=True, nogil=True)
def _walk_properties(i, j, offsets, keys, values, brand_key, min_agreement):  # pragma: no cover - compiled
    """Rows ``i`` and ``j``'s sorted entry lists walked property by property: ``(shared properties
    besides the brand, agreeing ones, stopped)``; the walk stops (``stopped`` True) as soon as the
    properties left could not bring the agreeing share up to ``min_agreement`` (negative: never)."""
    shared = 0
    equal = 0
    a, ae = offsets[i], offsets[i + 1]
    b, be = offsets[j], offsets[j + 1]
    while True:
        a, a2, b, b2 = _next_shared_property(keys, a, ae, b, be)
        if a >= ae:
            break
        if keys[a] != brand_key:
            shared += 1
            equal += _share_value(values, a, a2, b, b2)
        a, b = a2, b2
        left = min(ae - a, be - b)  # at most this many shared properties to come, each agreeing at best
        if equal + left < min_agreement * (shared + left) - 1e-9:
            return shared, equal, True
    return shared, equal, False


@numba.njit(cache=True, nogil=True)
def _agree(i, j, offsets, keys, values, brand_offsets, brands, brand_key):  # pragma: no cover - compiled
    """Rows ``i`` and ``j``: ``(same brand, shared properties besides the brand, agreeing ones)``;
    see :func:`spec_agreement`."""
    a, ae = brand_offsets[i], brand_offsets[i + 1]
    b, be = brand_offsets[j], brand_offsets[j + 1]
    same = -1
    if a < ae and b < be:
        same = 0
        while a < ae and b < be:
            if brands[a] == brands[b]:
                same = 1
                break
            if brands[a] < brands[b]:
                a += 1
            else:
                b += 1
    shared, equal, _ = _walk_properties(i, j, offsets, keys, values, brand_key, -1.0)
    return same, shared, equal


@numba.njit(cache=True, nogil=True)
def spec_agreement(left, right, offsets, keys, values, brand_offsets, brands, brand_key):  # pragma: no cover
    """Per pair: ``same brand`` (1, 0, or -1 when a side has none), shared properties besides the
    brand, and agreeing ones (their value sets intersect).

    Args:
        left, right: the pairs (row numbers).
        offsets, keys, values: each row's comparable ``(property, value)`` codes, sorted by property
            then value, in CSR form.
        brand_offsets, brands: each row's brand spelling codes, sorted, in CSR form.
        brand_key: the brand's property code (-1 when no row lists it).
    """
    n = len(left)
    same = np.empty(n, dtype=np.int8)
    shared = np.zeros(n, dtype=np.int32)
    equal = np.zeros(n, dtype=np.int32)
    for k in range(n):
        same[k], shared[k], equal[k] = _agree(left[k], right[k], offsets, keys, values, brand_offsets, brands,
                                              brand_key)
    return same, shared, equal


@numba.njit(cache=True, nogil=True)
def _agree_enough(i, j, offsets, keys, values, brand_offsets, brands, brand_key, min_shared,
                  min_agreement):  # pragma: no cover - compiled
    """:func:`_agree`'s test of a pair: the same brand, ``min_shared`` shared properties besides the brand
    and at least ``min_agreement`` of them agreeing; the walk stops as soon as the properties left
    could not make up the disagreements so far (the loose blocks of the learned matcher check
    millions of pairs that fail early)."""
    a, ae = brand_offsets[i], brand_offsets[i + 1]
    b, be = brand_offsets[j], brand_offsets[j + 1]
    same = False
    while a < ae and b < be:
        if brands[a] == brands[b]:
            same = True
            break
        if brands[a] < brands[b]:
            a += 1
        else:
            b += 1
    if not same:
        return False
    shared, equal, short = _walk_properties(i, j, offsets, keys, values, brand_key, min_agreement)
    if short:
        return False
    return shared >= min_shared and equal >= min_agreement * shared


@numba.njit(cache=True, nogil=True)
def _spec_pair(i, j, offsets, keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement,
               min_jaccard, out, m):  # pragma: no cover - compiled
    """Writes rows ``i`` and ``j`` packed at ``out[m]`` when they pass the spec rule's checks; the next ``m``."""
    if i == j:
        return m
    if not _agree_enough(i, j, offsets, keys, values, brand_offsets, brands, brand_key, min_shared, min_agreement):
        return m
    if _jaccard(i, j, offsets, keys, values) < min_jaccard:
        return m
    out[m] = (np.uint64(min(i, j)) << np.uint64(32)) | np.uint64(max(i, j))
    return m + 1


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


@numba.njit(cache=True, nogil=True, inline="always")
def _walk_inline(keys, values, a, ae, b, be, brand_key, min_agreement):  # pragma: no cover - compiled
    """:func:`_walk_properties` of the entries ``[a, ae)`` and ``[b, be)``, inlined into its caller
    (the same steps and the same early stop): ``(shared, equal, stopped)``."""
    shared = 0
    equal = 0
    while a < ae and b < be:
        ka, kb = keys[a], keys[b]
        if ka < kb:
            a += 1
        elif kb < ka:
            b += 1
        else:
            a2, b2 = a, b
            while a2 < ae and keys[a2] == ka:
                a2 += 1
            while b2 < be and keys[b2] == ka:
                b2 += 1
            if ka != brand_key:
                shared += 1
                x, y = a, b
                hit = 0
                while x < a2 and y < b2:
                    if values[x] == values[y]:
                        hit = 1
                        break
                    if values[x] < values[y]:
                        x += 1
                    else:
                        y += 1
                equal += hit
            a, b = a2, b2
            left = min(ae - a, be - b)  # at most this many shared properties to come, each agreeing at best
            if equal + left < min_agreement * (shared + left) - 1e-9:
                return shared, equal, True
    return shared, equal, False


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
        p, pe, q, qe = brand_offsets[x], brand_offsets[x + 1], brand_offsets[j], brand_offsets[j + 1]
        same = False
        while p < pe and q < qe:
            if brands[p] == brands[q]:
                same = True
                break
            if brands[p] < brands[q]:
                p += 1
            else:
                q += 1
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


@numba.njit(cache=True, nogil=True)
def _jaccard(i, j, offsets, keys, values):  # pragma: no cover - compiled
    """Jaccard of the ``(property, value)`` entry sets of rows ``i`` and ``j``."""
    a, ae = offsets[i], offsets[i + 1]
    b, be = offsets[j], offsets[j + 1]
    size = (ae - a) + (be - b)
    common = 0
    while a < ae and b < be:
        if keys[a] == keys[b] and values[a] == values[b]:
            common += 1
            a += 1
            b += 1
        elif keys[a] < keys[b] or (keys[a] == keys[b] and values[a] < values[b]):
            a += 1
        else:
            b += 1
    return common / (size - common) if size > common else 0.0


@numba.njit(cache=True, nogil=True)
def entry_jaccard(left, right, offsets, keys, values, out):  # pragma: no cover - compiled
    """``out[k]``: Jaccard of the ``(property, value)`` entry sets of rows ``left[k]`` and ``right[k]``
    (each sorted by property then value, in CSR form)."""
    for k in range(len(left)):
        out[k] = _jaccard(left[k], right[k], offsets, keys, values)


@numba.njit(cache=True, nogil=True)
def _count_of(ukeys, counts, h):  # pragma: no cover - compiled
    i = np.searchsorted(ukeys, h)
    return counts[i] if i < len(ukeys) and ukeys[i] == h else 0


@numba.njit(cache=True, nogil=True)
def _next_equal(arr, a, ae, b, be):  # pragma: no cover - compiled
    """From positions ``a`` and ``b`` of two sorted runs ``arr[a:ae]``, ``arr[b:be]``, the next
    positions holding one value: ``(a, b)``, or ``(ae, be)`` when the runs share no more values."""
    while a < ae and b < be:
        if arr[a] == arr[b]:
            return a, b
        if arr[a] < arr[b]:
            a += 1
        else:
            b += 1
    return ae, be


@numba.njit(cache=True, nogil=True)
def spec_chance(left, right, offsets, keys, values, brand_offsets, brands, brand_key, spelling_rows,
                ukeys, counts, freq, n_rows, prior, out):  # pragma: no cover - compiled
    """``out[k]``: how many other rows of the pair's brand would agree with row ``left[k]`` on every
    property it agrees on with ``right[k]`` if values were drawn at the brand's own frequencies:
    ``(n - 2) * prod(p)`` over the agreeing properties, ``p`` the share of the brand's other rows
    (the pair left out) listing the property's rarest shared value.

    The brand is the pair's shared spelling with the most rows (``spelling_rows``); a value's rows
    within a spelling are ``counts`` at ``ukeys`` (sorted keys of :func:`spec_block_keys` with
    ``need=1``; ``freq``: per entry of ``keys``/``values``, the catalogue's rows listing it). A model
    number only these two rows list gives 0; two values every listing of a sub-class carries, in a
    brand of thousands, give hundreds. (An incremental run's few keys: :func:`chance_keys`, the same
    values.)
    """
    for k in range(len(left)):
        i, j = left[k], right[k]
        spelling, n = _chosen_spelling(i, j, brand_offsets, brands, spelling_rows)
        if spelling < 0 or n <= 2:
            out[k] = 0.0
            continue
        chance = float(n - 2)
        a, ae = offsets[i], offsets[i + 1]
        b, be = offsets[j], offsets[j + 1]
        while chance > 0.0:
            a, a2, b, b2 = _next_shared_property(keys, a, ae, b, be)
            if a >= ae:
                break
            ka = keys[a]
            if ka != brand_key:
                rarest = -1.0
                x, y = _next_equal(values, a, a2, b, b2)
                while x < a2:
                    c = _count_of(ukeys, counts, _spec_key(spelling, ka, values[x], 0xFFFFFFFF, 0))
                    g = freq[x]  # the catalogue's rows listing the entry
                    q = (max(c - 2, 0) + prior * g / n_rows) / (n - 2 + prior)
                    if rarest < 0 or q < rarest:
                        rarest = q
                    x, y = _next_equal(values, x + 1, a2, y + 1, b2)
                if rarest >= 0:
                    chance *= rarest
            a, b = a2, b2
        out[k] = chance


@numba.njit(cache=True, nogil=True)
def _chosen_spelling(i, j, brand_offsets, brands, spelling_rows):  # pragma: no cover - compiled
    """The pair's shared spelling with the most rows and its rows (``(-1, 0)``: none shared)."""
    a, ae = brand_offsets[i], brand_offsets[i + 1]
    b, be = brand_offsets[j], brand_offsets[j + 1]
    spelling, n = -1, 0
    a, b = _next_equal(brands, a, ae, b, be)
    while a < ae:
        if spelling_rows[brands[a]] > n:
            spelling, n = brands[a], spelling_rows[brands[a]]
        a, b = _next_equal(brands, a + 1, ae, b + 1, be)
    return spelling, n


@numba.njit(cache=True, nogil=True)
def _slot(table, h):  # pragma: no cover - compiled
    """The slot of key ``h`` in the open-addressing set ``table`` (its slots hold key + 1: 0 is empty):
    where it is, or the empty slot it would take."""
    mask = np.uint64(len(table) - 1)
    s = mix64(h) & mask
    while table[s] != 0 and table[s] != h + np.uint64(1):
        s = (s + np.uint64(1)) & mask
    return s


@numba.njit(cache=True, nogil=True)
def _grown(arr, m):  # pragma: no cover - compiled
    """``arr`` when it has room for index ``m``, else a copy twice as long."""
    if m < len(arr):
        return arr
    out = np.empty(2 * len(arr), dtype=arr.dtype)
    out[:len(arr)] = arr
    return out


@numba.njit(cache=True, nogil=True)
def chance_keys(left, right, offsets, keys, values, brand_offsets, brands, brand_key, spelling_rows,
                freq):  # pragma: no cover - compiled
    """:func:`spec_chance`'s walk of the pairs, its lookups written down instead of made: an incremental
    run counts only the keys looked up (:func:`count_chance_keys`), then :func:`chance_from` computes
    each chance from what is written here, in :func:`spec_chance`'s order (the same floats).

    Returns ``(table, chosen, start, n, slot, g)``: the ``(spelling, property, value)`` keys looked up
    (as :func:`spec_block_keys` with ``need=1`` makes them; this walk does not stop at a chance of 0,
    so a superset) as an open-addressing set (slots hold key + 1, 0 empty; at most half full); the
    spellings they name (bool per spelling code); per pair, where its records start and its
    spelling's rows (``n``; <= 2: a chance of 0); the records: per shared value of an agreeing
    property its key and ``freq`` (the catalogue's rows listing it), a property's values closed by
    a record of ``freq`` -1."""
    table = np.zeros(1 << 16, dtype=np.uint64)
    chosen = np.zeros(len(spelling_rows), dtype=np.bool_)
    start = np.zeros(len(left) + 1, dtype=np.int64)
    pair_n = np.zeros(len(left), dtype=np.int64)
    slot = np.empty(1 << 16, dtype=np.uint64)  # each lookup's key (its slot is found after the table's growth)
    g = np.empty(1 << 16, dtype=np.int64)
    held = 0
    m = 0
    for k in range(len(left)):
        start[k] = m
        i, j = left[k], right[k]
        spelling, n = _chosen_spelling(i, j, brand_offsets, brands, spelling_rows)
        pair_n[k] = n
        if spelling < 0 or n <= 2:
            pair_n[k] = 0
            continue
        chosen[spelling] = True
        a, ae = offsets[i], offsets[i + 1]
        b, be = offsets[j], offsets[j + 1]
        while True:
            a, a2, b, b2 = _next_shared_property(keys, a, ae, b, be)
            if a >= ae:
                break
            ka = keys[a]
            if ka != brand_key:
                x, y = _next_equal(values, a, a2, b, b2)
                some = False
                while x < a2:
                    h = _spec_key(spelling, ka, values[x], 0xFFFFFFFF, 0)
                    s = _slot(table, h)
                    if table[s] == 0:
                        table[s] = h + np.uint64(1)
                        held += 1
                        if 2 * held > len(table):  # grow: the held keys into a table 4 times as large
                            old = table
                            table = np.zeros(4 * len(old), dtype=np.uint64)
                            for t in range(len(old)):
                                if old[t] != 0:
                                    table[_slot(table, old[t] - np.uint64(1))] = old[t]
                    if m >= len(slot):  # (not a call per record)
                        slot = _grown(slot, m)
                        g = _grown(g, m)
                    slot[m] = h
                    g[m] = freq[x]
                    m += 1
                    some = True
                    x, y = _next_equal(values, x + 1, a2, y + 1, b2)
                if some:
                    if m >= len(slot):
                        slot = _grown(slot, m)
                        g = _grown(g, m)
                    slot[m] = 0
                    g[m] = -1
                    m += 1
            a, b = a2, b2
    start[len(left)] = m
    return table, chosen, start, pair_n, slot[:m], g[:m]


@numba.njit(cache=True, nogil=True)
def chance_from(start, pair_n, slot, g, table, tcounts, n_rows, prior, out):  # pragma: no cover - compiled
    """``out[k]``: :func:`spec_chance` of pair ``k`` from :func:`chance_keys`' records and the counts
    at their keys' slots of ``table`` (``tcounts``, :func:`count_chance_keys`): the same expression,
    factors in the same order."""
    for k in range(len(pair_n)):
        n = pair_n[k]
        if n <= 2:
            out[k] = 0.0
            continue
        chance = float(n - 2)
        rarest = -1.0
        for t in range(start[k], start[k + 1]):
            if chance <= 0.0:
                break
            if g[t] < 0:  # a property's values end
                if rarest >= 0:
                    chance *= rarest
                rarest = -1.0
                continue
            q = (max(tcounts[_slot(table, slot[t])] - 2, 0) + prior * g[t] / n_rows) / (n - 2 + prior)
            if rarest < 0 or q < rarest:
                rarest = q
        out[k] = chance


@numba.njit(cache=True, nogil=True)
def count_chance_keys(offsets, keys, values, brand_offsets, brands, brand_key, table, spellings,
                      counts):  # pragma: no cover - compiled
    """``counts[s]``: the rows whose ``need=1`` block keys (:func:`spec_block_keys`) include the key at
    slot ``s`` of ``table`` (:func:`chance_keys`), keys made only for the spellings ``spellings``
    (bool per spelling code) marks: the counts ``np.unique`` over every row's keys gives, for these
    keys only."""
    for i in range(len(offsets) - 1):
        for bb in range(brand_offsets[i], brand_offsets[i + 1]):
            b = brands[bb]
            if not spellings[b]:
                continue
            for e in range(offsets[i], offsets[i + 1]):
                if keys[e] == brand_key:
                    continue
                s = _slot(table, _spec_key(b, keys[e], values[e], 0xFFFFFFFF, 0))
                if table[s] != 0:
                    counts[s] += 1


@numba.njit(cache=True, nogil=True)
def entry_freq(keys, values):  # pragma: no cover - compiled
    """Per entry ``(keys[t], values[t])``, how many entries are equal to it (``np.unique``'s counts at its
    inverse, without a sort of the 64-bit codes): the entries counted into buckets by value code (a
    counting sort), then each bucket's entries counted per property code in an array of the property
    codes, set back to 0 after the bucket (no sort or allocation per bucket: one argsort and two arrays
    for each of the ~100k buckets at 100k products were 0.04 of 0.05 CPU s)."""
    n = len(values)
    top = 0
    top_key = 0
    for t in range(n):
        top = max(top, values[t])
        top_key = max(top_key, keys[t])
    start = np.zeros(top + 2, dtype=np.int64)
    for t in range(n):
        start[values[t] + 1] += 1
    for v in range(top + 1):
        start[v + 1] += start[v]
    at = start[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for t in range(n):
        order[at[values[t]]] = t
        at[values[t]] += 1
    freq = np.empty(n, dtype=np.int64)
    per_key = np.zeros(top_key + 1, dtype=np.int64)
    for v in range(top + 1):
        s, e = start[v], start[v + 1]
        if e - s == 1:
            freq[order[s]] = 1
            continue
        for u in range(s, e):
            per_key[keys[order[u]]] += 1
        for u in range(s, e):
            freq[order[u]] = per_key[keys[order[u]]]
        for u in range(s, e):
            per_key[keys[order[u]]] = 0
    return freq


@numba.njit(cache=True, nogil=True)
def rarest_mask(offsets, keys, values, freq, brand_key, keep, chosen):  # pragma: no cover - compiled
    """``chosen[t]``: entry ``t`` is among its row's ``keep`` rarest non-brand entries (fewest ``freq``
    first, ties by property then value code), rows in CSR form with ``offsets``."""
    for i in range(len(offsets) - 1):
        s, e = offsets[i], offsets[i + 1]
        m = 0
        for t in range(s, e):
            if keys[t] != brand_key:
                m += 1
        for t in range(s, e):
            if keys[t] == brand_key:
                chosen[t] = False
                continue
            if m <= keep:
                chosen[t] = True
                continue
            r = 0
            for u in range(s, e):
                if u == t or keys[u] == brand_key:
                    continue
                if freq[u] < freq[t] or (freq[u] == freq[t] and (keys[u] < keys[t] or (
                        keys[u] == keys[t] and values[u] < values[t]))):
                    r += 1
            chosen[t] = r < keep


def warm_up() -> None:
    """Compile every spec loop once on tiny inputs (or load it from numba's cache), e.g. before timing."""
    z = np.zeros(1, dtype=np.int64)
    i32 = np.zeros(0, dtype=np.int32)
    u0 = np.zeros(0, dtype=np.uint64)
    spec_agreement(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1)
    spec_block_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, 2, 0, 1, u0, z[:0])
    entry_jaccard(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(1))
    spec_block_pairs(u0, z[:0], 0, 200, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1,
                     2, 1.0, 0.25, u0, np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.bool_))
    spec_block_pairs_once(u0, z[:0], 0, 200, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32,
                          -1, 2, 1.0, 0.25, u0, np.zeros(2, dtype=np.int64), np.zeros(0, dtype=np.bool_),
                          np.zeros(1, dtype=np.int64), u0, np.zeros(0, dtype=np.bool_), u0)
    spec_touched_pairs(z[:0], z[:0], 200, np.zeros(1, dtype=np.bool_), np.zeros(2, dtype=np.int64), i32, i32,
                       np.zeros(2, dtype=np.int64), i32, -1, 2, 1.0, 0.25, np.zeros(2, dtype=np.int64))
    spec_chance(z, z, np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, z, u0,
                z, z[:0], 1, 5.0, np.zeros(1))
    rarest_mask(np.zeros(2, dtype=np.int64), i32, i32, z[:0], -1, 8, np.zeros(0, dtype=np.bool_))
    entry_freq(i32, i32)
    spec_row_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, 2, u0, u0,
                  np.zeros(0, dtype=np.bool_), z[:0], z[:0])
    table, _, start, pair_n, slot, g = chance_keys(z, z, np.zeros(2, dtype=np.int64), i32, i32,
                                                   np.zeros(2, dtype=np.int64), i32, -1, z, z)
    chance_from(start, pair_n, slot, g, table, np.zeros(len(table), dtype=np.int64), 1, 5.0, np.zeros(1))
    count_chance_keys(np.zeros(2, dtype=np.int64), i32, i32, np.zeros(2, dtype=np.int64), i32, -1, table,
                      np.zeros(1, dtype=np.bool_), np.zeros(len(table), dtype=np.int64))

"""The chance of a spec agreement within a brand (compiled, numba): per pair, the rows of its brand
expected to agree as much at the brand's own value frequencies; the entries' frequencies and each
row's rarest entries (which its block keys are made of)."""

from __future__ import annotations

import numba
import numpy as np

from ..near_jit import mix64
from .agreement import _next_shared_property
from .block_keys import _spec_key


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

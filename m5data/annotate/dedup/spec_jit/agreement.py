"""Spec agreement of two products (compiled, numba): their sorted ``(property, value)`` entry lists walked
property by property (shared properties, agreeing ones, with an early stop), the pair test of the spec
rule (brand, agreement share, shared count, Jaccard) and the Jaccard of their entry sets."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
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


@numba.njit(cache=True, nogil=True, inline="always")
def _sorted_runs_share(arr, x, x2, y, y2):  # pragma: no cover - compiled
    """Whether the sorted runs ``arr[x:x2]`` and ``arr[y:y2]`` share a value (one property's values of two
    rows, or their brand spellings)."""
    while x < x2 and y < y2:
        if arr[x] == arr[y]:
            return True
        if arr[x] < arr[y]:
            x += 1
        else:
            y += 1
    return False


@numba.njit(cache=True, nogil=True)
def _walk_properties(i, j, offsets, keys, values, brand_key, min_agreement):  # pragma: no cover - compiled
    """Rows ``i`` and ``j``'s sorted entry lists walked property by property: ``(shared properties
    besides the brand, agreeing ones, stopped)``; the walk stops (``stopped`` True) as soon as the
    properties left could not bring the agreeing share up to ``min_agreement`` (negative: never)."""
    return _walk_inline(keys, values, offsets[i], offsets[i + 1], offsets[j], offsets[j + 1], brand_key, min_agreement)


@numba.njit(cache=True, nogil=True)
def _agree(i, j, offsets, keys, values, brand_offsets, brands, brand_key):  # pragma: no cover - compiled
    """Rows ``i`` and ``j``: ``(same brand, shared properties besides the brand, agreeing ones)``;
    see :func:`spec_agreement`."""
    a, ae = brand_offsets[i], brand_offsets[i + 1]
    b, be = brand_offsets[j], brand_offsets[j + 1]
    same = -1
    if a < ae and b < be:
        same = 1 if _sorted_runs_share(brands, a, ae, b, be) else 0
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
    if not _sorted_runs_share(brands, brand_offsets[i], brand_offsets[i + 1], brand_offsets[j], brand_offsets[j + 1]):
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



@numba.njit(cache=True, nogil=True, inline="always")
def _walk_inline(keys, values, a, ae, b, be, brand_key, min_agreement):  # pragma: no cover - compiled
    """:func:`_walk_properties` of the entries ``[a, ae)`` and ``[b, be)``, inlined into its caller (the one
    walk, its steps inlined too: :func:`_walk_properties` is this one over two rows): ``(shared, equal, stopped)``."""
    shared = 0
    equal = 0
    while True:
        a, a2, b, b2 = _next_shared_property(keys, a, ae, b, be)
        if a >= ae:
            break
        if keys[a] != brand_key:
            shared += 1
            equal += 1 if _sorted_runs_share(values, a, a2, b, b2) else 0
        a, b = a2, b2
        left = min(ae - a, be - b)  # at most this many shared properties to come, each agreeing at best
        if equal + left < min_agreement * (shared + left) - 1e-9:
            return shared, equal, True
    return shared, equal, False


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

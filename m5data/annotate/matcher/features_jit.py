"""Character n-gram TF-IDF of many texts, compiled (numba): what scikit-learn's
``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)`` computes, from the
n-grams :mod:`.char_grams_jit` counts; and the matcher's other per-pair loops over rows (row dot
products, codes of one product found in the other's text).

:mod:`.features` weights the counts. The result is scikit-learn's matrix up to the order of its columns
(tested): cosines, the only use, are equal to float32 rounding.
"""

from __future__ import annotations

import numba
import numpy as np

from .char_grams_jit import char_grams_of_parts


@numba.njit(cache=True, nogil=True)
def first_seen(cols, n_terms):  # pragma: no cover - compiled
    """Columns renumbered in order of first sight: ``(each entry's new column, the old column of each
    new one)``; one pass (``np.unique(..., return_index=True)`` and its stable sort were 0.57 s of
    the 100k scale world's 1.6 s of words)."""
    new = np.full(n_terms, -1, dtype=np.int64)
    used = np.empty(n_terms, dtype=np.int64)
    out = np.empty(len(cols), dtype=np.int64)
    k = 0
    for i in range(len(cols)):
        c = cols[i]
        if new[c] < 0:
            new[c] = k
            used[k] = c
            k += 1
        out[i] = new[c]
    return out, used[:k]


def warm_up() -> None:
    """Compile the loops once on tiny inputs (or load them from numba's cache), e.g. before timing:
    the n-grams, the row dot products and the TF-IDF rows."""
    import scipy.sparse as sp


    ptr, term, count, _, _ = char_grams_of_parts(["ab c", ""], [np.array([0, 2])], [np.array([0, 1])])[0]
    tfidf_matrix(ptr, term, count, np.ones(len(term) + 1, np.float32))
    x = sp.csr_matrix(np.eye(2, dtype=np.float32))
    rowdot_csr(x, np.zeros(1, np.int64), np.ones(1, np.int64))
    rowdot_csr(x, np.zeros(1, np.int64), np.ones(1, np.int64), np.ones(2, np.float32))
    codes_inside(["ab12", "xab12y"], ["ab12"], x, np.zeros(1, np.int64), np.ones(1, np.int64))
    first_seen(np.zeros(1, np.int64), 1)


@numba.njit(cache=True, nogil=True)
def _rowprod(indptr, indices, data, a, b, weight, acc, weighted):  # pragma: no cover - compiled
    """Of each pair ``(a[p], b[p])`` of rows of a CSR matrix with sorted indices: the non-zero products
    of their shared columns, in column order (scipy's ``x[a].multiply(x[b])``), their pointers, and
    (``weighted``) the float32 sum of each pair's products times ``weight[column]`` in that order
    (scipy's ``@ weight``). ``acc``: zeros, one per column (left zero)."""
    ptr = np.zeros(len(a) + 1, dtype=np.int64)
    prod = np.empty(16, dtype=np.float32)
    total = np.zeros(len(a), dtype=np.float32)
    n = 0
    for p in range(len(a)):
        i, j = a[p], b[p]
        for k in range(indptr[i], indptr[i + 1]):
            acc[indices[k]] = data[k]
        s = np.float32(0.0)
        for k in range(indptr[j], indptr[j + 1]):
            c = indices[k]
            v = acc[c] * data[k]
            if v != 0:
                if weighted:
                    s += v * weight[c]
                else:
                    if n == len(prod):
                        prod = np.concatenate((prod, np.empty(n, dtype=np.float32)))
                    prod[n] = v
                    n += 1
        for k in range(indptr[i], indptr[i + 1]):
            acc[indices[k]] = 0
        ptr[p + 1] = n
        total[p] = s
    return ptr, prod[:n], total


def rowdot_csr(x, a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """Float32 row-wise dot products of rows ``a`` and ``b`` of a float32 CSR matrix (``weight``: per
    column), to the bit what scipy's ``x[a].multiply(x[b]).sum(axis=1)`` (``@ weight``) gives, without
    gathering the rows into two new matrices (scipy's way: ~3 s of the 100k scale world's scoring step
    for ~190,000 pairs). The unweighted sum is numpy's ``add.reduceat`` of the products, as scipy's."""
    if not x.has_sorted_indices:
        x = x.sorted_indices()
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    w = np.ones(1, dtype=np.float32) if weight is None else np.ascontiguousarray(weight, dtype=np.float32)
    ptr, prod, total = _rowprod(x.indptr, x.indices, np.ascontiguousarray(x.data, dtype=np.float32), a, b, w,
                                np.zeros(x.shape[1], dtype=np.float32), weight is not None)
    if weight is not None:
        return total
    out = np.zeros(len(a), dtype=np.float32)
    some = np.flatnonzero(np.diff(ptr))
    if len(some):
        out[some] = np.add.reduceat(prod, ptr[some])
    return out


@numba.njit(cache=True, nogil=True)
def _tfidf_rows(indptr, term, count, idf, log_count):  # pragma: no cover - compiled
    """Sublinear TF x IDF, each row L2-normalised and its terms sorted: ``(indices, data)`` in
    :func:`tfidf_matrix`'s arithmetic (float32 weights, a float64 norm summed in row order)."""
    indices = np.empty(len(term), dtype=np.int32)
    data = np.empty(len(term), dtype=np.float32)
    for d in range(len(indptr) - 1):
        s, e = indptr[d], indptr[d + 1]
        norm = 0.0
        for k in range(s, e):
            w = np.float32(log_count[count[k]]) * idf[term[k]]
            data[k] = w
            norm += np.float64(w) ** 2
        norm = np.sqrt(norm)
        if norm <= 0:
            norm = 1.0
        for k in range(s, e):
            data[k] = np.float32(np.float64(data[k]) / norm)
        order = np.argsort(term[s:e])
        row_t, row_d = term[s:e][order], data[s:e][order]
        for k in range(e - s):
            indices[s + k] = row_t[k]
            data[s + k] = row_d[k]
    return indices, data


@numba.njit(cache=True, nogil=True)
def _inside(text, text_off, code, code_off, row_ptr, row_code, a, b):  # pragma: no cover - compiled
    """Per pair: is one of row ``a[p]``'s codes a substring of text ``b[p]``, or one of ``b[p]``'s of
    text ``a[p]``? Texts and codes are code points (``text[text_off[i]:text_off[i + 1]]``); row ``i``'s
    codes ``row_code[row_ptr[i]:row_ptr[i + 1]]``."""
    out = np.zeros(len(a), dtype=np.bool_)
    for p in range(len(a)):
        found = False
        for side in range(2):
            i, j = (a[p], b[p]) if side == 0 else (b[p], a[p])
            t0, t1 = text_off[j], text_off[j + 1]
            for r in range(row_ptr[i], row_ptr[i + 1]):
                c0, c1 = code_off[row_code[r]], code_off[row_code[r] + 1]
                n = c1 - c0
                for s in range(t0, t1 - n + 1):
                    k = 0
                    while k < n and text[s + k] == code[c0 + k]:
                        k += 1
                    if k == n:
                        found = True
                        break
                if found:
                    break
            if found:
                break
        out[p] = found
    return out


def _cps(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one array of code points and their offsets."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)), out=offsets[1:])
    return np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32), offsets


def codes_inside(texts: list[str], codes: list[str], x, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair ``(a[i], b[i])``: ``any(c in texts[b] for c in codes of a) or any(c in texts[a] for c in
    codes of b)``, a row's codes the columns of the 0/1 CSR matrix ``x`` (indexes into ``codes``); the
    substring search compiled (in Python it was ~1.3 s for the 100k scale world's ~170,000 pairs)."""
    text, text_off = _cps(texts)
    code, code_off = _cps(codes)
    return _inside(text, text_off, code, code_off, x.indptr.astype(np.int64), x.indices.astype(np.int64),
                   np.asarray(a, np.int64), np.asarray(b, np.int64))


def tfidf_matrix(indptr: np.ndarray, term: np.ndarray, count: np.ndarray, idf: np.ndarray):
    """A scipy CSR matrix of L2-normalised rows of sublinear TF (1 + log count) x ``idf`` (float32, as scikit-learn's), each
    row's terms sorted; compiled, one pass (numpy and scipy's sort took ~2 s on the 100k scale world's
    25 million n-gram entries)."""
    import scipy.sparse as sp

    n = len(indptr) - 1
    log_count = np.r_[0.0, 1.0 + np.log(np.arange(1, int(count.max(initial=0)) + 1, dtype=np.float64))]  # [c]
    indices, data = _tfidf_rows(indptr, term, count, np.ascontiguousarray(idf, np.float32), log_count)
    x = sp.csr_matrix((data, indices, indptr), shape=(n, max(1, len(idf))))
    x.has_sorted_indices = True
    return x

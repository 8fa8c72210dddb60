"""Character n-gram TF-IDF of many texts, compiled (numba): what scikit-learn's
``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)`` computes, without a
Python generator of n-gram strings and a dict lookup per n-gram.

scikit-learn's analyser was most of the matcher's cost in dedup (the 10k scale world: 6.4 of a
profiled 17.5 s). Here a text is an array of code points, an n-gram is one ``uint64`` (up to four
16-bit symbol numbers: the texts' distinct characters numbered, the word padding its own symbol),
the vocabulary an open-addressing hash table and each row's counts are gathered in one pass;
:mod:`.features` weights them. The result is scikit-learn's matrix up to the order of its columns
(tested): cosines, the only use, are equal to float32 rounding.
"""

from __future__ import annotations

import numba
import numpy as np

_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, nogil=True)
def _symbols(cps, table):  # pragma: no cover - compiled
    """Number the distinct code points of ``cps`` in order of first sight (1, 2, ...; ``table`` is
    zero-filled, one entry per code point); returns the code points by number (index 0 unused)."""
    seen = [np.uint32(0)]
    for c in cps:
        if table[c] == 0:
            table[c] = len(seen)
            seen.append(c)
    return np.array(seen, dtype=np.uint32)


@numba.njit(cache=True, nogil=True)
def _grams(sym, offsets, space, n_min, n_max, cap):  # pragma: no cover - compiled
    """Each text's char_wb n-grams counted: ``(indptr, term, count, df, vocabulary keys)``.

    ``sym``: the texts' characters as symbol numbers (2..; 1 is the padding of a word), ``space``:
    per symbol, is it whitespace. As scikit-learn's ``_char_wb_ngrams``: every maximal run of
    non-space characters is padded with one space each side; n-grams of each length from n_min, a
    padded word shorter than n counted once whole and the longer lengths skipped."""
    n_docs = len(offsets) - 1
    size = 1 << 16
    while size < 2 * cap:
        size <<= 1
    keys = np.full(size, _EMPTY, dtype=np.uint64)
    ids = np.zeros(size, dtype=np.int64)
    vocab = np.empty(cap, dtype=np.uint64)
    n_vocab = 0
    last = np.full(cap, -1, dtype=np.int64)  # the last text a term was seen in
    slot = np.zeros(cap, dtype=np.int64)  # where in the output that text's count of it sits
    df = np.zeros(cap, dtype=np.int64)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    term = np.empty(1024, dtype=np.int64)
    count = np.empty(1024, dtype=np.int64)
    n_out = 0
    word = np.empty(64, dtype=np.int64)
    mask = size - 1
    for d in range(n_docs):
        i, end = offsets[d], offsets[d + 1]
        while i < end:
            while i < end and space[sym[i]]:
                i += 1
            if i >= end:
                break
            j = i
            while j < end and not space[sym[j]]:
                j += 1
            w_len = j - i + 2
            if w_len > len(word):
                word = np.empty(2 * w_len, dtype=np.int64)
            word[0] = 1
            for k in range(i, j):
                word[k - i + 1] = sym[k]
            word[w_len - 1] = 1
            i = j
            for n in range(n_min, n_max + 1):
                stop = max(w_len - n, 0) + 1
                for o in range(stop):
                    key = np.uint64(0)
                    for k in range(o, min(o + n, w_len)):
                        key = (key << np.uint64(16)) | np.uint64(word[k])
                    h = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)
                    p = np.int64(h) & mask
                    while keys[p] != key and keys[p] != _EMPTY:
                        p = (p + 1) & mask
                    if keys[p] == _EMPTY:
                        if n_vocab >= cap:  # the table is full: the caller retries with a bigger one
                            return indptr, term[:0], count[:0], df[:0], vocab[:0], False
                        keys[p] = key
                        ids[p] = n_vocab
                        vocab[n_vocab] = key
                        n_vocab += 1
                    t = ids[p]
                    if last[t] != d:
                        last[t] = d
                        df[t] += 1
                        if n_out == len(term):
                            term = np.concatenate((term, np.empty(n_out, dtype=np.int64)))
                            count = np.concatenate((count, np.empty(n_out, dtype=np.int64)))
                        slot[t] = n_out
                        term[n_out] = t
                        count[n_out] = 1
                        n_out += 1
                    else:
                        count[slot[t]] += 1
                if w_len <= n:
                    break
        indptr[d + 1] = n_out
    return indptr, term[:n_out], count[:n_out], df[:n_vocab], vocab[:n_vocab], True


def char_grams(texts: list[str], n_min: int = 2, n_max: int = 4) -> tuple:
    """The char_wb n-grams of cleaned texts (:func:`.text.clean`) counted per text: ``(indptr, term,
    count, df, grams)``: text ``d``'s terms are ``term[indptr[d]:indptr[d + 1]]`` with their counts,
    ``df`` the texts holding each term, ``grams`` each term's string. ValueError where the texts hold
    more distinct characters than 16-bit symbols number (the caller then counts in Python)."""
    joined = "".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=offsets[1:])
    table = np.zeros(0x110000, dtype=np.int32)
    chars = _symbols(cps, table)
    if len(chars) + 1 >= 1 << 16 or n_max > 4:  # symbols no longer fit 16 bits each
        raise ValueError("too many distinct characters for the compiled n-grams")
    sym = table[cps].astype(np.int64) + 1  # 2.. (1: a word's padding)
    space = np.zeros(len(chars) + 1, dtype=np.bool_)
    space[2:] = [chr(c).isspace() for c in chars[1:].tolist()]
    cap = max(1 << 16, len(cps) // 8)  # vocabulary entries (grown when the table fills)
    while True:
        indptr, term, count, df, vocab, ok = _grams(sym, offsets, space, n_min, n_max, cap)
        if ok:
            break
        cap *= 4
    return indptr, term, count, df, _strings(vocab, np.r_[np.uint32(0), np.uint32(32), chars[1:]])


def _strings(keys: np.ndarray, code_point: np.ndarray) -> list[str]:
    """The n-gram keys as strings (a key's first character sits in its highest used 16 bits)."""
    groups = np.stack([(keys >> np.uint64(16 * k)) & np.uint64(0xFFFF) for k in range(4)], axis=1).astype(np.int64)
    length = (groups > 0).sum(axis=1)
    at = length[:, None] - 1 - np.arange(4)[None, :]
    cp = np.where(at >= 0, code_point[groups[np.arange(len(keys))[:, None], np.maximum(at, 0)]], 0).astype("<u4")
    return np.ascontiguousarray(cp).view("<U4").ravel().tolist()


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
def _merge(p_indptr, p_term, p_count, n_terms, doc_ptr, doc_parts, n_out_max):  # pragma: no cover - compiled
    """Counts of documents made of parts: document ``d`` is the parts ``doc_parts[doc_ptr[d]:doc_ptr[d +
    1]]`` (each a row ``p_term/p_count[p_indptr[q]:p_indptr[q + 1]]`` of :func:`_grams`), its counts the
    sum of theirs. Terms are numbered again in order of first sight, as :func:`_grams` numbers the
    documents' own text: ``(indptr, term, count, df, old term of each new one)``."""
    n_docs = len(doc_ptr) - 1
    new = np.full(n_terms, -1, dtype=np.int64)
    order = np.empty(n_terms, dtype=np.int64)
    last = np.full(n_terms, -1, dtype=np.int64)
    slot = np.zeros(n_terms, dtype=np.int64)
    df = np.zeros(n_terms, dtype=np.int64)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    term = np.empty(n_out_max, dtype=np.int64)
    count = np.empty(n_out_max, dtype=np.int64)
    n_new = 0
    n_out = 0
    for d in range(n_docs):
        for r in range(doc_ptr[d], doc_ptr[d + 1]):
            q = doc_parts[r]
            for k in range(p_indptr[q], p_indptr[q + 1]):
                t = p_term[k]
                if new[t] < 0:
                    new[t] = n_new
                    order[n_new] = t
                    n_new += 1
                u = new[t]
                if last[u] != d:
                    last[u] = d
                    df[u] += 1
                    slot[u] = n_out
                    term[n_out] = u
                    count[n_out] = p_count[k]
                    n_out += 1
                else:
                    count[slot[u]] += p_count[k]
        indptr[d + 1] = n_out
    return indptr, term[:n_out], count[:n_out], df[:n_new], order[:n_new]


def char_grams_of_parts(parts: list[str], doc_ptr: np.ndarray, doc_parts: list[np.ndarray], n_min: int = 2,
                        n_max: int = 4) -> list[tuple]:
    """:func:`char_grams` of documents made of ``parts`` joined by spaces (cleaned texts), each distinct
    part counted once: for each ``doc_parts`` (with its ``doc_ptr``) the documents' ``(indptr, term,
    count, df, grams)``, equal to :func:`char_grams` of the joined texts (char_wb n-grams never cross a
    space, so a document's counts are the sum of its parts'; terms numbered in the same order)."""
    indptr, term, count, _, grams = char_grams(parts, n_min, n_max)
    lengths = np.diff(indptr)
    out = []
    for ptr, which in zip(doc_ptr, doc_parts):
        which = np.asarray(which, np.int64)
        d_indptr, d_term, d_count, df, old = _merge(indptr, term, count, len(grams), np.asarray(ptr, np.int64), which,
                                                    int(lengths[which].sum()))
        out.append((d_indptr, d_term, d_count, df, [grams[i] for i in old.tolist()]))
    return out


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

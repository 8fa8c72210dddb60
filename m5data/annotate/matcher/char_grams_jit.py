"""Character n-grams of many texts counted, compiled (numba): the counts scikit-learn's
``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))`` analyser gives, without a Python
generator of n-gram strings and a dict lookup per n-gram.

scikit-learn's analyser was most of the matcher's cost in dedup (the 10k scale world: 6.4 of a
profiled 17.5 s). Here a text is an array of code points, an n-gram is one ``uint64`` (up to four
16-bit symbol numbers: the texts' distinct characters numbered, the word padding its own symbol),
the vocabulary an open-addressing hash table and each row's counts are gathered in one pass;
documents made of parts (a title, a caption, a spec value) get their counts as the sum of their
distinct parts' (:func:`char_grams_of_parts`). :mod:`.features_jit` makes the TF-IDF rows of
these counts.
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
def _count_in_row(d, t, c, last, df, slot, term, count, n_out):  # pragma: no cover - compiled
    """Add ``c`` to the count of term ``t`` in document ``d``, the row being built: its terms and counts
    are ``term/count[...:n_out]`` (room for one more), ``slot[t]`` where its count of ``t`` sits once
    ``last[t] == d``, ``df[t]`` the documents holding ``t``. Returns the new ``n_out``."""
    if last[t] == d:
        count[slot[t]] += c
        return n_out
    last[t] = d
    df[t] += 1
    slot[t] = n_out
    term[n_out] = t
    count[n_out] = c
    return n_out + 1


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
                    if n_out == len(term):  # room for the row's next term
                        term = np.concatenate((term, np.empty(n_out, dtype=np.int64)))
                        count = np.concatenate((count, np.empty(n_out, dtype=np.int64)))
                    n_out = _count_in_row(d, ids[p], 1, last, df, slot, term, count, n_out)
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
                n_out = _count_in_row(d, new[t], p_count[k], last, df, slot, term, count, n_out)
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

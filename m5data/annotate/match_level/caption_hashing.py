"""Hashed caption features of the caption classifier (:mod:`.textclf`), compiled with numba.

jieba tokens and character 1-3-grams of each caption, read straight from Arrow buffers, hashed
into ``dim`` columns (no vocabulary to hold); a product keeps ``(column, 1 + log tf)`` pairs and
how many of them are word features. :func:`mix` is also the hash of the classifier's weight slots.
"""

from __future__ import annotations

import numba
import numpy as np

M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
WORD_SALT = 0x5EED0001
CHAR_SALT = 0x5EED0002


@numba.njit(cache=True, inline="always")
def mix(x):  # pragma: no cover - compiled
    """splitmix64 finaliser: a well-spread 64-bit hash of a 64-bit value."""
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    return x ^ (x >> np.uint64(31))


@numba.njit(cache=True)
def _decode_utf8(data, start, stop, out):  # pragma: no cover - compiled
    """Code points of data[start:stop] into out; returns their number (bad bytes count as themselves)."""
    n = 0
    i = start
    while i < stop:
        b = np.uint32(data[i])
        if b < 0x80:
            cp, extra = b, 0
        elif b >> 5 == 0x6:
            cp, extra = b & 0x1F, 1
        elif b >> 4 == 0xE:
            cp, extra = b & 0x0F, 2
        elif b >> 3 == 0x1E:
            cp, extra = b & 0x07, 3
        else:
            cp, extra = b, 0
        if i + extra >= stop:  # a sequence cut short
            cp, extra = b, 0
        for j in range(1, extra + 1):
            cp = (cp << np.uint32(6)) | (np.uint32(data[i + j]) & np.uint32(0x3F))
        out[n] = cp
        n += 1
        i += 1 + extra
    return n


@numba.njit(cache=True)
def _emit(hashes, m, dim, col_out, tf_out, pos):  # pragma: no cover - compiled
    """Sort m hashes (mod dim), write (column, 1 + log count) of each distinct one; returns the new pos."""
    cols = np.empty(m, np.int64)
    for i in range(m):
        cols[i] = np.int64(hashes[i] % np.uint64(dim))
    cols.sort()
    i = 0
    while i < m:
        j = i
        while j < m and cols[j] == cols[i]:
            j += 1
        col_out[pos] = cols[i]
        tf_out[pos] = 1.0 + np.log(j - i)
        pos += 1
        i = j
    return pos


@numba.njit(cache=True)
def _hash_batch(t_off, t_data, k_list, k_off, k_data, dim, cols, tfs, indptr, nword):  # pragma: no cover
    n = len(t_off) - 1
    cps = np.empty(max(1, t_off[-1] - t_off[0]), np.uint32)
    pos = 0
    indptr[0] = 0
    for d in range(n):
        # words: FNV-1a over the token's bytes, then mixed with the word salt
        a, b = k_list[d], k_list[d + 1]
        hw = np.empty(max(1, b - a), np.uint64)
        for t in range(a, b):
            h = np.uint64(0xCBF29CE484222325)
            for i in range(k_off[t], k_off[t + 1]):
                h = (h ^ np.uint64(k_data[i])) * np.uint64(0x100000001B3)
            hw[t - a] = mix(h ^ np.uint64(WORD_SALT))
        start = pos
        pos = _emit(hw, b - a, dim, cols, tfs, pos)
        nword[d] = pos - start
        # characters: 1-, 2- and 3-grams of code points
        m = _decode_utf8(t_data, t_off[d], t_off[d + 1], cps)
        hc = np.empty(max(1, 3 * m), np.uint64)
        c = 0
        for i in range(m):
            h = np.uint64(CHAR_SALT)
            for g in range(3):
                if i + g >= m:
                    break
                h = mix(h * M1 + np.uint64(cps[i + g]) + np.uint64(1))
                hc[c] = h ^ np.uint64(g + 1)
                c += 1
        pos = _emit(hc, c, dim, cols, tfs, pos)
        indptr[d + 1] = pos
    return pos


def _buffers(arr, pa):
    """(offsets int64, data uint8) of a string array (nulls read as empty)."""
    arr = arr.cast(pa.large_string())
    if arr.null_count:
        import pyarrow.compute as pc

        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    off = np.frombuffer(bufs[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
    return _read_only(off), _read_only(data)


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` marked read-only. numba compiles a kernel once per argument type, and whether an array is
    read-only is part of its type: a view of an Arrow buffer is read-only or not as the buffer was made
    (a Parquet read or a built array), so without this one caption batch had the kernel compiled again
    in every fresh process, beside the variant ``python -m m5data.warm`` cached (~2 CPU-s each)."""
    a.flags.writeable = False
    return a


def hash_batch(texts, tokens, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hashed features of a batch of captions.

    Args:
        texts: Arrow string array of (lower-cased) captions; nulls are empty.
        tokens: Arrow list<string> array of their jieba tokens; nulls are empty.
        dim: number of hashed columns.

    Returns ``(indptr, cols int32, tf float32, nword int32)``: product ``d``'s features are
    ``cols[indptr[d]:indptr[d+1]]``, the first ``nword[d]`` of them word features.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t_off, t_data = _buffers(texts, pa)
    tokens = tokens.cast(pa.large_list(pa.large_string()))
    if tokens.null_count:
        tokens = pc.fill_null(tokens, pa.scalar([], pa.large_list(pa.large_string())))
    k_list = _read_only(np.frombuffer(tokens.buffers()[1], np.int64)[tokens.offset:tokens.offset + len(tokens) + 1])
    k_off, k_data = _buffers(tokens.values, pa)
    n = len(texts)
    cap = int(k_list[-1] - k_list[0]) + 3 * int(t_off[-1] - t_off[0]) + 1
    cols = np.empty(cap, np.int64)
    tfs = np.empty(cap, np.float32)
    indptr = np.empty(n + 1, np.int64)
    nword = np.empty(n, np.int32)
    used = _hash_batch(t_off, t_data, k_list, k_off, k_data, dim, cols, tfs, indptr, nword)
    return indptr, cols[:used].astype(np.int32), tfs[:used].copy(), nword

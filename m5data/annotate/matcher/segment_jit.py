"""jieba's accurate mode (``jieba.lcut(run)``, HMM on) of runs of Chinese characters, compiled (numba).

jieba cuts a run in Python: a DAG of the dictionary words starting at each character, the most
probable route through it, and an HMM (Viterbi over B/M/E/S) for runs of single characters that the
dictionary does not know. That was most of the matcher's cost in dedup (the 100k scale world: 65,945
distinct title runs, 5.1 s of a 23 s scoring step, and they grow with the products). Here the same
steps run compiled over code points, reading jieba's own dictionary (``jieba.dt.FREQ``, held in an
open-addressing table whose entries are compared exactly, not by hash alone) and its HMM
probabilities; the arithmetic is jieba's, in its order, and ties are broken as its ``max`` over
tuples breaks them, so the words are jieba's (tested on random runs and on the demo world's titles).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np

MIN_FLOAT = -3.14e100  # jieba.finalseg's "impossible"
HAN_LO, HAN_HI = 0x4E00, 0x9FD5  # jieba's re_han: the characters its DAG and HMM cut; others stand alone
_STATE_CHAR = np.array([ord("B"), ord("M"), ord("E"), ord("S")], dtype=np.int64)  # max() ties: larger char
# jieba.finalseg.PrevStatus by state index (B, M, E, S)
_PREV = np.array([[2, 3], [1, 0], [0, 1], [3, 2]], dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _hash(cps, start, end):  # pragma: no cover - compiled
    h = np.uint64(0xCBF29CE484222325)
    for i in range(start, end):
        h = (h ^ np.uint64(cps[i])) * np.uint64(0x100000001B3)
    return h


@numba.njit(cache=True, nogil=True)
def _build(keys, offsets, size):  # pragma: no cover - compiled
    """Open addressing over the dictionary's words (``keys[offsets[w]:offsets[w + 1]]``): slot -> word or -1."""
    table = np.full(size, -1, dtype=np.int64)
    mask = size - 1
    for w in range(len(offsets) - 1):
        p = np.int64(_hash(keys, offsets[w], offsets[w + 1]) >> np.uint64(1)) & mask
        while table[p] >= 0:
            p = (p + 1) & mask
        table[p] = w
    return table


@numba.njit(cache=True, nogil=True)
def _find(s, start, end, keys, offsets, table):  # pragma: no cover - compiled
    """The dictionary word equal to ``s[start:end]``, or -1."""
    mask = len(table) - 1
    p = np.int64(_hash(s, start, end) >> np.uint64(1)) & mask
    n = end - start
    while table[p] >= 0:
        w = table[p]
        a = offsets[w]
        if offsets[w + 1] - a == n:
            same = True
            for k in range(n):
                if keys[a + k] != s[start + k]:
                    same = False
                    break
            if same:
                return w
        p = (p + 1) & mask
    return -1


@numba.njit(cache=True, nogil=True)
def _viterbi(s, start, end, start_p, trans, emit, prev, state_char, out, n_out):  # pragma: no cover - compiled
    """jieba.finalseg's cut of ``s[start:end]`` (all in its re_han range): words appended to ``out``."""
    n = end - start
    v = np.empty((n, 4), dtype=np.float64)
    back = np.zeros((n, 4), dtype=np.int64)
    for y in range(4):
        v[0, y] = start_p[y] + emit[s[start] - HAN_LO, y]
    for t in range(1, n):
        c = s[start + t] - HAN_LO
        for y in range(4):
            em = emit[c, y]
            best_p = 0.0
            best_s = -1
            for j in range(2):
                y0 = prev[y, j]
                p = v[t - 1, y0] + trans[y0, y] + em
                if best_s < 0 or p > best_p or (p == best_p and state_char[y0] > state_char[best_s]):
                    best_p, best_s = p, y0
            v[t, y] = best_p
            back[t, y] = best_s
    # the last state: E or S (ties: the larger character, S)
    last = 3 if v[n - 1, 3] >= v[n - 1, 2] else 2
    path = np.empty(n, dtype=np.int64)
    path[n - 1] = last
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    begin, nexti = 0, 0
    for i in range(n):
        pos = path[i]
        if pos == 0:  # B
            begin = i
        elif pos == 2:  # E
            out[n_out, 0], out[n_out, 1] = start + begin, start + i + 1
            n_out += 1
            nexti = i + 1
        elif pos == 3:  # S
            out[n_out, 0], out[n_out, 1] = start + i, start + i + 1
            n_out += 1
            nexti = i + 1
    if nexti < n:
        out[n_out, 0], out[n_out, 1] = start + nexti, end
        n_out += 1
    return n_out


@numba.njit(cache=True, nogil=True)
def _buf(s, b0, b1, keys, offsets, table, freq, start_p, trans, emit, prev, state_char, out, n_out):  # pragma: no cover
    """jieba's handling of a buffer of single-character route steps ``s[b0:b1]``."""
    if b1 - b0 == 1:
        out[n_out, 0], out[n_out, 1] = b0, b1
        return n_out + 1
    w = _find(s, b0, b1, keys, offsets, table)
    if w < 0 or freq[w] == 0:
        return _viterbi(s, b0, b1, start_p, trans, emit, prev, state_char, out, n_out)
    for i in range(b0, b1):
        out[n_out, 0], out[n_out, 1] = i, i + 1
        n_out += 1
    return n_out


@numba.njit(cache=True, nogil=True)
def _block(s, start, end, keys, offsets, table, freq, logtotal, start_p, trans, emit, prev, state_char, out, n_out
           ):  # pragma: no cover - compiled
    """jieba's ``__cut_DAG`` of ``s[start:end]`` (characters in its re_han range)."""
    n = end - start
    # the DAG: per start, the ends of the dictionary words (freq > 0) beginning there, with their freq
    dag_end = np.empty((n, 17), dtype=np.int64)
    dag_freq = np.empty((n, 17), dtype=np.int64)
    dag_n = np.zeros(n, dtype=np.int64)
    for k in range(n):
        i = k
        while i < n:
            w = _find(s, start + k, start + i + 1, keys, offsets, table)
            if w < 0:
                break
            if freq[w]:
                if dag_n[k] == dag_end.shape[1]:  # longer than any jieba word: grow
                    dag_end = np.concatenate((dag_end, np.empty((n, dag_end.shape[1]), dtype=np.int64)), axis=1)
                    dag_freq = np.concatenate((dag_freq, np.empty((n, dag_freq.shape[1]), dtype=np.int64)), axis=1)
                dag_end[k, dag_n[k]] = i
                dag_freq[k, dag_n[k]] = freq[w]
                dag_n[k] += 1
            i += 1
        if dag_n[k] == 0:
            dag_end[k, 0] = k
            dag_freq[k, 0] = 0
            dag_n[k] = 1
    route_p = np.zeros(n + 1, dtype=np.float64)
    route_x = np.zeros(n + 1, dtype=np.int64)
    for idx in range(n - 1, -1, -1):
        best_p = 0.0
        best_x = -1
        for j in range(dag_n[idx]):
            x = dag_end[idx, j]
            f = dag_freq[idx, j]
            p = np.log(np.float64(f if f > 0 else 1)) - logtotal + route_p[x + 1]
            if best_x < 0 or p > best_p or (p == best_p and x > best_x):
                best_p, best_x = p, x
        route_p[idx], route_x[idx] = best_p, best_x
    x = 0
    b0 = -1  # the buffer of single-character steps: s[start + b0:start + x]
    while x < n:
        y = route_x[x] + 1
        if y - x == 1:
            if b0 < 0:
                b0 = x
        else:
            if b0 >= 0:
                n_out = _buf(s, start + b0, start + x, keys, offsets, table, freq, start_p, trans, emit, prev, state_char,
                             out, n_out)
                b0 = -1
            out[n_out, 0], out[n_out, 1] = start + x, start + y
            n_out += 1
        x = y
    if b0 >= 0:
        n_out = _buf(s, start + b0, start + n, keys, offsets, table, freq, start_p, trans, emit, prev, state_char, out,
                     n_out)
    return n_out


@numba.njit(cache=True, nogil=True)
def _cut_all(s, offsets, keys, key_offsets, table, freq, logtotal, start_p, trans, emit, prev, state_char
             ):  # pragma: no cover - compiled
    """Every run ``s[offsets[d]:offsets[d + 1]]`` cut: ``(indptr, words)``, run d's words (start, end
    in ``s``) ``words[indptr[d]:indptr[d + 1]]``. Characters outside re_han are words of their own."""
    out = np.empty((len(s) + 1, 2), dtype=np.int64)  # a run's words never outnumber its characters
    indptr = np.zeros(len(offsets), dtype=np.int64)
    n_out = 0
    for d in range(len(offsets) - 1):
        i, end = offsets[d], offsets[d + 1]
        while i < end:
            if HAN_LO <= s[i] <= HAN_HI:
                j = i
                while j < end and HAN_LO <= s[j] <= HAN_HI:
                    j += 1
                n_out = _block(s, i, j, keys, key_offsets, table, freq, logtotal, start_p, trans, emit, prev,
                               state_char, out, n_out)
                i = j
            else:
                out[n_out, 0], out[n_out, 1] = i, i + 1
                n_out += 1
                i += 1
        indptr[d + 1] = n_out
    return indptr, out[:n_out]


@lru_cache(maxsize=1)
def _model() -> tuple:
    """jieba's default dictionary and HMM as arrays (built once a process, ~1 s)."""
    import jieba
    from jieba.finalseg import emit_P, start_P, trans_P

    jieba.setLogLevel(60)
    jieba.dt.check_initialized()
    words = list(jieba.dt.FREQ)
    freq = np.fromiter(jieba.dt.FREQ.values(), dtype=np.int64, count=len(words))
    keys = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    key_offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=key_offsets[1:])
    size = 1 << max(4, int(2 * len(words)).bit_length())
    table = _build(keys, key_offsets, size)
    states = "BMES"
    start_p = np.array([start_P[y] for y in states], dtype=np.float64)
    trans = np.array([[trans_P[a].get(b, MIN_FLOAT) for b in states] for a in states], dtype=np.float64)
    emit = np.full((HAN_HI - HAN_LO + 1, 4), MIN_FLOAT, dtype=np.float64)
    for j, y in enumerate(states):
        for ch, p in emit_P[y].items():
            if HAN_LO <= ord(ch) <= HAN_HI:
                emit[ord(ch) - HAN_LO, j] = p
    return keys, key_offsets, table, freq, math.log(jieba.dt.total), start_p, trans, emit  # jieba's math.log


def cut_runs(runs: list[str]) -> list[tuple[str, ...]]:
    """``tuple(jieba.lcut(run))`` of each run of characters in U+3400..U+9FFF, in one compiled call."""
    if not runs:
        return []
    joined = "".join(runs)
    s = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    offsets = np.zeros(len(runs) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, runs), dtype=np.int64, count=len(runs)), out=offsets[1:])
    keys, key_offsets, table, freq, logtotal, start_p, trans, emit = _model()
    indptr, words = _cut_all(s, offsets, keys, key_offsets, table, freq, logtotal, start_p, trans, emit, _PREV,
                             _STATE_CHAR)
    starts, ends = words[:, 0].tolist(), words[:, 1].tolist()
    cuts = [joined[a:b] for a, b in zip(starts, ends)]
    bounds = indptr.tolist()
    return [tuple(cuts[bounds[d]:bounds[d + 1]]) for d in range(len(runs))]


def warm_up() -> None:
    """Compile the loops (or load them from numba's cache) on a two-word dictionary, e.g. before timing;
    jieba's own dictionary is still read by the first real cut, as jieba reads it."""
    words = ["你好", "世界", "你"]
    keys = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    key_offsets = np.array([0, 2, 4, 5], dtype=np.int64)
    table = _build(keys, key_offsets, 16)
    s = np.frombuffer("你好世界再见\u3400".encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    emit = np.full((HAN_HI - HAN_LO + 1, 4), MIN_FLOAT, dtype=np.float64)
    _cut_all(s, np.array([0, 7], dtype=np.int64), keys, key_offsets, table, np.array([5, 3, 2], dtype=np.int64),
             math.log(10.0), np.zeros(4), np.zeros((4, 4)), emit, _PREV, _STATE_CHAR)

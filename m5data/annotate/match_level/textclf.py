"""A caption classifier whose cost and memory do not grow with the number of products or categories.

Used by match-level (:mod:`.match_level`). Three parts, all compiled with numba:

- **Hashed features** (:func:`hash_batch`, in :mod:`.caption_hashing`): jieba tokens and character 1-3-grams of each caption,
  read straight from Arrow buffers, hashed into ``dim`` columns (no vocabulary to hold). A product
  keeps ``(column, 1 + log tf)`` pairs and how many of them are word features; the values become
  TF-IDF (sublinear tf x smoothed idf, each group L2-normalised, as scikit-learn's
  ``TfidfVectorizer``) when a model reads them, with the idf of the model's own training rows.
- **A hierarchical softmax** class -> sub-class (:func:`train`): a softmax over the classes, and
  for each class a softmax over its own sub-classes only, so one product costs its features times
  (classes + the sub-classes of one class), never times all sub-classes. Weights are hashed
  too: the weights of feature ``f`` for the children of group ``g`` are a run of consecutive
  slots starting at ``hash(f, g)`` in one table of fixed size (a run is read in one sweep).
  Plain SGD, one product at a time, in a seeded order, for a fixed number of epochs.
- **Scores** (:func:`predict`): per product the probability of its own class over the top class
  probability, and of its own sub-class, ``P(class) P(sub | class)``, over the top such
  probability; the top is found exactly by visiting classes by falling ``P(class)`` and stopping
  once ``P(class)`` is below the best sub-class found (``P(sub | class) <= 1``).
"""

from __future__ import annotations

import numba
import numpy as np

from ... import arrays
from .caption_hashing import M1, hash_batch, mix

__all__ = ["Features", "Hierarchy", "Model", "doc_freq", "hash_batch", "idf"]


def idf(df: np.ndarray, n: int) -> np.ndarray:
    """Smoothed idf of document frequencies over ``n`` documents (scikit-learn's ``smooth_idf``)."""
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


# ------------------------------------------------------------------ the model
@numba.njit(cache=True)
def _longest(indptr):  # pragma: no cover - compiled
    width = 1
    for r in range(len(indptr) - 1):
        width = max(width, indptr[r + 1] - indptr[r])
    return width


@numba.njit(cache=True)
def _scratch(indptr, n_class, n_child):  # pragma: no cover - compiled
    """Scratch of one row's features (values, hashed rows, weight slots) and of the two softmaxes."""
    width = _longest(indptr)
    return (np.empty(width, np.float32), np.empty(width, np.int64), np.empty(width, np.int64),
            np.empty(n_class, np.float64), np.empty(max(1, n_child.max()), np.float64))


@numba.njit(cache=True)
def _values(indptr, cols, tf, nword, idf_, r, x, row):  # pragma: no cover - compiled
    """Row r's columns into row and TF-IDF values into x (words and characters each L2-normalised);
    returns the row's length."""
    a, b = indptr[r], indptr[r + 1]
    w = a + nword[r]
    s1 = 0.0
    s2 = 0.0
    for i in range(a, b):
        row[i - a] = cols[i]
        v = tf[i] * idf_[cols[i]]
        x[i - a] = v
        if i < w:
            s1 += v * v
        else:
            s2 += v * v
    s1 = 1.0 / np.sqrt(s1) if s1 > 0 else 0.0
    s2 = 1.0 / np.sqrt(s2) if s2 > 0 else 0.0
    for i in range(a, b):
        x[i - a] *= s1 if i < w else s2
    return b - a


@numba.njit(cache=True, inline="always")
def _slot(col, group, size, m):  # pragma: no cover - compiled
    """First slot of the run of m weights of feature col for the children of group (runs are aligned
    to m, so two features either share a whole run or none of it)."""
    runs = np.uint64(max(1, size // m))
    return np.int64(mix(np.uint64(col) * M1 + np.uint64(group) + np.uint64(1)) % runs) * m


@numba.njit(cache=True)
def _softmax_step(cols, x, nnz, group, m, base, y, W, size, bias, z, slots, lr, decay):  # pragma: no cover
    """One SGD step of the softmax over the m children of group (label y local, -1: forward only).

    ``cols``/``x``: the row's columns and values (first ``nnz``); ``z`` gets the probabilities.
    """
    for j in range(m):
        z[j] = bias[base + j]
    for i in range(nnz):
        s = _slot(cols[i], group, size, m)
        slots[i] = s
        v = x[i]
        for j in range(m):
            z[j] += v * W[s + j]
    top = z[0]
    for j in range(1, m):
        top = max(top, z[j])
    tot = 0.0
    for j in range(m):
        z[j] = np.exp(z[j] - top)
        tot += z[j]
    for j in range(m):
        z[j] /= tot
    if y < 0:
        return
    z[y] -= 1.0  # now the gradient of the loss by the logits
    for j in range(m):
        bias[base + j] -= lr * z[j]
    for i in range(nnz):
        s = slots[i]
        g = lr * x[i]
        for j in range(m):
            W[s + j] = W[s + j] * decay - g * z[j]


@numba.njit(cache=True)
def _train(indptr, cols, tf, nword, idf_, order, y_class, y_sub, n_class, n_child, child_base,
           Wc, bc, Ws, bs, size_c, size_s, lr0, alpha, t0):  # pragma: no cover - compiled
    x, row, slots, zc, zs = _scratch(indptr, n_class, n_child)
    t = t0
    for r in order:
        nnz = _values(indptr, cols, tf, nword, idf_, r, x, row)
        lr = lr0 / (1.0 + lr0 * alpha * t)
        decay = 1.0 - lr * alpha
        _softmax_step(row, x, nnz, 0, n_class, 0, y_class[r], Wc, size_c, bc, zc, slots, lr, decay)
        c = y_class[r]
        if n_child[c] > 1 and y_sub[r] >= 0:
            _softmax_step(row, x, nnz, c + 1, n_child[c], child_base[c], y_sub[r], Ws, size_s, bs, zs, slots, lr, decay)
        t += 1
    return t


@numba.njit(cache=True)
def _predict(indptr, cols, tf, nword, idf_, rows, own_class, own_sub, n_class, n_child, child_base,
             Wc, bc, Ws, bs, size_c, size_s, vote_class, vote_w, cls_out, sub_out, img_out):  # pragma: no cover
    x, row, slots, zc, zs = _scratch(indptr, n_class, n_child)
    for q in range(len(rows)):
        r = rows[q]
        nnz = _values(indptr, cols, tf, nword, idf_, r, x, row)
        _softmax_step(row, x, nnz, 0, n_class, 0, -1, Wc, size_c, bc, zc, slots, 0.0, 1.0)
        top = zc.max()
        cls_out[q] = np.nan
        sub_out[q] = np.nan
        img_out[q] = np.nan
        c = own_class[r]
        if c >= 0:
            cls_out[q] = zc[c] / top
            if own_sub[r] >= 0:
                own = zc[c]
                if n_child[c] > 1:
                    _softmax_step(row, x, nnz, c + 1, n_child[c], child_base[c], -1, Ws, size_s, bs, zs, slots, 0.0, 1.0)
                    own *= zs[own_sub[r]]
                # the top P(class) P(sub | class): classes by falling P(class), until P(class) <= best
                byp = np.argsort(-zc)
                best = 0.0
                for k in range(n_class):
                    g = byp[k]
                    if zc[g] <= best:
                        break
                    m = 1.0
                    if n_child[g] > 1:
                        _softmax_step(row, x, nnz, g + 1, n_child[g], child_base[g], -1, Ws, size_s, bs, zs, slots, 0.0, 1.0)
                        m = zs[:n_child[g]].max()
                    best = max(best, zc[g] * m)
                sub_out[q] = own / best
        if vote_w.shape[1] and vote_w[q, 0] > 0:
            agree = 0.0
            for j in range(vote_w.shape[1]):
                if vote_class[q, j] >= 0:
                    agree += vote_w[q, j] * zc[vote_class[q, j]]
            img_out[q] = agree / top


class Hierarchy:
    """Dense label ids: classes ``0..n_class-1``, and each class's sub-classes ``0..n_child[c]-1``."""

    def __init__(self, class_id: np.ndarray, sub_id: np.ndarray):
        """``class_id`` / ``sub_id``: unified ids per product (-1: none)."""
        has = class_id >= 0
        self.classes = arrays.unique(class_id[has])
        self.cls = np.full(len(class_id), -1, np.int32)
        self.cls[has] = np.searchsorted(self.classes, class_id[has])
        pair = self.cls.astype(np.int64) << 32 | (sub_id.astype(np.int64) & 0xFFFFFFFF)
        both = has & (sub_id >= 0)
        pairs = arrays.unique(pair[both])  # sorted by class, then sub-class
        parent = (pairs >> 32).astype(np.int64)
        self.n_class = len(self.classes)
        self.n_child = np.bincount(parent, minlength=self.n_class).astype(np.int64)
        self.child_base = np.concatenate([[0], np.cumsum(self.n_child)[:-1]]).astype(np.int64)
        self.sub = np.full(len(class_id), -1, np.int32)
        self.sub[both] = (np.searchsorted(pairs, pair[both]) - self.child_base[self.cls[both]]).astype(np.int32)
        self.n_sub = len(pairs)


class Model:
    """The weights of one cross-fitting fold's classifier (fixed size: ``2**bits_*`` + padding)."""

    def __init__(self, h: Hierarchy, bits_class: int, bits_sub: int):
        self.h = h
        self.size_c = 1 << bits_class
        self.size_s = 1 << bits_sub
        self.Wc = np.zeros(self.size_c + h.n_class, np.float32)
        self.bc = np.zeros(max(1, h.n_class), np.float64)
        self.Ws = np.zeros(self.size_s + max(1, int(h.n_child.max(initial=1))), np.float32)
        self.bs = np.zeros(max(1, h.n_sub), np.float64)

    def fit(self, feats, idf_, rows: np.ndarray, y_sub: np.ndarray, *, epochs: int, lr: float, alpha: float,
            seed: int) -> None:
        """SGD over ``rows`` (product rows) for ``epochs`` passes, each in a seeded random order.

        ``y_sub``: the local sub-class of each product, -1 where it must not train the sub-class level.
        """
        rng = np.random.default_rng(seed)
        t = 0
        h = self.h
        for _ in range(epochs):
            order = rows[rng.permutation(len(rows))]
            t = _train(feats.indptr, feats.cols, feats.tf, feats.nword, idf_, order, h.cls, y_sub, h.n_class,
                       h.n_child, h.child_base, self.Wc, self.bc, self.Ws, self.bs, self.size_c, self.size_s,
                       lr, alpha, t)

    def score(self, feats, idf_, rows: np.ndarray, own_sub: np.ndarray, vote_class: np.ndarray,
              vote_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: own class P / top P, own sub-class P / top P (nan where ``own_sub`` is -1) and
        the image agreement ``sum_c vote(c) P(c) / top P`` (nan without votes)."""
        h = self.h
        out = [np.empty(len(rows), np.float32) for _ in range(3)]
        _predict(feats.indptr, feats.cols, feats.tf, feats.nword, idf_, rows, h.cls, own_sub, h.n_class,
                 h.n_child, h.child_base, self.Wc, self.bc, self.Ws, self.bs, self.size_c, self.size_s,
                 vote_class, vote_w, *out)
        return out[0], out[1], out[2]


@numba.njit(cache=True)
def _doc_freq(indptr, cols, group, n_groups, dim):  # pragma: no cover - compiled
    df = np.zeros((n_groups, dim), np.int32)
    for r in range(len(indptr) - 1):
        g = group[r]
        if g < 0:
            continue
        for i in range(indptr[r], indptr[r + 1]):
            df[g, cols[i]] += 1
    return df


def doc_freq(feats, group: np.ndarray, n_groups: int, dim: int) -> np.ndarray:
    """(n_groups, dim) document frequencies of the hashed columns, per group of rows (-1: no group)."""
    return _doc_freq(feats.indptr, feats.cols, group.astype(np.int64), n_groups, dim)


class Features:
    """The hashed features of all products, appended batch by batch (compact: 8 bytes a feature)."""

    def __init__(self):
        self._indptr = [np.zeros(1, np.int64)]
        self._cols: list[np.ndarray] = []
        self._tf: list[np.ndarray] = []
        self._nword: list[np.ndarray] = []
        self._end = 0

    def append(self, indptr, cols, tf, nword) -> None:
        self._indptr.append(indptr[1:] + self._end)
        self._end += int(indptr[-1])
        self._cols.append(cols)
        self._tf.append(tf)
        self._nword.append(nword)

    def close(self) -> "Features":
        """Join the batches into one CSR (the batches' own arrays are freed one by one)."""
        def join(parts, dtype):
            out = np.empty(sum(len(p) for p in parts), dtype)
            pos = 0
            while parts:
                p = parts.pop(0)
                out[pos:pos + len(p)] = p
                pos += len(p)
            return out

        self.indptr = join(self._indptr, np.int64)
        self.cols = join(self._cols, np.int32)
        self.tf = join(self._tf, np.float32)
        self.nword = join(self._nword, np.int32)
        return self

"""Top-k search by inner product (cosine of L2-normalised vectors), exact in blocks, or faiss.

Exact search walks the queries in blocks of ``block`` rows and the gallery in chunks of
``gallery_block`` rows, so the score matrix in memory is ``block x gallery_block`` whatever the
gallery's size. Backends (``auto`` takes the first that imports):

* ``reservoir``: matmul (torch, else numpy), then each score block goes through a per-row
  reservoir compiled with numba (:mod:`.reservoir`, faiss's method for large k): about 1.05x
  faiss ``IndexFlatIP``'s time at 25k x 250k, top-500;
* ``torch``: matmul + ``topk`` per chunk, merged into the running top of the block (1.8x faiss);
* ``numpy``: matmul + ``argpartition``.

Ties are broken by gallery index (callers sort the gallery by product_id, so by product_id): each
row's candidates are re-sorted by (score desc, index asc), and a row whose ``k``-th score is tied
with its last padded candidate is recomputed in full so that no smaller-index tie is lost.

``self_index[i]`` is the gallery row of query ``i`` (or -1): it is never returned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

SEARCHES = ("exact", "faiss-flat", "faiss-hnsw")
TIE_PAD = 16  # extra candidates kept per row so that ties at the k-th place resolve by index
TIE_DECIMALS = 6  # scores equal to this many decimals are ties (the pools table stores them so)


@dataclass
class Hits:
    """Top-k of a block of queries: ``start`` is the first query's row; scores and gallery indexes are (b, k)."""

    start: int
    scores: np.ndarray
    index: np.ndarray


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def quantise(scores: np.ndarray) -> np.ndarray:
    """Scores rounded to TIE_DECIMALS: float32 matmuls of different block shapes differ in the last
    bit, so two copies of one vector must compare equal before the product_id tie-break applies."""
    return np.round(scores.astype(np.float64), TIE_DECIMALS)


def _order_rows(scores: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by (score desc, index asc) and keep k; -inf entries (masked) sort last."""
    order = np.lexsort((index, -quantise(scores)), axis=1)
    scores = np.take_along_axis(scores, order, axis=1)[:, :k]
    index = np.take_along_axis(index, order, axis=1)[:, :k]
    return scores, index


def _exact_row(q: np.ndarray, gallery: np.ndarray, k: int, self_idx: int) -> tuple[np.ndarray, np.ndarray]:
    """One query against the whole gallery (used only for rows with a long tie at the k-th place)."""
    s = (gallery @ q).astype(np.float32)
    if self_idx >= 0:
        s[self_idx] = -np.inf
    kth = np.partition(s, len(s) - k)[len(s) - k]
    cand = np.flatnonzero(quantise(s) >= quantise(np.float32(kth)))
    sc, ix = _order_rows(s[cand][None, :], cand[None, :].astype(np.int64), k)
    return sc[0], ix[0]


def _fix_ties(queries, gallery, scores, index, k, self_index, start) -> tuple[np.ndarray, np.ndarray]:
    """Order rows with ties by index; rows whose tie may extend past the padding are recomputed.

    Every gallery item left out scores at most the lowest kept candidate (a top-kp merge keeps the
    best of the union), so only a row whose k-th score equals its lowest kept score can have lost a
    tied item of smaller index. A kept -inf (the query itself) means nothing finite was left out.
    """
    complete = scores.shape[1] >= len(gallery)
    low = scores.min(axis=1) if scores.shape[1] else np.zeros(len(scores), np.float32)
    sc, ix = _order_rows(scores, index, k)
    if not complete and k > 0:
        for r in np.flatnonzero(np.isfinite(sc[:, -1]) & (quantise(low) >= quantise(sc[:, -1]))):
            own = int(self_index[start + r]) if self_index is not None else -1
            sc[r], ix[r] = _exact_row(queries[r], gallery, k, own)
    return sc, ix


BACKENDS = ("reservoir", "torch", "numpy")


def default_backend() -> str:
    from . import reservoir

    return "reservoir" if reservoir.available() else ("torch" if torch_available() else "numpy")


def exact_search(queries: np.ndarray, gallery: np.ndarray, k: int, *, block: int = 2048,
                 gallery_block: int | None = None, self_index: np.ndarray | None = None, backend: str = "auto",
                 skip: Callable[[int], bool] | None = None) -> Iterator[Hits]:
    """Yield the exact top-k of each block of queries (rows sorted by score desc, then index asc).

    Args:
        queries: (nq, d) float32, L2-normalised.
        gallery: (ng, d) float32, L2-normalised.
        k: results per query (at most ng, or ng - 1 when the query is in the gallery).
        block: query rows per block (memory: block x gallery_block float32 scores).
        gallery_block: gallery rows per chunk (default 4096 for the reservoir, 16384 for topk).
        self_index: gallery row of each query (-1 when not in the gallery); never returned.
        backend: "reservoir", "torch", "numpy" or "auto" (the first of these that imports).
        skip: ``skip(start)`` true for a block already done (resume): it is not computed.
    """
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    nq, ng = len(queries), len(gallery)
    if backend == "auto":
        backend = default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown exact-search backend {backend!r} ({', '.join(BACKENDS)})")
    gallery_block = gallery_block or (4096 if backend == "reservoir" else 16384)
    k = min(k, ng - (1 if self_index is not None and (self_index >= 0).any() else 0))
    if k <= 0:
        for start in range(0, nq, block):
            if not (skip and skip(start)):
                b = min(block, nq - start)
                yield Hits(start, np.zeros((b, 0), np.float32), np.zeros((b, 0), np.int64))
        return
    kp = min(k + TIE_PAD, ng)
    gal_t = None
    if backend in ("torch", "reservoir") and torch_available():
        import torch

        gal_t = torch.from_numpy(np.ascontiguousarray(gallery, dtype=np.float32))
    for start in range(0, nq, block):
        if skip and skip(start):
            continue
        stop = min(start + block, nq)
        q = np.ascontiguousarray(queries[start:stop], dtype=np.float32)
        own = self_index[start:stop] if self_index is not None else None
        if backend == "reservoir":
            best_s, best_i = _reservoir_block(q, gallery, gal_t, own, kp, gallery_block)
        elif backend == "torch":
            best_s, best_i = _torch_block(torch, torch.from_numpy(q), gal_t, own, kp, gallery_block)
        else:
            best_s, best_i = _numpy_block(q, gallery, own, kp, gallery_block)
        sc, ix = _fix_ties(q, gallery, best_s, best_i, k, self_index, start)
        yield Hits(start, sc, ix)


def _mask_self(s, own, gs, ge, inf):
    if own is not None:
        rows = np.flatnonzero((own >= gs) & (own < ge))
        if len(rows):
            s[rows, own[rows] - gs] = -inf


def _torch_block(torch, q, gal_t, own, kp, gallery_block):
    """Top-kp of one query block over the gallery chunks: matmul + topk per chunk, merged by topk.

    (A threshold pre-filter, keeping only scores above the running kp-th best and merging them by
    one sort, was tried: 3x slower on clustered vectors, where hundreds of scores per row pass.)
    """
    ng = gal_t.shape[0]
    best_s = best_i = None
    for gs in range(0, ng, gallery_block):
        ge = min(gs + gallery_block, ng)
        s = q @ gal_t[gs:ge].T
        if own is not None:
            rows = np.flatnonzero((own >= gs) & (own < ge))
            if len(rows):
                s[torch.from_numpy(rows), torch.from_numpy(own[rows] - gs)] = -torch.inf
        ts, ti = torch.topk(s, min(kp, ge - gs), dim=1, sorted=False)
        ti += gs
        del s
        if best_s is None:
            best_s, best_i = ts, ti
        else:
            ms, mi = torch.cat([best_s, ts], dim=1), torch.cat([best_i, ti], dim=1)
            best_s, sel = torch.topk(ms, min(kp, ms.shape[1]), dim=1, sorted=False)
            best_i = torch.gather(mi, 1, sel)
    return best_s.numpy(), best_i.numpy().astype(np.int64)


def _reservoir_block(q, gallery, gal_t, own, kp, gallery_block):
    """Top-kp of one query block: matmul per gallery chunk into one reused buffer, then the reservoir."""
    from .reservoir import Reservoir

    ng = len(gallery)
    res = Reservoir(len(q), kp)
    width = min(gallery_block, ng)
    if gal_t is not None:
        import torch

        q_t = torch.from_numpy(q)
        buf = torch.empty((len(q), width), dtype=torch.float32)
    else:
        buf = np.empty((len(q), width), np.float32)
    for gs in range(0, ng, gallery_block):
        ge = min(gs + gallery_block, ng)
        if ge - gs != width:  # the last, shorter chunk: a buffer of its own, C-contiguous like the others
            width = ge - gs
            buf = torch.empty((len(q), width), dtype=torch.float32) if gal_t is not None else np.empty((len(q), width), np.float32)
        if gal_t is not None:
            torch.mm(q_t, gal_t[gs:ge].T, out=buf)
            s = buf.numpy()
        else:
            np.matmul(q, gallery[gs:ge].T, out=buf)
            s = buf
        _mask_self(s, own, gs, ge, np.inf)
        res.push(s, gs)
    return res.result()


def _numpy_block(q, gallery, own, kp, gallery_block):
    ng = len(gallery)
    best_s = best_i = None
    for gs in range(0, ng, gallery_block):
        ge = min(gs + gallery_block, ng)
        kk = min(kp, ge - gs)
        s = q @ gallery[gs:ge].T
        _mask_self(s, own, gs, ge, np.inf)
        ci = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < s.shape[1] else np.tile(np.arange(s.shape[1]), (len(s), 1))
        cs = np.take_along_axis(s, ci, axis=1)
        ci = ci.astype(np.int64) + gs
        if best_s is None:
            best_s, best_i = cs, ci
        else:
            best_s, best_i = _merge(best_s, best_i, cs, ci, kp)
    return best_s, best_i


def _merge(s1, i1, s2, i2, kp):
    """Running top-kp of two candidate sets (unsorted)."""
    s = np.concatenate([s1, s2], axis=1)
    i = np.concatenate([i1, i2], axis=1)
    if s.shape[1] <= kp:
        return s, i
    sel = np.argpartition(-s, kp - 1, axis=1)[:, :kp]
    return np.take_along_axis(s, sel, axis=1), np.take_along_axis(i, sel, axis=1)


def faiss_search(queries: np.ndarray, gallery: np.ndarray, k: int, *, kind: str = "flat", block: int = 2048,
                 self_index: np.ndarray | None = None, hnsw_m: int = 32, ef_search: int = 0,
                 skip: Callable[[int], bool] | None = None) -> Iterator[Hits]:
    """Like :func:`exact_search` through a faiss index: ``flat`` (IndexFlatIP, exact) or ``hnsw`` (approximate).

    The query itself is searched for with one extra neighbour and dropped; ties are ordered by index
    among the returned candidates.
    """
    import faiss

    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    ng, d = gallery.shape
    k = min(k, ng - (1 if self_index is not None and (self_index >= 0).any() else 0))
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = ef_search or max(2 * (k + TIE_PAD + 1), 64)
    else:
        raise ValueError(f"unknown faiss index {kind!r} (flat, hnsw)")
    index.add(gallery)
    kp = min(k + TIE_PAD + 1, ng)
    for start in range(0, len(queries), block):
        if skip and skip(start):
            continue
        q = np.ascontiguousarray(queries[start:start + block], dtype=np.float32)
        s, i = index.search(q, kp)
        i = i.astype(np.int64)
        s = np.where(i < 0, -np.inf, s).astype(np.float32)
        if self_index is not None:
            own = self_index[start:start + len(q)]
            s = np.where(i == own[:, None], -np.inf, s)
        sc, ix = _order_rows(s, i, k)
        yield Hits(start, sc, ix)


def search(queries: np.ndarray, gallery: np.ndarray, k: int, *, method: str = "exact", block: int = 2048,
           self_index: np.ndarray | None = None, skip: Callable[[int], bool] | None = None) -> Iterator[Hits]:
    """Dispatch to ``exact`` (blocked matmul), ``faiss-flat`` or ``faiss-hnsw``."""
    if method == "exact":
        return exact_search(queries, gallery, k, block=block, self_index=self_index, skip=skip)
    if method in ("faiss-flat", "faiss-hnsw"):
        return faiss_search(queries, gallery, k, kind=method.split("-")[1], block=block, self_index=self_index, skip=skip)
    raise ValueError(f"unknown search {method!r} ({', '.join(SEARCHES)})")


def recall_against(exact: np.ndarray, approx: np.ndarray) -> float:
    """Share of the exact top-k (gallery indexes, (n, k)) that the approximate top-k also holds."""
    if exact.size == 0:
        return 1.0
    found = sum(len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(exact, approx))
    return found / exact.size

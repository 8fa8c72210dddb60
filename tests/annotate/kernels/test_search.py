"""Blocked exact top-k search: same result as a brute-force sort, with ties by index and no self match."""

import numpy as np
import pytest

from m5data.annotate.kernels.search import exact_search, faiss_search, quantise, recall_against


def _brute(q, g, k, own):
    s = q @ g.T
    out_s, out_i = [], []
    for r in range(len(q)):
        row = s[r].astype(np.float32).copy()
        if own[r] >= 0:
            row[own[r]] = -np.inf
        # ties as the search defines them: equal to TIE_DECIMALS decimals, then by index
        order = np.lexsort((np.arange(len(row)), -quantise(row)))[:k]
        out_s.append(row[order])
        out_i.append(order)
    return np.array(out_s), np.array(out_i)


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("backend", ["reservoir", "torch", "numpy"])
def test_blocked_search_equals_brute_force_with_ties(backend):
    rng = np.random.default_rng(0)
    # few distinct vectors with entries 0 or 0.5 (dot products exact in float32): long runs of
    # ties at every rank, across gallery chunks
    base = np.zeros((7, 16), np.float32)
    for i in range(7):
        base[i, rng.choice(16, 4, replace=False)] = 0.5
    g = base[rng.integers(0, 7, size=300)]
    q = g[:50]
    own = np.arange(50)
    hits = list(exact_search(q, g, 40, block=16, gallery_block=64, self_index=own, backend=backend))
    assert [h.start for h in hits] == [0, 16, 32, 48]
    idx = np.concatenate([h.index for h in hits])
    sc = np.concatenate([h.scores for h in hits])
    bs, bi = _brute(q, g, 40, own)
    assert (idx == bi).all()
    assert np.allclose(sc, bs, atol=1e-5)
    assert not (idx == own[:, None]).any()


def test_search_skips_done_blocks_and_caps_k():
    rng = np.random.default_rng(1)
    g = _unit(rng.normal(size=(30, 8)))
    hits = list(exact_search(g, g, 500, block=10, self_index=np.arange(30), skip=lambda s: s == 10))
    assert [h.start for h in hits] == [0, 20]
    assert hits[0].index.shape == (10, 29)  # k capped at the gallery less the query itself


def test_faiss_flat_agrees_with_exact_and_recall_is_measured():
    rng = np.random.default_rng(2)
    g = _unit(rng.normal(size=(2000, 32)))
    q = _unit(rng.normal(size=(64, 32)))
    own = -np.ones(64, np.int64)
    ex = np.concatenate([h.index for h in exact_search(q, g, 100, self_index=own)])
    fl = np.concatenate([h.index for h in faiss_search(q, g, 100, kind="flat", self_index=own)])
    hn = np.concatenate([h.index for h in faiss_search(q, g, 100, kind="hnsw", self_index=own)])
    assert recall_against(ex, fl) == 1.0
    assert 0.5 < recall_against(ex, hn) <= 1.0


@pytest.mark.parametrize("gallery_block", [777, 4096])
def test_reservoir_equals_brute_force_on_continuous_scores(gallery_block):
    # enough gallery per row that the reservoir fills and reselects many times, a short last chunk,
    # queries in and out of the gallery
    rng = np.random.default_rng(3)
    g = _unit(rng.normal(size=(5000, 24)))
    q = np.concatenate([g[:20], _unit(rng.normal(size=(17, 24)))])
    own = np.concatenate([np.arange(20), -np.ones(17, np.int64)])
    hits = list(exact_search(q, g, 100, block=16, gallery_block=gallery_block, self_index=own, backend="reservoir"))
    assert [h.start for h in hits] == [0, 16, 32]
    idx = np.concatenate([h.index for h in hits])
    bs, bi = _brute(q, g, 100, own)
    # the same neighbours in the same order, except where two scores differ by float32 rounding
    # alone (the BLAS behind numpy and the search may round the 7th digit differently)
    rows, cols = np.nonzero(idx != bi)
    exact = np.einsum("rd,rd->r", q[rows].astype(np.float64), g[idx[rows, cols]].astype(np.float64))
    brute = np.einsum("rd,rd->r", q[rows].astype(np.float64), g[bi[rows, cols]].astype(np.float64))
    assert len(rows) <= 0.01 * idx.size and np.allclose(exact, brute, atol=1e-5), (rows, cols, exact - brute)
    assert np.allclose(np.concatenate([h.scores for h in hits]), bs, atol=1e-5)

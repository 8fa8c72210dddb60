"""Two runs' pools compared as equal but for float32 noise, and the pools a full search over the kept vectors
gives: the pools' incremental tests share these."""

from __future__ import annotations

import numpy as np

from m5data.annotate.kernels.search import exact_search
from m5data.annotate.pools import next_run
from m5data.annotate.pools.job import Rows, sample_queries
from m5data.storage import changes

NOISE = 2e-6  # float32 matmuls of other block shapes differ in the last bits: scores this close are ties


def tie_runs(pool: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    """A pool cut into runs of consecutive candidates whose scores are within NOISE of the run's first."""
    runs: list[list[tuple[str, float]]] = []
    for c, x in pool:
        if runs and abs(runs[-1][0][1] - x) <= NOISE:
            runs[-1].append((c, x))
        else:
            runs.append([(c, x)])
    return runs


def assert_same(a: dict, b: dict) -> None:
    """The same queries with the same candidates in the same order, scores equal but for float32 noise.

    Tied scores are ordered by product_id after rounding to 6 decimals, so two copies of one product
    whose score lies on a rounding boundary (0.5743105) may round apart in one matmul and together in
    another: within a run of scores that close the order is free, and at the pool's end which of the
    run's candidates fill the last places too (the run's scores still agree).
    """
    assert a.keys() == b.keys()
    for q in a:
        assert len(a[q]) == len(b[q]), q
        ra, rb = tie_runs(a[q]), tie_runs(b[q])
        assert len(ra) == len(rb), (q, a[q], b[q])
        for i, (x, y) in enumerate(zip(ra, rb)):
            assert len(x) == len(y) and abs(x[0][1] - y[0][1]) <= NOISE, (q, x, y)
            if i < len(ra) - 1:  # the last run may be cut at the pool's end
                assert sorted(c for c, _ in x) == sorted(c for c, _ in y), (q, x, y)


def kept_vectors(store):
    """The vectors and ids the last complete run kept (what an incremental run searched)."""
    files = changes.load_state(store, "pools")["files"]
    kept = store.local_root() / "derived" / "pools"
    ids = next_run._load_ids(kept / files["ids"]).to_pylist()
    return ids, np.load(kept / files["vectors"]), np.load(kept / files["usable"])


def full_search(store, s) -> dict[str, list[tuple[str, float]]]:
    """Every query's top ``pools.k`` by an exact search over the kept vectors, as a full run would write them."""
    ids, vec, usable = kept_vectors(store)
    g_rows = np.flatnonzero(usable)
    pos = np.full(len(ids), -1)
    pos[g_rows] = np.arange(len(g_rows))
    queries = [q for q in sample_queries(ids, s.pools.queries, s.annotate.seed) if usable[ids.index(q)]]
    q_rows = np.array([ids.index(q) for q in queries])
    out = {}
    for hits in exact_search(Rows(vec, q_rows), vec[g_rows], s.pools.k, self_index=pos[q_rows]):
        for i, (idx, sc) in enumerate(zip(hits.index, hits.scores)):
            out[queries[hits.start + i]] = [(ids[g_rows[j]], round(float(x), 6)) for j, x in zip(idx, sc) if np.isfinite(x)]
    return out


def pools_of(store) -> dict[str, list[tuple[str, float]]]:
    rows = store.read("pools", columns=["query_id", "candidate_id", "rank", "score"]).sort_by(
        [("query_id", "ascending"), ("rank", "ascending")]).to_pylist()
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r["query_id"], []).append((r["candidate_id"], round(r["score"], 6)))
    return out

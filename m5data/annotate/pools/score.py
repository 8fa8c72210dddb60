"""Scoring candidate pools against a demo world's truth (``m5data annotate pools --score-against``):
the recall of true instance matches within each query's top k. Reads the ``pools`` table only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def score_pools(store, truth_dir: str | Path, ks: tuple[int, ...] = (10, 50, 500)) -> dict:
    """Recall of true instance matches within each query's top k (demo truth ``instance_id``).

    Returns ``{"queries": n with at least one true match in the gallery, "pairs": true pairs,
    "recall": {k: share of true pairs ranked <= k}}``. A true pair is (query, other listing of the
    same instance) where the other listing had a vector (it was in the gallery).
    """
    from ...storage.truth_files import true_instances

    inst = true_instances(truth_dir)
    con = store.connect()
    try:
        pools = con.sql("SELECT query_id, candidate_id, rank FROM pools").to_arrow_table().to_pydict()
    finally:
        con.close()
    members: dict[str, list[str]] = {}
    for p, i in inst.items():
        members.setdefault(i, []).append(p)
    found: dict[str, dict[str, int]] = {}
    for q, c, r in zip(pools["query_id"], pools["candidate_id"], pools["rank"]):
        found.setdefault(q, {})[c] = r
    n_pairs, n_queries = 0, 0
    hits = Counter()
    for q, cands in found.items():
        if q not in inst:
            continue
        true = [p for p in members[inst[q]] if p != q]
        if not true:
            continue
        n_queries += 1
        n_pairs += len(true)
        for p in true:
            r = cands.get(p)
            for k in ks:
                if r is not None and r <= k:
                    hits[k] += 1
    return {"queries": n_queries, "pairs": n_pairs, "pool_queries": len(found),
            "recall": {k: (hits[k] / n_pairs if n_pairs else float("nan")) for k in ks}}

"""The ``dedup`` table from the accepted pairs: the groups (connected components), each product's
strongest pair and why a product has no evidence, and its write (whole, or only the rows that differ
from the last run's)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...storage import StageStats
from . import kept_inputs
from .reads import Inputs
from .report import DedupReport

RULES = ("exact_image", "exact_title", "phash", "minhash", "spec", "matcher")  # strongest first
_MISSING = ("no main image", "no pHash", "empty title", "no specs")


def groups(inp: Inputs, edges: list, report: DedupReport) -> pa.Table:
    """Connected components of the accepted pairs; each product's strongest pair.

    The strongest pair of a product is the smallest ``(rule rank, distance, other product_id)``:
    row numbers follow product_id, so comparing them compares the ids.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(inp)
    me, other, rank, dist = [], [], [], []
    for left, right, d, rule in edges:
        report.pairs[rule] += len(left)
        r = np.full(2 * len(left), RULES.index(rule), dtype=np.int8)
        me += [left, right]
        other += [right, left]
        rank.append(r)
        dist += [np.round(d, 6)] * 2
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
    me, other, rank, dist = cat(me, np.int64), cat(other, np.int64), cat(rank, np.int8), cat(dist, np.float64)
    order = np.lexsort((other, dist, rank, me))
    first = order[np.r_[True, me[order][1:] != me[order][:-1]]] if len(order) else order
    best_rank = np.full(n, -1, dtype=np.int64)
    best_other = np.full(n, -1, dtype=np.int64)
    best_dist = np.full(n, np.nan)
    best_rank[me[first]], best_other[me[first]], best_dist[me[first]] = rank[first], other[first], dist[first]
    half = len(me) // 2  # each edge once (the first direction of each rule's block)
    lefts = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, dtype=np.int64)
    rights = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, dtype=np.int64)
    assert len(lefts) == half
    graph = coo_matrix((np.ones(len(lefts), dtype=np.int8), (lefts, rights)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    root = np.full(label.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(root, label, np.arange(n))  # ids are sorted: the smallest index is the smallest product_id
    sizes = np.bincount(label) if n else np.zeros(0, dtype=np.int64)
    report.n_groups = int((sizes >= 2).sum())
    report.n_grouped = int(sizes[sizes >= 2].sum())
    alone = best_rank < 0
    rules = pa.array(list(RULES), pa.string())
    return pa.table({
        "product_id": inp.ids,
        "group_id": inp.ids.take(pa.array(root[label] if n else np.zeros(0, dtype=np.int64))),
        "rule": rules.take(pa.array(np.where(alone, 0, best_rank), mask=alone)),
        "matched_id": inp.ids.take(pa.array(np.where(alone, 0, best_other), mask=alone)),
        "distance": pa.array(best_dist, mask=alone, type=pa.float64()),
    })


def with_reasons(table: pa.Table, inp: Inputs, stats: StageStats) -> pa.Table:
    """The table with each product's missing evidence (``reason``) and the run's id; a product with no
    image, title or specs at all counts as failed."""
    missing = np.stack([inp.blob < 0, ~inp.phash_given, ~inp.has_title, inp.n_spec_rows == 0], axis=1)
    combo = missing @ (1 << np.arange(4))  # the reasons as one code, then one string per code
    text = pa.array(["; ".join(w for b, w in enumerate(_MISSING) if c >> b & 1) or None for c in range(16)], pa.string())
    n_bad = int(missing.all(axis=1).sum())
    if n_bad:
        stats.fail("no evidence (no image, title or specs)", n_bad)
    return table.append_column("reason", text.take(pa.array(combo))).append_column(
        "run_id", pa.array([stats.run_id] * len(inp), pa.string()))


def write_table(store, state: dict | None, inp: Inputs, table: pa.Table, plan) -> np.ndarray | None:
    """Write the ``dedup`` table: after an incremental read, only the rows that differ from the last
    run's (``inp.written``; an upsert by product_id, none when none differ), when the table is as that
    run left it (its watermark is the state's ``table_mark``: no write since, a killed run's
    included) and no product is gone; else the whole table (``store.replace``). Which rows differ
    (None: written whole)."""
    prev = inp.written
    if plan is None or prev is None or inp.gone or state is None or state.get("table_mark") != store.watermark("dedup"):
        store.replace("dedup", table)
        return None
    differ = np.zeros(len(table), dtype=bool)
    for c in kept_inputs.OUT:
        new, old = table.column(c), prev.column(c)
        same = pc.fill_null(pc.equal(new, old), False).to_numpy(zero_copy_only=False)
        both_null = pc.is_null(new).to_numpy(zero_copy_only=False) & pc.is_null(old).to_numpy(zero_copy_only=False)
        differ |= ~(same | both_null)
    d_new = table.column("distance").to_numpy(zero_copy_only=False).astype(np.float64)
    d_old = prev.column("distance").to_numpy(zero_copy_only=False).astype(np.float64)
    differ |= ~((d_new == d_old) | (np.isnan(d_new) & np.isnan(d_old)))
    if differ.any():
        store.write("dedup", table.filter(pa.array(differ)))
    return differ

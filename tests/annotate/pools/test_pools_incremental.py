"""Pools between full runs (m5data/annotate/pools/next_run.py): the kept embedder, vectors and
each query's best K + margin candidates; only what changed is embedded and searched, only the pools
that changed are written; nothing new -> no work and no write; a killed run, run again, gives the
same pools; the result equals a full search over the same vectors and agrees with a full rebuild."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from support.demo_fixtures import copy_store
from support.grow_store import grow, product_ids
from support.pool_compare import assert_same, full_search, kept_vectors, pools_of

from m5data.annotate.pools import update_run
from m5data.annotate.pools.job import build_pools
from m5data.config import load
from m5data.storage import Store, changes

pytestmark = pytest.mark.xdist_group("demo300")  # one worker builds and reads the 300-product store

K, MARGIN = 40, 10  # pools shorter than the 300-product gallery: the kept lists have a floor


def settings(store, **pools):
    pools = {"queries": 1.0, "k": K, "margin": MARGIN, **pools}
    return load(None, {"store.path": str(store.root), **{f"pools.{k}": v for k, v in pools.items()}}, environ={})


def membership(a: dict, b: dict) -> float:
    """Share of (query, candidate) entries of ``b`` that ``a`` holds too."""
    pairs = {(q, c) for q, pool in a.items() for c, _ in pool}
    every = [(q, c) for q, pool in b.items() for c, _ in pool]
    return sum(p in pairs for p in every) / len(every)


@pytest.fixture(scope="module")
def first_run(demo_store_factory, tmp_path_factory):
    """The 300-product demo store after one complete (full) pools run."""
    store = Store.open(copy_store(demo_store_factory(products=300, seed=0, faces=False), tmp_path_factory.mktemp("pools-inc")))
    report = build_pools(store, settings(store))
    assert report.refit == "no earlier complete run" and report.changes["new"] == 300
    return store


@pytest.fixture()
def first(first_run, tmp_path):
    store = Store.open(copy_store(first_run.root, tmp_path, "store"))
    return store, settings(store)


def test_two_writes_incrementally_equal_a_full_search_and_agree_with_a_full_rebuild(first):
    store, s = first
    ids = sorted(product_ids(store))
    for tag, n, changed in (("x", 12, ids[5]), ("y", 9, ids[200])):
        grow(store, tag, n, changed)
        report = build_pools(store, s)
        assert report.refit is None, report.refit
        assert report.changes == {"new": n, "changed": 1, "unchanged": len(ids) - 1}, report.changes
        # the new and changed queries are searched; copies of old products join many pools
        assert report.searched >= n + 1 and 0 < report.rewritten < report.n_queries
        assert report.n_products == len(ids) + n
        ids = sorted(product_ids(store))
    incremental = pools_of(store)
    assert len(incremental) == report.n_queries
    assert_same(incremental, full_search(store, s))  # the same vectors: the same pools, entry for entry
    rebuilt = build_pools(store, s, full=True)
    assert rebuilt.refit == "full run asked" and rebuilt.changes["new"] == 321
    agree = membership(incremental, pools_of(store))
    print(f"pool membership incremental vs full rebuild: {agree:.4f}")
    assert agree >= 0.97  # measured 0.9765 (docs/annotate.md): the refit embedder (TF-IDF, SVD, means) moves the pools' edges


def test_a_changed_product_replaces_its_pool_and_its_entries(first):
    store, s = first
    changed = sorted(product_ids(store))[17]
    before = pools_of(store)
    cap = store.read("captions").filter(pc.equal(pc.field("product_id"), changed)).to_pylist()[0]
    store.write("captions", [{**cap, "text": "一个完全不同的标题 红色", "tokens": ["一个", "完全", "不同", "的", "标题", "红色"]}])
    report = build_pools(store, s)
    assert report.changes == {"new": 0, "changed": 1, "unchanged": 299}
    after = pools_of(store)
    runs = store.read("pools", columns=["query_id", "run_id"])
    assert set(runs.filter(pc.equal(runs.column("query_id"), changed)).column("run_id").to_pylist()) == {report.stats.run_id}
    # every pool entry of the changed product has its new score (a pool it left no longer has it)
    ids, vec, _ = kept_vectors(store)
    row = {p: i for i, p in enumerate(ids)}
    for q, pool in after.items():
        for c, score in pool:
            if c == changed:
                assert score == pytest.approx(float(vec[row[q]] @ vec[row[c]]), abs=1e-5)
    assert_same(after, full_search(store, s))
    assert after != before


def test_nothing_new_does_no_work_and_writes_nothing(first, monkeypatch):
    store, s = first
    parts = sorted(p.name for p in store.parts("pools"))
    mark = store.watermark("pools")
    grow(store, "w", 3, sorted(product_ids(store))[0])
    build_pools(store, s)  # an incremental run: its state holds no input state (the full run's is gone)
    parts, mark = sorted(p.name for p in store.parts("pools")), store.watermark("pools")

    def refuse(*args, **kwargs):
        raise AssertionError("a pools run with nothing new read the catalog or the kept files")

    monkeypatch.setattr(update_run, "read_catalog", refuse)
    monkeypatch.setattr(store, "kept", refuse)
    again = build_pools(store, s)
    assert again.up_to_date and again.changes == {"new": 0, "changed": 0, "unchanged": 303}
    assert sorted(p.name for p in store.parts("pools")) == parts and store.watermark("pools") == mark


def test_the_input_state_is_the_runs_state_no_second_file_and_the_next_run_is_incremental(first):
    """A full run keeps its input state (input_state) in the state the contract writes
    (derived/state/pools.json), no derived/pools/inputs.json beside it (an older m5data's is removed by the
    next full run); a re-run with nothing changed is up to date from it, the next run after a write is
    incremental, and its state holds no input state."""
    store, s = first
    assert store.read_bytes("derived/pools/inputs.json") is None
    assert changes.load_state(store, "pools")["input_state"]["report"]["n_products"] == 300
    assert build_pools(store, s).up_to_date
    grow(store, "j", 4, sorted(product_ids(store))[1])
    report = build_pools(store, s)
    assert report.refit is None and report.changes["new"] == 4 and not report.up_to_date
    assert "input_state" not in changes.load_state(store, "pools")
    assert store.read_bytes("derived/pools/inputs.json") is None
    store.write_text("derived/pools/inputs.json", "{}")  # an older m5data's input state
    rebuilt = build_pools(store, s, full=True)
    assert rebuilt.refit == "full run asked" and store.read_bytes("derived/pools/inputs.json") is None
    assert "input_state" in changes.load_state(store, "pools") and build_pools(store, s).up_to_date


def test_killed_after_writing_pools_and_run_again_gives_the_same_pools(first, tmp_path, monkeypatch):
    store, s = first
    other = Store.open(copy_store(store.root, tmp_path, "straight"))
    for st in (store, other):
        grow(st, "k", 10, sorted(product_ids(st))[3])
    build_pools(other, s)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed before the state was saved")

    with monkeypatch.context() as m:
        m.setattr(changes, "save_state", killed)
        with pytest.raises(KeyboardInterrupt):
            build_pools(store, s)
    assert store.watermark("pools") > 0
    again = build_pools(store, s)
    assert again.refit is None and again.changes["new"] == 10
    assert pools_of(store) == pools_of(other)


def test_a_store_grown_past_the_refit_share_is_embedded_again(first):
    store, _ = first
    s = settings(store, refit_share=0.95)
    grow(store, "r", 30, sorted(product_ids(store))[0])  # 300 fitted of 330: 0.91 < 0.95
    again = build_pools(store, s)
    assert again.refit.startswith("fitted on 300 products") and again.changes["new"] == 330
    assert changes.load_state(store, "pools")["fitted_on"] == 330


def test_the_table_is_compacted_once_replaced_rows_pass_the_share_and_stays_incremental(first):
    """Re-ranked pools are written again each run; once the rows they replaced pass
    ``pools.compact_share`` of the live rows the run compacts the table (its rows read the
    same, nothing superseded is left), and the next runs stay incremental (its state holds the
    compacted table's watermark)."""
    store, s = first
    ids = sorted(product_ids(store))
    live = store.count("pools")
    assert store.stored_rows("pools") == live  # one full run: nothing replaced yet
    grow(store, "c", 12, ids[3])
    report = build_pools(store, s)  # the default share (1.0): a first night's rewrite stays
    assert report.refit is None and 0 < report.rewritten and report.compacted == []
    assert store.stored_rows("pools") > store.count("pools") and not store.is_compacted("pools")
    before = pools_of(store)
    stored = store.stored_rows("pools")
    small = settings(store, compact_share=0.01)
    grow(store, "d", 9, ids[40])
    report = build_pools(store, small)  # the same fingerprint: the share is not an input of the pools
    assert report.refit is None and report.compacted
    assert report.compacted[0] >= stored and report.compacted[1] == store.stored_rows("pools") == store.count("pools")
    assert store.is_compacted("pools")
    assert_same(pools_of(store), full_search(store, s))
    again = build_pools(store, small)
    assert again.up_to_date and again.compacted == []  # the compaction is the run's own: nothing new since
    grow(store, "e", 5, ids[80])
    later = build_pools(store, s)
    assert later.refit is None, later.refit
    assert before != pools_of(store)

"""build-splits / check-splits on synthetic labelled stores: invariants, determinism, stability, the manifest."""

import hashlib
import json

import pytest
from support.splits_store import write_synthetic

from m5data import config as cfg
from m5data import stages
from m5data.splits import SplitsError, build, check
from m5data.splits.manifest import checksum, manifest_path
from m5data.storage import Store

N = 4000


def settings(**over):
    base = {"splits.subset": "0.1", "splits.min_queries": 20}
    return cfg.load(None, {**base, **{f"splits.{k}": v for k, v in over.items()}}, environ={})


def add_groups(store, seed: int = 0) -> int:
    """Dedup groups of 2-3 products of one category, for about half of the domain's (class 6) products."""
    con = store.connect()
    rows = con.execute("""
        SELECT p.product_id, l.sub_class_id, l.subsub_class_id FROM products p
        JOIN label_map l ON l.platform = p.platform AND l.raw_path = array_to_string(p.category_path, ' > ')
        WHERE l.class_id = 6 ORDER BY l.sub_class_id, l.subsub_class_id, p.product_id
    """).fetchall()
    con.close()
    out, run = [], []
    for i, (pid, sub, subsub) in enumerate(rows + [(None, None, None)]):
        if run and (run[-1][1:] != (sub, subsub) or len(run) == 2 + (i % 2)):
            if len(run) > 1 and int(hashlib.md5(run[0][0].encode()).hexdigest(), 16) % 2 == seed % 2:
                gid = min(r[0] for r in run)
                out += [{"product_id": r[0], "group_id": gid, "rule": "exact_title", "matched_id": gid, "distance": 0.0}
                        for r in run]
            run = []
        run.append((pid, sub, subsub))
    store.write("dedup", out)
    return len(out)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """A synthetic store with dedup groups (read-only: tests copy it)."""
    root = tmp_path_factory.mktemp("splits") / "store"
    store = Store.init(root)
    write_synthetic(store, N, n_categories=150)
    assert add_groups(store) > 100
    return root


@pytest.fixture
def store(grouped, tmp_path):
    import shutil

    shutil.copytree(grouped, tmp_path / "store")
    return Store.open(tmp_path / "store")


def assignment(store, version: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in store.read("splits", where=f"version = '{version}'").to_pylist():
        out.setdefault(row["product_id"], set()).add(row["split"])
    return out


def test_every_split_is_built_and_every_invariant_holds(store):
    report = build(store, settings())
    assert report.groups.source == "dedup" and report.groups.groups > 50
    assert store.count("runs") == 0  # the library function does the work; the stage's run records it (below)
    assert set(report.splits) == {"train", "query-c", "gallery-c", "query-fg", "gallery-fg", "cls-train", "cls-test", "subset"}
    assert sum(e["products"] for k, e in report.splits.items() if k != "subset") == N - report.held_out
    result = check(store, settings())
    assert result.ok, result.violations
    assert len(result.rules) == 7 and all(n == 0 for _, n in result.rules)
    stats = stages.call("splits", stages.RunContext(settings(), options={"version": "v2"}, _store=store))
    runs = store.read("runs", where="stage = 'splits'")
    assert runs.num_rows == 1 and runs.column("run_id")[0].as_py() == stats.run_id
    assert runs.column("n_out")[0].as_py() == store.read("splits", where="version = 'v2'").num_rows > 0


def test_no_group_crosses_train_and_evaluation(store):
    build(store, settings())
    splits = assignment(store, "v1")
    side = {}
    for row in store.read("dedup").to_pylist():
        s = splits.get(row["product_id"], set())
        kind = "train" if "train" in s else "query" if s & {"query-c", "query-fg"} else "eval" if s else "none"
        side.setdefault(row["group_id"], set()).add(kind)
    assert side and all(not ({"train"} & k and k & {"query", "eval"}) for k in side.values())
    fg = [pid for pid, s in splits.items() if "query-fg" in s]
    assert fg, "the groups give fine-grained queries"


def test_deterministic_for_a_seed_and_different_for_another(store):
    a = build(store, settings(), version="a")
    b = build(store, settings(), version="b")
    c = build(store, settings(seed=7), version="c")
    assert {k: e["checksum"] for k, e in a.splits.items()} == {k: e["checksum"] for k, e in b.splits.items()}
    assert a.splits["train"]["checksum"] != c.splits["train"]["checksum"]
    assert assignment(store, "a") == assignment(store, "b")


def test_appended_products_never_move_existing_ones(store):
    build(store, settings())
    before = assignment(store, "v1")
    write_synthetic(store, 1500, start=N, n_categories=150)  # new products, new draws
    report = build(store, settings())
    after = assignment(store, "v1")
    assert report.reused_plan and report.moved == 0
    assert {pid: after[pid] for pid in before} == before
    assert len(after) > len(before)  # the new products are placed too
    assert check(store, settings()).ok


def test_a_new_version_never_changes_an_old_one(store):
    build(store, settings())
    v1 = assignment(store, "v1")
    manifest = manifest_path(store, "v1").read_bytes()
    build(store, settings(seed=3, query_c="0.05"), version="v2")
    assert assignment(store, "v1") == v1 and manifest_path(store, "v1").read_bytes() == manifest
    assert assignment(store, "v2") != v1
    assert check(store, settings(), version="v1").ok and check(store, settings(), version="v2").ok


def test_rebuilding_a_version_with_other_settings_needs_replace(store):
    build(store, settings())
    with pytest.raises(SplitsError, match="query_c"):
        build(store, settings(query_c="0.05"))
    report = build(store, settings(query_c="0.05"), replace=True)
    assert not report.reused_plan and report.splits["query-c"]["products"] > 100
    assert check(store, settings()).ok


def test_manifest_counts_equal_sql_over_the_store(store):
    report = build(store, settings())
    manifest = json.loads(manifest_path(store, "v1").read_text())
    con = store.connect()
    rows = con.execute("""
        SELECT s.split, count(*), count(DISTINCT (l.class_id, l.sub_class_id, l.subsub_class_id)),
               list(s.product_id ORDER BY s.product_id)
        FROM splits s JOIN products p USING (product_id)
        LEFT JOIN label_map l ON l.platform = p.platform AND l.raw_path = array_to_string(p.category_path, ' > ')
        WHERE s.version = 'v1' GROUP BY s.split
    """).fetchall()
    con.close()
    assert len(rows) == len(manifest["splits"]) == len(report.splits)
    for split, n, classes, ids in rows:
        entry = manifest["splits"][split]
        assert entry["products"] == n and entry["classes"] == classes
        assert entry["checksum"] == checksum(ids)
        md5sum = sum(int.from_bytes(hashlib.md5(f"0:{p}".encode()).digest(), "little") for p in ids) % 2**128
        assert entry["checksum"] == f"{md5sum:032x}"
        assert entry["modalities"]["image"] == 0  # no media in a synthetic store


def test_the_assignment_is_the_documented_md5_formula(store):
    """Pools follow md5(seed:group) read little-endian, 32 bits per decision (docs/splits.md)."""
    report = build(store, settings(seed=5))
    plan = report.plan
    splits = assignment(store, "v1")
    groups = {r["product_id"]: r["group_id"] for r in store.read("dedup").to_pylist()}
    con = store.connect()
    labels = dict(con.execute("""
        SELECT p.product_id, l.class_id FROM products p
        JOIN label_map l ON l.platform = p.platform AND l.raw_path = array_to_string(p.category_path, ' > ')
    """).fetchall())
    con.close()
    checked = 0
    for pid, s in splits.items():
        if pid in groups or labels[pid] == 6 or s & {"cls-train", "cls-test"}:
            continue  # keep to singletons outside the fine-grained domain and classification
        h = int.from_bytes(hashlib.md5(f"5:{pid}".encode()).digest(), "little")
        u_coarse = ((h >> 64) & 0xFFFFFFFF) / 2**32
        assert (u_coarse < plan.r_coarse) == bool(s & {"query-c", "gallery-c"}), pid
        checked += 1
    assert checked > N / 2


def test_check_reports_a_group_across_boundaries_and_a_stale_manifest(store):
    build(store, settings())
    splits = assignment(store, "v1")
    train = next(p for p, s in splits.items() if s == {"train"})
    gallery = next(p for p, s in splits.items() if s == {"gallery-c"})
    store.write("dedup", [{"product_id": train, "group_id": min(train, gallery)},
                          {"product_id": gallery, "group_id": min(train, gallery)}])
    result = check(store, settings())
    bad = {v.rule: v for v in result.violations}
    assert not result.ok and bad["a duplicate group in both train and a retrieval split"].count == 1
    path = manifest_path(store, "v1")
    manifest = json.loads(path.read_text())
    manifest["splits"]["train"]["products"] += 1
    path.write_text(json.dumps(manifest))
    assert "the manifest's figures equal SQL over the store" in {v.rule for v in check(store, settings()).violations}


def test_check_reports_a_query_without_a_match(store):
    build(store, settings())
    table = store.read("splits")
    con = store.connect()
    con.register("t", table)
    query = con.execute("SELECT product_id FROM t WHERE split = 'query-fg' ORDER BY 1 LIMIT 1").fetchall()[0][0]
    grp = con.execute(f"SELECT group_id FROM dedup WHERE product_id = '{query}'").fetchall()[0][0]
    kept = con.sql(f"""SELECT * FROM t WHERE NOT (split = 'gallery-fg' AND product_id IN
                           (SELECT product_id FROM dedup WHERE group_id = '{grp}'))""").to_arrow_table()
    con.close()
    store.replace("splits", kept)
    bad = {v.rule: v for v in check(store, settings()).violations}
    assert query in bad["a query-fg product without a gallery-fg product of its duplicate group"].examples


def test_unknown_version_and_empty_store_are_one_line_errors(store, tmp_path):
    with pytest.raises(SplitsError, match="no split version 'nope'"):
        check(store, settings(), version="nope")
    with pytest.raises(SplitsError, match="no products"):
        build(Store.init(tmp_path / "empty"), settings())


def test_accepted_matches_make_groups_with_or_without_dedup(grouped, tmp_path):
    """Accepted crowd matches join products into groups (connected components) like dedup does."""
    import shutil

    shutil.copytree(grouped, tmp_path / "store")
    store = Store.open(tmp_path / "store")
    dedup = store.read("dedup").to_pylist()
    by_group: dict[str, list[str]] = {}
    for row in dedup:
        by_group.setdefault(row["group_id"], []).append(row["product_id"])
    pairs = [(ids[0], other) for ids in by_group.values() for other in ids[1:]]
    rows = [{"query_id": a, "candidate_id": b, "prob": 0.9, "accepted": True, "method": "glad"} for a, b in pairs]
    rows.append({"query_id": pairs[0][0], "candidate_id": "syn:999999", "prob": 0.2, "accepted": False, "method": "glad"})
    store.write("matches", rows)
    both = build(store, settings(), version="both")
    assert both.groups.source == "dedup+matches" and both.groups.groups == len(by_group)
    store.replace("dedup", [])
    only = build(store, settings(), version="only")
    assert only.groups.source == "matches" and only.groups.groups == len(by_group)
    assert only.splits["query-fg"]["products"] > 0
    assert assignment(store, "only") == assignment(store, "both")  # the same groups, the same splits
    assert check(store, settings(), version="only").ok

"""Splits of the default demo world (300 products, full kinds): with duplicate groups from the truth's
instances (as `annotate dedup` would find them) and without; manifest equal to SQL; stability."""

import json

import pyarrow.parquet as pq
import pytest
from support.demo_fixtures import copy_store
from support.splits_store import write_synthetic

from m5data import config as cfg
from m5data.splits import build, check
from m5data.splits.manifest import manifest_path
from m5data.storage import Store

# one worker builds and reads the 300-product store (Makefile: --dist loadgroup)
pytestmark = pytest.mark.xdist_group("demo300")


@pytest.fixture(scope="module")
def demo(demo_store_factory, demo_shop_factory):
    """(store path, truth products) of the default demo world; the store is the cached, read-only one."""
    path = demo_store_factory(products=300, seed=0, faces=False)
    truth = pq.read_table(demo_shop_factory(products=300, seed=0).truth_dir / "products.parquet").to_pylist()
    return path, {r["product_id"]: r for r in truth}


def dedup_from_truth(store, truth) -> int:
    """A dedup table whose groups are the truth's instances (group id = smallest product id)."""
    present = {r[0] for r in store.connect().execute("SELECT product_id FROM products").fetchall()}
    members: dict[str, list[str]] = {}
    for pid, row in truth.items():
        if pid in present:
            members.setdefault(row["instance_id"], []).append(pid)
    rows = [{"product_id": p, "group_id": min(ids), "rule": "exact_title" if len(ids) > 1 else None,
             "matched_id": min(ids) if len(ids) > 1 else None, "distance": 0.0}
            for ids in members.values() for p in ids]
    store.write("dedup", rows)
    return sum(len(ids) > 1 for ids in members.values())


def settings(**over):
    return cfg.load(None, {f"splits.{k}": v for k, v in over.items()}, environ={})


def splits_of(store, version="v1") -> dict[str, str]:
    rows = store.read("splits", where=f"version = '{version}' AND split <> 'subset'").to_pylist()
    return {r["product_id"]: r["split"] for r in rows}


def test_demo_splits_with_groups_keep_instances_together(demo, tmp_path):
    path, truth = demo
    store = Store.open(copy_store(path, tmp_path))
    assert dedup_from_truth(store, truth) > 5
    report = build(store, settings())
    assert report.groups.source == "dedup" and "dedup" in report.groups.describe()
    assert report.splits["query-fg"]["products"] > 0 and report.splits["query-c"]["products"] > 0
    result = check(store, settings())
    assert result.ok, result.violations
    split = splits_of(store)
    # fine-grained queries are cosmetics (class 6) and each has a gallery-fg listing of its instance
    by_instance: dict[str, set[str]] = {}
    for pid, s in split.items():
        by_instance.setdefault(truth[pid]["instance_id"], set()).add(s)
    for pid, s in split.items():
        if s == "query-fg":
            assert truth[pid]["class_id"] == 6
            assert "gallery-fg" in by_instance[truth[pid]["instance_id"]]
    # no truth instance is both in train and in an evaluation split
    for kinds in by_instance.values():
        assert not ("train" in kinds and kinds & {"query-c", "gallery-c", "query-fg", "gallery-fg"})


def test_demo_without_dedup_says_so_and_has_no_fine_grained_queries(demo, tmp_path):
    path, _ = demo
    store = Store.open(copy_store(path, tmp_path))
    report = build(store, settings())
    assert report.groups.source == "none" and "annotate dedup" in report.groups.describe()
    assert "query-fg" not in report.splits
    manifest = json.loads(manifest_path(store, "v1").read_text())
    assert manifest["groups"]["source"] == "none"
    assert check(store, settings()).ok


def test_demo_manifest_completeness_equals_sql(demo, tmp_path):
    path, truth = demo
    store = Store.open(copy_store(path, tmp_path))
    dedup_from_truth(store, truth)
    build(store, settings(subset="0.3"))
    manifest = json.loads(manifest_path(store, "v1").read_text())
    con = store.connect()
    rows = con.execute("""
        WITH ok AS (SELECT product_id, kind, role FROM media WHERE status = 'ok')
        SELECT s.split, count(*),
               count(*) FILTER (WHERE s.product_id IN (SELECT product_id FROM ok WHERE kind = 'image' AND role = 'main')),
               count(*) FILTER (WHERE s.product_id IN (SELECT product_id FROM captions WHERE status = 'ok' AND text <> '')),
               count(*) FILTER (WHERE s.product_id IN (SELECT product_id FROM specs)),
               count(*) FILTER (WHERE s.product_id IN (SELECT product_id FROM ok WHERE kind = 'video')),
               count(*) FILTER (WHERE s.product_id IN (SELECT product_id FROM ok WHERE kind = 'audio'))
        FROM splits s WHERE s.version = 'v1' GROUP BY s.split
    """).fetchall()
    con.close()
    assert {r[0] for r in rows} == set(manifest["splits"])
    for split, n, image, caption, table, video, audio in rows:
        m = manifest["splits"][split]
        assert m["products"] == n
        assert [m["modalities"][k] for k in ("image", "caption", "table", "video", "audio")] == \
               [image, caption, table, video, audio]
        assert m["modalities"]["all_five"] <= min(image, caption, table, video, audio)
    train = manifest["splits"]["train"]["modalities"]
    assert train["video"] > 0 and train["audio"] > 0 and 0 < train["all_five"] < manifest["splits"]["train"]["products"]


def test_demo_products_appended_keep_old_assignments(demo, tmp_path):
    path, truth = demo
    store = Store.open(copy_store(path, tmp_path))
    dedup_from_truth(store, truth)
    build(store, settings())
    before = splits_of(store)
    write_synthetic(store, 200, n_categories=40)  # another platform's products, labelled
    report = build(store, settings())
    after = splits_of(store)
    assert report.moved == 0 and {p: after[p] for p in before} == before
    assert len(after) > len(before)
    assert check(store, settings()).ok

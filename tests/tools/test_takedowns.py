"""Takedowns (issue 57): ``m5data takedown`` records a product, URL or domain; the store's views that
users query hide it (the raw tables keep it), every later export leaves it out (an incremental export
rewrites only the shards that held it) and a later crawl neither fetches nor stores it again."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from support.cli_inprocess import invoke
from support.crawl_server import SiteServer, jsonld_shop
from support.export_helpers import hashed_splits, same_members, samples_of, settings_for, shard_of, written_keys

from m5data.config import load
from m5data.crawler.crawl import run as crawl
from m5data.export.run import export
from m5data.export.samples import ExportError
from m5data.export.stage import default_out
from m5data.storage import Store

NOW = datetime(2026, 11, 27, tzinfo=timezone.utc)


def small_store(root) -> Store:
    """Three products on two domains (one on a subdomain), two spec rows each."""
    store = Store.init(root)
    urls = {"a:1": "https://shop.example.com/p/1.html", "a:2": "https://M.Shop.example.com./p/2.html",
            "b:3": "https://other.example.org/p/3.html"}
    store.write("products", [{"product_id": pid, "platform": pid[0], "source_id": pid[2:], "url": url,
                              "title": f"product {pid}", "crawled_at": NOW} for pid, url in urls.items()])
    store.write("specs", [{"product_id": pid, "position": j, "property": p, "value": "x"}
                          for pid in urls for j, p in enumerate(["品牌", "颜色"])])
    return store


def m5(store, *args):
    return invoke("--store", str(store.root), *args)


def test_takedown_verb_records_lists_and_refuses(tmp_path):
    store = small_store(tmp_path / "store")
    res = m5(store, "takedown", "--product-id", "b:3", "--reason", "owner request #12")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "b:3" in res.stdout and "1 product(s)" in res.stdout
    res = m5(store, "takedown", "--domain", "https://SHOP.example.com/anything")  # a URL given as a domain: its host
    assert res.returncode == 0 and "shop.example.com" in res.stdout and "2 product(s)" in res.stdout, res.stdout
    rows = {(r["kind"], r["value"]): r["reason"] for r in store.read("takedowns").to_pylist()}
    assert rows == {("product_id", "b:3"): "owner request #12", ("domain", "shop.example.com"): None}
    listed = m5(store, "takedown", "--list")
    assert listed.returncode == 0 and "owner request #12" in listed.stdout and "shop.example.com" in listed.stdout
    assert m5(store, "takedown").returncode == 2
    assert m5(store, "takedown", "--url", "u", "--domain", "d").returncode == 2
    bad = m5(store, "takedown", "--url", "p/1.html")
    assert bad.returncode == 1 and "not an absolute URL" in bad.stdout + bad.stderr and "Traceback" not in bad.stderr


def test_views_hide_taken_down_products_and_raw_tables_keep_them(tmp_path):
    store = small_store(tmp_path / "store")
    store.write("takedowns", [{"kind": "domain", "value": "shop.example.com", "reason": "r", "taken_at": NOW}])
    assert store.read("products").num_rows == 3  # the raw table keeps every row

    def query(sql):
        res = m5(store, "sql", sql, "--format", "json")
        assert res.returncode == 0, res.stdout + res.stderr
        return [json.loads(line) for line in res.stdout.splitlines()]

    assert query("SELECT product_id FROM products") == [{"product_id": "b:3"}]
    assert query("SELECT DISTINCT product_id FROM specs") == [{"product_id": "b:3"}]
    assert query("SELECT count(*) AS n FROM raw.products") == [{"n": 3}]
    assert query("SELECT product_id, kind, value FROM taken_down ORDER BY 1") == [
        {"product_id": "a:1", "kind": "domain", "value": "shop.example.com"},
        {"product_id": "a:2", "kind": "domain", "value": "shop.example.com"}]
    store.refresh_catalog()
    con = duckdb.connect(str(store.catalog_path), read_only=True)
    try:
        assert con.sql("SELECT product_id FROM products").fetchall() == [("b:3",)]
        assert con.execute("SELECT count(*) FROM raw.specs").fetchall() == [(6,)]
        assert con.execute("SELECT count(*) FROM specs").fetchall() == [(2,)]
    finally:
        con.close()


@pytest.mark.xdist_group("demo60")
def test_a_later_export_leaves_a_taken_down_product_out_rewriting_only_its_shards(demo_store_factory, tmp_path):
    from support.demo_fixtures import copy_store

    from m5data.export.samples import safe_key

    store = Store.open(copy_store(demo_store_factory(products=60, seed=0), tmp_path))
    ids = sorted(r["product_id"] for r in store.read("products", columns=["product_id"]).to_pylist())
    store.write("splits", hashed_splits(ids[:30], "v1"))
    settings = settings_for(store, **{"export.shard_size": 4, "export.workers": 1})
    v1 = default_out(store, "all", "webdataset", "v1")[1]
    export(store, settings, out=v1, version="v1")
    gone = ids[5]
    held = {(split, shard_of(Path(v1), split, safe_key(gone))) for split, key in samples_of(Path(v1))
            if key == safe_key(gone)}
    store.write("takedowns", [{"kind": "product_id", "value": gone, "reason": None, "taken_at": NOW}])
    members = same_members(store, "v1", "v2")
    report = export(store, settings, out=default_out(store, "all", "webdataset", "v2")[1])
    out = Path(report.out)
    keys = samples_of(out)
    assert safe_key(gone) not in {key for _, key in keys}
    assert len(keys) == len([m for m in members if m[1] != gone])
    assert written_keys(out) == set()  # nothing read from the store again
    assert report.shards_kept == len(held) >= 1  # the shards that held it, copied without it
    assert report.shards_inherited == report.shards - len(held)
    assert report.stats.details["taken_down"] == sum(1 for m in members if m[1] == gone)
    with pytest.raises(ExportError, match=r"holds another export .* sample\(s\) of version v1 are taken down"):
        export(store, settings, out=v1, version="v1")  # its folder holds the export from before the takedown


def test_a_crawl_skips_taken_down_pages_and_products(tmp_path):
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=12, per_page=6)
    settings = load(overrides={"crawl.allow_private": True}, environ={})
    with server:
        start = server.url + "/list/1.html"
        first = Store.init(tmp_path / "first")
        crawl(first, settings, start_urls=[start])
        by_sku = {r["source_id"]: r["product_id"] for r in first.read("products").to_pylist()}
        assert set(by_sku) == set(skus)

        store = Store.init(tmp_path / "store")
        before = len(server.requests)
        page = f"{server.url}/p/{skus[1]}.html?ref=list1"
        store.write("takedowns", [{"kind": "url", "value": page, "reason": None, "taken_at": NOW},
                                  {"kind": "product_id", "value": by_sku[skus[2]], "reason": None, "taken_at": NOW}])
        stats = crawl(store, settings, start_urls=[start])
    stored = {r["source_id"] for r in store.read("products").to_pylist()}
    assert stored == set(skus) - {skus[1], skus[2]}
    errors = {r["url"]: r["reason"] for r in store.read("crawl_errors").to_pylist()}
    assert errors[page] == f"taken down: url {page}; not fetched"
    assert f"taken down: product_id {by_sku[skus[2]]}; not stored" in errors.values()
    assert stats.failures["taken down"] == 2
    assert not any(f"/p/{skus[1]}.html" in path for path in server.requests[before:]), "a taken-down page was fetched"

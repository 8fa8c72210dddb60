"""Crawls of the demo shop (both platforms) checked against its ground truth.

The suite uses the fixture's small shop; ``test_full_demo_shop_300`` (marked slow) runs the same
check on a 300-product shop.
"""

import json

import pytest

from m5data.config import load
from m5data.crawler.crawl import run
from m5data.storage import Store

DISALLOWED = ("/cart", "/login", "/shopa/cart", "/shopa/login", "/shopa/search", "/shopb/cart",
              "/shopb/login", "/shopb/search")


def crawl(shop, store_dir, start: str, **overrides):
    shop.clear_requests()
    shop.reset_faults()
    store = Store.init(store_dir)
    stats = run(store, load(overrides={"crawl.allow_private": True, **overrides}, environ={}), start_urls=[shop.url + start])
    return store, stats, list(shop.requests)


def compare_with_truth(store, shop) -> dict:
    """Differences between the crawled store and the shop's truth, per check (empty lists = equal)."""
    truth, base = shop.truth, shop.url
    con = store.connect()
    try:
        products = {r["product_id"]: r for r in con.sql("SELECT * FROM products").to_arrow_table().to_pylist()}
        specs: dict[str, list] = {}
        for pid, prop, value in con.sql("SELECT product_id, property, value FROM specs ORDER BY product_id, position").fetchall():
            specs.setdefault(pid, []).append((prop, value))
        media: dict[str, set] = {}
        for row in con.sql("SELECT product_id, kind, role, position, url FROM media").fetchall():
            media.setdefault(row[0], set()).add(row[1:])
    finally:
        con.close()
    want_specs: dict[str, list] = {}
    for s in sorted(truth.specs, key=lambda s: (s["product_id"], s["position"])):
        want_specs.setdefault(s["product_id"], []).append((s["property"], s["value"]))
    want_media: dict[str, set] = {}
    for m in truth.media:
        want_media.setdefault(m["product_id"], set()).add((m["kind"], m["role"], m["position"], base + m["url"]))
    reachable = {p["product_id"]: p for p in truth.products if p["reachable"]}
    found = set(products) & set(reachable)
    return {
        "missing": sorted(set(reachable) - set(products)),
        "unknown": sorted(set(products) - {p["product_id"] for p in truth.products}),
        "specs": [pid for pid in found if specs.get(pid, []) != want_specs.get(pid, [])],
        "media": [pid for pid in found if media.get(pid, set()) != want_media.get(pid, set())],
        "fields": [pid for pid in found if (
            products[pid]["title"] or "", products[pid]["price"], products[pid]["merchant_id"],
            list(products[pid]["category_path"] or []), products[pid]["url"],
        ) != (reachable[pid]["title"], reachable[pid]["price"], reachable[pid]["merchant_id"],
              list(reachable[pid]["category_path"]), base + reachable[pid]["url"])],
    }


@pytest.fixture(scope="module")
def home_crawl(demo_shop, tmp_path_factory):
    return crawl(demo_shop, tmp_path_factory.mktemp("demo") / "store", "/")


def test_crawl_from_home_matches_truth_for_both_platforms(home_crawl, demo_shop):
    store, stats, _ = home_crawl
    diff = compare_with_truth(store, demo_shop)
    assert diff == {"missing": [], "unknown": [], "specs": [], "media": [], "fields": []}
    truth = demo_shop.truth
    con = store.connect()
    try:
        by_platform = dict(con.sql("SELECT platform, count(*) FROM products GROUP BY 1").fetchall())
        n_specs = con.sql("SELECT count(*) FROM specs").fetchall()[0][0]
    finally:
        con.close()
    assert by_platform == truth.manifest["counts"]["products_by_platform"]
    assert set(by_platform) == {"shopa", "shopb"}
    assert n_specs == truth.manifest["counts"]["spec_rows"]
    assert stats.status == "ok" and stats.n_out == len(truth.products)


def test_page_faults_are_read_or_recorded(home_crawl, demo_shop):
    store, _, _ = home_crawl
    faults = {p["page_fault"]: p for p in demo_shop.truth.products}
    errors = {r["url"]: r["reason"] for r in store.read("crawl_errors").to_pylist()}
    no_title = faults["missing_title"]
    assert errors[demo_shop.url + no_title["url"]] == "missing title"
    stored = {r["product_id"]: r for r in store.read("products").to_pylist()}
    assert stored[no_title["product_id"]]["title"] is None
    for fault in ("wrong_charset", "broken_html"):  # read in full despite the fault
        assert stored[faults[fault]["product_id"]]["title"] == faults[fault]["title"]
        assert demo_shop.url + faults[fault]["url"] not in errors


def test_robots_disallowed_and_offsite_urls_never_fetched(home_crawl, demo_shop):
    store, stats, requests = home_crawl
    paths = [path for _, path, _ in requests]
    assert "/robots.txt" in paths
    assert not [p for p in paths if p.startswith(DISALLOWED)]
    crawl_stats = json.loads((store.local_root() / "logs" / "crawl" / stats.run_id / "stats.json").read_text())
    # every request the crawler sent reached the shop: none went to the pages' ad and shop hosts
    assert crawl_stats["downloader/request_count"] == len(requests)
    assert crawl_stats["m5data/offsite_links"] > 0  # the pages do link other hosts
    assert crawl_stats["robotstxt/forbidden"] > 0  # and robots-disallowed paths


def test_crawl_from_robots_sitemaps_finds_the_same_products(demo_shop, tmp_path):
    # robots.txt names /sitemap.xml, a sitemap index of one urlset per platform
    store, _, requests = crawl(demo_shop, tmp_path / "store", "/robots.txt")
    assert compare_with_truth(store, demo_shop) == {"missing": [], "unknown": [], "specs": [], "media": [], "fields": []}
    paths = [p for _, p, _ in requests]
    assert {"/sitemap.xml", "/shopa/sitemap.xml", "/shopb/sitemap.xml"} <= set(paths)


@pytest.mark.slow
def test_full_demo_shop_300(demo_shop_factory, tmp_path):
    shop = demo_shop_factory(products=300, seed=0)
    store, stats, requests = crawl(shop, tmp_path / "store", "/")
    assert compare_with_truth(store, shop) == {"missing": [], "unknown": [], "specs": [], "media": [], "fields": []}
    assert not [p for _, p, _ in requests if p.startswith(DISALLOWED)]


def test_generic_layer_alone_reads_title_images_price_of_shopb(demo_shop, tmp_path):
    """``--site generic`` on every page: schema.org JSON-LD gives what shopb publishes there."""
    demo_shop.clear_requests()
    demo_shop.reset_faults()
    store = Store.init(tmp_path / "store")
    run(store, load(overrides={"crawl.allow_private": True}, environ={}), start_urls=[demo_shop.url + "/shopb/"], site="generic")
    stored = {r["product_id"]: r for r in store.read("products").to_pylist()}
    con = store.connect()
    try:
        images = {}
        for pid, url in con.sql("SELECT product_id, url FROM media WHERE kind = 'image' ORDER BY product_id, position").fetchall():
            images.setdefault(pid, []).append(url)
    finally:
        con.close()
    truth = [p for p in demo_shop.truth.products if p["platform"] == "shopb"]
    want_images = {}
    for m in sorted(demo_shop.truth.media, key=lambda m: m["position"]):
        if m["kind"] == "image":
            want_images.setdefault(m["product_id"], []).append(demo_shop.url + m["url"])
    assert len(stored) == len(truth) and all(pid.startswith("127.0.0.1:") for pid in stored)
    for p in truth:
        got = stored[f"127.0.0.1:{p['source_id']}"]
        assert got["price"] == p["price"]
        assert images.get(got["product_id"], []) == want_images.get(p["product_id"], [])
        if p["title"]:
            assert got["title"] == p["title"]

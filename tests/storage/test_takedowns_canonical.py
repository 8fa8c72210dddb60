"""Takedowns match URLs and domains canonically (issue 76, finding 9): scheme and host in any case, a
default port, a trailing ``/``, a fragment, percent-encoding and an IDN host in either form cover the
same products, in SQL (the views) as in Python (the crawl's check); a takedown that covers nothing says
what it looked for and exits 1; a copy of the listing with the same image file is taken down with it and
the near-duplicates of its group are named (taken down with ``--with-duplicates``)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import duckdb
import pytest
from support.cli_inprocess import invoke

from m5data.storage import Store
from m5data.storage.takedowns import URL_KEY_SQL, covering, forms, url_key

NOW = datetime(2026, 11, 29, tzinfo=timezone.utc)
URLS = {  # stored forms, each unlike the form a takedown below gives
    "a:1": "https://shop.example.com/p/1.html",
    "a:2": "HTTPS://Shop.Example.com:443/p/%E5%95%86%E5%93%81/",
    "a:3": "http://shop.example.com/p/3.html?id=7#reviews",
    "a:4": "https://xn--bcher-kva.example/p/4.html",
    "a:5": "https://Bücher.example/p/5.html",
    "a:6": "https://www.shop.example.net/p/6.html",
    "a:7": "https://shop.example.net/p/7.html",
}


def store_of(root, media=(), dedup=()) -> Store:
    store = Store.init(root)
    store.write("products", [{"product_id": pid, "platform": "a", "source_id": pid[2:], "url": url,
                              "title": f"product {pid}", "crawled_at": NOW} for pid, url in URLS.items()])
    if media:
        store.write("media", [{"media_id": f"m{pid}", "product_id": pid, "kind": "image", "role": "main", "position": 0,
                               "blob": f"blobs/{sha[:2]}/{sha}.jpg", "sha256": sha, "status": "ok"} for pid, sha in media])
    if dedup:
        store.write("dedup", [{"product_id": pid, "group_id": group, "rule": "phash"} for pid, group in dedup])
    return store


def m5(store, *args):
    res = invoke("--store", str(store.root), *args)
    return res.returncode, " ".join((res.stdout + res.stderr).split())


def taken(store) -> dict[str, str]:
    res = invoke("--store", str(store.root), "sql", "SELECT product_id, value FROM taken_down ORDER BY 1", "--format", "json")
    assert res.returncode == 0, res.stdout + res.stderr
    return {r["product_id"]: r["value"] for r in map(json.loads, res.stdout.splitlines())}


def test_url_key_in_python_is_the_one_in_sql():
    urls = list(URLS.values()) + ["http://h:0080/a//", "http://h:8080/", "https://h/%7e%ff/?", "https://u:p@H./x#y",
                                  "no url", "https:///x", "https://h/a%2Fb?q=%E4%B8%AD&r=+"]
    con = duckdb.connect()
    try:
        for url in urls:
            assert (con.execute("SELECT " + URL_KEY_SQL.format(url="?"), [url]).fetchall()[0][0] or "") == url_key(url), url
    finally:
        con.close()
    assert url_key("HTTPS://Shop.Example.com.:443/p/1.html/#x") == url_key("https://shop.example.com/p/1.html")
    assert url_key("https://h/p/%e5%95%86") == url_key("https://h/p/商") == url_key("https://h/p/%E5%95%86/")


@pytest.mark.parametrize(("kind", "value", "ids"), [
    ("url", "https://SHOP.example.com/p/1.html/#top", {"a:1"}),  # case, trailing /, fragment
    ("url", "https://shop.example.com/p/商品", {"a:2"}),  # stored percent-encoded, upper case, :443, trailing /
    ("url", "HTTP://shop.example.com:80/p/3.html?id=%37", {"a:3"}),  # stored with a fragment
    ("url", "https://bücher.example/p/4.html", {"a:4"}),  # Unicode asked, punycode stored
    ("url", "https://xn--bcher-kva.example/p/5.html", {"a:5"}),  # punycode asked, Unicode stored
    ("domain", "BÜCHER.example.", {"a:4", "a:5"}),
    ("domain", "https://xn--bcher-kva.example/", {"a:4", "a:5"}),
    ("domain", "shop.example.net", {"a:6", "a:7"}),  # a parent domain covers www.
    ("domain", "www.shop.example.net", {"a:6"}),  # www. is a host of its own: never merged
])
def test_takedowns_match_canonically_in_the_views_and_the_crawl(tmp_path, kind, value, ids):
    store = store_of(tmp_path / "store")
    code, text = m5(store, "takedown", f"--{kind.replace('_', '-')}", value)
    assert code == 0 and f"({len(ids)} product(s) in the store)" in text, text
    assert set(taken(store)) == ids
    rows = store.read("takedowns").to_pylist()
    assert {r["value"] for r in rows} == set(forms(kind, value))
    assert {pid for pid, url in URLS.items() if covering(url, rows)} == ids  # the crawl's check agrees


def test_a_takedown_recorded_before_canonical_matching_still_matches(tmp_path):
    store = store_of(tmp_path / "store")
    store.write("takedowns", [{"kind": "url", "value": "https://Shop.example.com/p/1.html/", "reason": None, "taken_at": NOW}])
    assert set(taken(store)) == {"a:1"}


def test_a_takedown_that_covers_nothing_warns_and_exits_1(tmp_path):
    store = store_of(tmp_path / "store")
    code, text = m5(store, "takedown", "--url", "https://shop.example.com/p/nothing.html/")
    assert code == 1 and "covers 0 products" in text and "'https://shop.example.com/p/nothing.html'" in text, text
    assert "Traceback" not in text
    assert [r["value"] for r in store.read("takedowns").to_pylist()] == ["https://shop.example.com/p/nothing.html"]
    code, text = m5(store, "takedown", "--domain", "other.example")
    assert code == 1 and "covers 0 products" in text and "'other.example'" in text, text


def test_a_copy_with_the_same_image_goes_too_and_near_duplicates_are_named(tmp_path):
    media = [("a:1", "aa" * 32), ("a:3", "aa" * 32), ("a:6", "bb" * 32), ("a:7", "cc" * 32)]
    dedup = [("a:1", "a:1"), ("a:3", "a:1"), ("a:6", "a:1"), ("a:7", "a:7")]
    store = store_of(tmp_path / "store", media, dedup)
    code, text = m5(store, "takedown", "--url", "https://shop.example.com/p/1.html")
    assert code == 0 and "also taken down: product_id a:3 (same image as a:1" in text, text
    assert "a:6 (of a:1, group a:1)" in text and "--with-duplicates" in text, text
    assert set(taken(store)) == {"a:1", "a:3"}
    reasons = {r["value"]: r["reason"] for r in store.read("takedowns").to_pylist()}
    assert reasons["a:3"] == "same image as a:1"

    store = store_of(tmp_path / "again", media, dedup)
    code, text = m5(store, "takedown", "--product-id", "a:1", "--with-duplicates")
    assert code == 0, text
    assert set(taken(store)) == {"a:1", "a:3", "a:6"}
    reasons = {r["value"]: r["reason"] for r in store.read("takedowns").to_pylist()}
    assert reasons["a:6"] == "near-duplicate of a:1 (duplicate group a:1)"

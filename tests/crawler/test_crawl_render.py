"""The opt-in render path: a demo-shop product page whose product data only JavaScript writes.

The variant is served by this test's own server (the default demo world is unchanged): the page
is an empty shell whose script decodes the real shopa page and writes it into the document.
Without ``--render`` the crawl records why it found nothing; with it, headless Chromium runs the
script and the item is read in full (title, price, seller, breadcrumb, images, video, specs equal
to the demo shop's truth).
"""

import base64
import os
import urllib.request

import pytest
from support.crawl_server import Page, SiteServer

from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.crawler.render import CHROMIUM
from m5data.storage import Store

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no Chromium at {CHROMIUM}")


def js_only_variant(html: bytes) -> bytes:
    """A shell page whose script writes ``html`` (base64, so no markup or payload is in the raw page)."""
    b64 = base64.b64encode(html).decode()
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>loading</title></head><body>"
            "<div id=\"app\">加载中…</div><script>(function () {"
            f"var raw = atob(\"{b64}\"); var bytes = new Uint8Array(raw.length);"
            "for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }"
            "var page = new TextDecoder(\"utf-8\").decode(bytes);"
            "document.open(); document.write(page); document.close();"
            "})();</script></body></html>").encode()


@pytest.fixture(scope="module")
def variant(demo_shop):
    truth = demo_shop.truth
    product = next(p for p in truth.products if p["platform"] == "shopa" and p["page_fault"] == "none"
                   and p["http_fault"] in (None, "none")
                   and p["reachable"] and any(m["kind"] == "video" for m in truth.media if m["product_id"] == p["product_id"]))
    html = urllib.request.urlopen(demo_shop.url + product["url"], timeout=30).read()
    server = SiteServer({product["url"]: Page(js_only_variant(html)), "/": f'<html><body><a href="{product["url"]}">x</a></body></html>'})
    with server:
        yield server, product, truth


def crawl(tmp_path, server, start: str, render: bool):
    server.requests.clear()
    store = Store.init(tmp_path / ("rendered" if render else "plain"))
    settings = load(overrides={"crawl.allow_private": True, "crawl.render": render, "crawl.render_timeout": 60.0, "crawl.max_depth": 1}, environ={})
    return store, run(store, settings, start_urls=[server.url + start])


def test_without_render_the_page_gives_a_reason_and_the_crawl_fails(variant, tmp_path):
    server, product, _ = variant
    with pytest.raises(CrawlFailed, match="no product found"):
        crawl(tmp_path, server, product["url"], render=False)
    store = Store.open(tmp_path / "plain")
    [(reason,)] = store.connect().sql("SELECT reason FROM crawl_errors").fetchall()
    assert reason.startswith("no product found:") and reason.endswith("crawl with --render")
    assert store.read("products").num_rows == 0


def test_with_render_the_item_is_read_in_full(variant, tmp_path):
    server, product, truth = variant
    # from a listing page at the depth limit: the rendered fetch of a page is not one more hop
    store, stats = crawl(tmp_path, server, "/", render=True)
    [row] = store.read("products").to_pylist()
    assert row["product_id"] == product["product_id"]
    assert (row["title"], row["price"], row["merchant_id"]) == (product["title"], product["price"], product["merchant_id"])
    assert list(row["category_path"]) == list(product["category_path"])
    con = store.connect()
    specs = con.sql("SELECT property, value FROM specs ORDER BY position").fetchall()
    media = set(con.sql("SELECT kind, role, position, url FROM media").fetchall())
    want_specs = [(s["property"], s["value"]) for s in sorted(truth.specs, key=lambda s: s["position"])
                  if s["product_id"] == product["product_id"]]
    want_media = {(m["kind"], m["role"], m["position"], server.url + m["url"]) for m in truth.media
                  if m["product_id"] == product["product_id"]}
    assert specs == want_specs and media == want_media
    assert any(kind == "video" for kind, *_ in media)
    crawl_stats = (store.local_root() / "logs" / "crawl" / stats.run_id / "stats.json").read_text()
    assert '"m5data/render_requests": 1' in crawl_stats
    # fetched plainly, then once in the browser; images and video were blocked there (their URLs are
    # stored, the download stage fetches them)
    assert server.requests.count(product["url"]) == 2
    media_paths = {m["url"] for m in truth.media if m["product_id"] == product["product_id"]}
    assert not media_paths & set(server.requests)


def test_a_partly_read_product_whose_rendering_fails_is_kept_with_the_reason(tmp_path):
    ld = ('{"@context": "https://schema.org", "@type": "Product", "name": "Kettle", "sku": "K1",'
          ' "image": "/img/k1.jpg"}')
    page = (f'<html><head><script type="application/ld+json">{ld}</script></head><body><h1>Kettle</h1>'
            '<span class="price"></span><script>setTimeout(function () {}, 10)</script></body></html>')
    server = SiteServer({"/k1.html": page})
    store = Store.init(tmp_path / "store")
    with server:  # a 1 ms page budget: the rendered fetch times out, the plain fetch's product stays
        run(store, load(overrides={"crawl.allow_private": True, "crawl.render": True, "crawl.render_timeout": 0.001}, environ={}),
            start_urls=[server.url + "/k1.html"])
    [row] = store.read("products").to_pylist()
    assert (row["product_id"], row["title"], row["price"]) == ("127.0.0.1:K1", "Kettle", None)
    [(reason,)] = store.connect().sql("SELECT reason FROM crawl_errors").fetchall()
    assert reason.startswith("render failed:")

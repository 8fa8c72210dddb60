"""Hostile pages: field caps, spec-row caps and control characters (issue 20).

A page can put anything in its title, spec list or SKU: a 5 MB title, 60,000 spec rows, a NUL
byte inside the id. The crawler cuts what is over a ``crawl.max_*`` cap, still stores the product,
and leaves a ``capped: <product id>: ...`` row in ``crawl_errors``; control characters never reach
a stored id or text; an id that is empty once cleaned is a per-page error. The crawl itself runs
for real (Scrapy subprocess, pages served on 127.0.0.1).
"""

import json

import pytest
from support.crawl_server import SiteServer

from m5data.config import ConfigError, load
from m5data.crawler.crawl import run
from m5data.crawler.items import Caps, ProductItem, clean_text

DEFAULTS = Caps.from_settings(load(environ={}).crawl)


def ld_page(*products: dict) -> str:
    """A page with one JSON-LD block per product (libxml2 cuts a text node at 10 MB: one block
    holds the huge title, another the 60,000 spec rows)."""
    blocks = "".join(
        f'<script type="application/ld+json">{json.dumps({"@context": "https://schema.org", "@type": "Product", **p})}</script>'
        for p in products)
    return f'<html><head><meta charset="utf-8">{blocks}</head><body></body></html>'


HUGE_TITLE = "Huge bag " * 550_000  # 5 MB (libxml2 stops reading a page at about 10 MB)
ROWS = 60_000


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from m5data.storage import Store

    props = [{"name": f"Property {i}", "value": f"value {i}"} for i in range(ROWS)]
    props[0] = {"@type": "PropertyValue", "name": "K" * 5000, "value": "V" * 50_000}
    long_image = "/img/" + "x" * 3000 + ".jpg"
    pages = {
        "/huge.html": ld_page({"name": HUGE_TITLE, "sku": "HUGE-1",
                               "image": ["/img/huge.jpg", long_image] + [f"/img/{i}.jpg" for i in range(400)]},
                              {"sku": "HUGE-1", "additionalProperty": props}),
        "/nul.html": ld_page({"name": "Cup\x00 with\x07 lid", "sku": " NUL\x00-7\x1f ", "image": "/img/nul.jpg",
                              "additionalProperty": [{"@type": "PropertyValue", "name": "Col\x00our", "value": "re\x0bd\x00"},
                                                     {"@type": "PropertyValue", "name": "Size", "value": "L"}]}),
        "/empty-id.html": ld_page({"name": "Mug", "sku": "\x00\x01 \x02", "image": "/img/mug.jpg"}),
        "/fine.html": ld_page({"name": "Plain mug", "sku": "FINE-1", "image": "/img/fine.jpg"}),
    }
    server = SiteServer(pages)
    server.add("/", "<html><body>" + "".join(f'<a href="{p}">{p}</a>' for p in pages) + "</body></html>")
    store = Store.init(tmp_path_factory.mktemp("caps") / "store")
    settings = load(overrides={"crawl.max_depth": 1, "crawl.allow_private": True, "crawl.obey_robots": False}, environ={})
    with server:
        stats = run(store, settings, start_urls=[server.url + "/"])
    con = store.connect()
    yield store, stats, con, f"127.0.0.1:{server.port}"
    con.close()


def reasons(con) -> dict[str, str]:
    return {url.rsplit("/", 1)[1]: reason for url, reason in con.sql("SELECT url, reason FROM crawl_errors").fetchall()}


def test_huge_title_and_60000_spec_rows_are_cut_and_the_product_kept(hostile):
    _, stats, con, _ = hostile
    pid = "127.0.0.1:HUGE-1"
    title, = con.sql(f"SELECT title FROM products WHERE product_id = '{pid}'").fetchall()[0]
    assert len(title) == DEFAULTS.title_chars and title.startswith("Huge bag Huge bag")
    rows = con.sql(f"SELECT property, value FROM specs WHERE product_id = '{pid}' ORDER BY position").fetchall()
    assert len(rows) == DEFAULTS.specs  # the first rows, in page order
    assert rows[0] == ("K" * DEFAULTS.property_chars, "V" * DEFAULTS.value_chars)
    assert rows[1] == ("Property 1", "value 1") and rows[-1][0] == f"Property {DEFAULTS.specs - 1}"
    images = [u for u, in con.sql(f"SELECT url FROM media WHERE product_id = '{pid}' ORDER BY position").fetchall()]
    assert len(images) == DEFAULTS.media and images[0].endswith("/img/huge.jpg")
    assert not any("xxxx" in u for u in images)  # over crawl.max_url_chars: dropped, never cut to another URL
    note = reasons(con)["huge.html"]
    assert note.startswith(f"capped: {pid}: title cut from {len(HUGE_TITLE.strip())} to {DEFAULTS.title_chars} characters (crawl.max_title_chars)")
    for what in (f"{ROWS - DEFAULTS.specs} of {ROWS} spec rows dropped (crawl.max_specs)",
                 "1 spec property cut (crawl.max_property_chars)", "1 spec value cut (crawl.max_value_chars)",
                 "1 media URL dropped (crawl.max_url_chars)", "201 image URLs dropped (crawl.max_media)"):
        assert what in note
    assert stats.failures["capped"] == 1 and stats.status == "ok"


def test_control_characters_never_reach_ids_titles_or_specs(hostile):
    _, _, con, host = hostile
    row = con.sql("SELECT product_id, source_id, title FROM products WHERE url LIKE '%/nul.html'").fetchall()[0]
    assert row == (f"{host.split(':')[0]}:NUL-7", "NUL-7", "Cup with lid")
    specs = con.sql(f"SELECT property, value FROM specs WHERE product_id = '{row[0]}' ORDER BY position").fetchall()
    assert specs == [("Colour", "re d"), ("Size", "L")]
    assert "nul.html" not in reasons(con)


def test_an_id_empty_after_cleaning_is_a_page_error(hostile):
    _, stats, con, _ = hostile
    assert reasons(con)["empty-id.html"].startswith("bad id: the page's product id is empty once control characters")
    assert con.sql("SELECT count(*) FROM products WHERE url LIKE '%/empty-id.html'").fetchall()[0][0] == 0
    assert con.sql("SELECT count(*) FROM products WHERE product_id = '127.0.0.1:FINE-1'").fetchall()[0][0] == 1
    assert stats.failures["bad id"] == 1


@pytest.mark.parametrize("raw, clean", [
    ("Cup\x00lid", "Cuplid"), ("a\x07b\x1b[31mc\x7f", "ab[31mc"), ("\x85x\x9fy", "xy"), ("\x00\x01", None),
])
def test_clean_text_drops_control_characters(raw, clean):
    assert clean_text(raw) == clean


def test_long_ids_keep_apart_and_crumbs_are_capped():
    caps = Caps(**{**vars(DEFAULTS), "id_chars": 40, "crumbs": 3})
    a = ProductItem("shop.test", "A" * 100 + "1", "http://shop.test/a", title="A", category_path=list("abcde"))
    b = ProductItem("shop.test", "A" * 100 + "2", "http://shop.test/b", title="B")
    na, nb = a.normalised(caps), b.normalised(caps)
    assert len(na.source_id) == 40 and na.source_id.startswith("A" * 23 + "~") and na.source_id != nb.source_id
    assert na.source_id == a.normalised(caps).source_id  # stable: the hash of the whole id
    assert na.category_path == ["a", "b", "c"]
    assert na.problems == [f"capped: {na.product_id}: source id cut from 101 to 40 characters (crawl.max_id_chars), "
                           "2 of 5 category levels dropped (crawl.max_crumbs)"]
    assert ProductItem("s", "x", "http://s/x", title="t" * 10).normalised(caps).problems == []


def test_caps_are_validated_up_front():
    assert DEFAULTS.specs == 500 and DEFAULTS.title_chars == 1000
    with pytest.raises(ConfigError, match="crawl.max_specs must be > 0"):
        load(overrides={"crawl.max_specs": 0}, environ={})


@pytest.mark.parametrize("cap", [1, 9, 30])
def test_max_pages_is_exact_with_many_requests_in_flight(demo_shop, tmp_path, cap):
    """``crawl.max_pages`` N: at most N requests reach the shop, robots.txt's among them (tdmrep.json is
    not a page), and the summary's pages fetched stay within N, however many requests are in flight
    (issue 75, 15: ``--max-pages 40`` fetched 49 with Scrapy's CLOSESPIDER_PAGECOUNT)."""
    from m5data.storage import Store

    demo_shop.clear_requests()
    store = Store.init(tmp_path / "store")
    settings = load(overrides={"crawl.allow_private": True, "crawl.max_pages": cap, "crawl.concurrency": 16,
                               "crawl.per_domain": 16, "crawl.autothrottle": False}, environ={})
    stats = run(store, settings, start_urls=[demo_shop.url + "/"])
    sent = [path for _, path, _ in demo_shop.requests if not path.endswith("/tdmrep.json")]
    assert len(sent) == cap, sent  # the shop has far more pages: the crawl stops at N, exactly
    assert "/robots.txt" in sent
    assert 0 < stats.n_in <= cap and stats.details["pages"]["fetched"] <= cap
    assert not [r for r in store.read("crawl_errors").to_pylist() if "max_pages" in (r["reason"] or "")]

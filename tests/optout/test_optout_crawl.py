"""Opt-outs a shop states are honoured by the crawl (product pages) and the download (media files):
X-Robots-Tag and W3C TDMRep; each decision is an ``optouts`` row and a count in the run's summary."""

import json

from support.crawl_server import Page, SiteServer, crawl_shop, jsonld_shop, product_pages
from support.media_server import jpeg_bytes, media_rows

from m5data.config import load
from m5data.console import stage_summary
from m5data.crawler.cli import summary as crawl_summary
from m5data.crawler.crawl import run as crawl
from m5data.download.cli import status_table
from m5data.download.run import run as download

# product i of the shop -> how its page opts out (None: it does not)
PAGES = {
    0: ("x-robots-tag", {"extra_headers": (("X-Robots-Tag", "nofollow"), ("X-Robots-Tag", "noai, noindex"))}),
    1: (None, {"extra_headers": (("X-Robots-Tag", "otherbot: noai"),)}),  # another agent's: not ours
    2: ("tdm-header", {"headers": {"tdm-reservation": "1"}}),
    3: ("tdm-meta", {"meta": True}),
    4: ("tdmrep.json", {}),  # its path matches a reserving location of /.well-known/tdmrep.json
    5: (None, {"headers": {"tdm-reservation": "0"}}),  # the file reserves it, the page itself says 0
    6: ("x-robots-tag", {"extra_headers": (("X-Robots-Tag", "m5data: noimageai"),)}),  # our agent's
    7: (None, {}),
}
TDMREP = [{"location": "/p/SKU-0004.html", "tdm-reservation": 1},
          {"location": "/p/SKU-0005*", "tdm-reservation": 1},
          {"location": "/", "tdm-reservation": 0}]


def shown(table) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def shop() -> tuple[SiteServer, list[str]]:
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=len(PAGES), per_page=len(PAGES))
    for path, i, page in product_pages(server, skus):
        how = PAGES[i][1]
        body = page.body
        if how.get("meta"):
            body = body.replace(b"<head>", b'<head><meta name="tdm-reservation" content="1">')
        server.add(path, Page(body, headers=how.get("headers", {}), extra_headers=how.get("extra_headers", ())))
    server.add("/.well-known/tdmrep.json", Page(json.dumps(TDMREP).encode(), "application/json"))
    return server, skus


def test_crawl_stores_no_product_whose_page_opts_out(store):
    server, skus = shop()
    stats, ids = crawl_shop(store, server, skus)
    kept = {ids[r["product_id"]] for r in store.read("products").to_pylist()}
    assert kept == {i for i, (source, _) in PAGES.items() if source is None}
    assert {ids[r["product_id"]] for r in store.read("media").to_pylist()} == kept  # no media of an opted-out page
    assert {ids[r["product_id"]] for r in store.read("specs").to_pylist()} == kept
    rows = {ids[r["product_id"]]: r for r in store.read("optouts").to_pylist()}
    assert {i: r["source"] for i, r in rows.items()} == {i: s for i, (s, _) in PAGES.items() if s is not None}
    assert all(r["scope"] == "page" and r["run_id"] == stats.run_id and r["seen_at"] is not None for r in rows.values())
    assert rows[0]["directive"] == "noai, noindex" and rows[6]["directive"] == "noimageai"
    assert rows[2]["directive"] == "tdm-reservation: 1"
    assert rows[4]["directive"] == "tdm-reservation: 1 (location /p/SKU-0004.html)"
    assert rows[0]["url"].startswith(server.url + "/p/SKU-0000.html")
    assert server.requests.count("/.well-known/tdmrep.json") == 1  # once per host and run
    assert stats.details["optouts"] == {"page": 5}
    assert stats.n_in == len(server.requests) - 1  # pages fetched: the rules file is not a page
    (row,) = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()
    assert json.loads(row["config"])["job"]["optouts"] == {"page": 5}
    assert row["n_failed"] == 0
    assert "opted out" in shown(crawl_summary(stage_summary, stats)) and "5 product pages" in shown(crawl_summary(stage_summary, stats))


def test_crawl_optout_settings(store):
    server, skus = shop()
    with server:
        crawl(store, load(overrides={"crawl.allow_private": True, "crawl.optout_directives": "",
                                     "crawl.tdmrep": False}, environ={}),
              start_urls=[server.url + "/list/1.html"])
    assert len(store.read("products")) == len(PAGES) and len(store.read("optouts")) == 0
    assert "/.well-known/tdmrep.json" not in server.requests


IMAGES = {  # image -> (the source of its opt-out or None, its response headers)
    "a.jpg": (None, {}),
    "b.jpg": ("x-robots-tag", {"X-Robots-Tag": "noimageai"}),
    "c.jpg": ("tdm-header", {"tdm-reservation": "1"}),
    "reserved/d.jpg": ("tdmrep.json", {}),
    "e.jpg": (None, {"X-Robots-Tag": "otherbot: noai"}),
}


def test_download_skips_a_media_file_that_opts_out(store):
    jpeg = jpeg_bytes(32, 24)
    server = SiteServer({f"/img/{name}": Page(jpeg, "image/jpeg", headers=headers) for name, (_, headers) in IMAGES.items()})
    server.add("/.well-known/tdmrep.json", Page(b'[{"location": "/img/reserved/", "tdm-reservation": 1}]'))
    with server:
        store.write("media", media_rows([f"{server.url}/img/{name}" for name in IMAGES]))
        stats = download(store, load(overrides={"download.allow_private": True, "download.retries": 0}, environ={}))
    status = {r["url"].split("/img/")[1]: r["status"] for r in store.read("media").to_pylist()}
    assert status == {name: "opted_out" if source else "ok" for name, (source, _) in IMAGES.items()}
    rows = {r["url"].split("/img/")[1]: r for r in store.read("optouts").to_pylist()}
    assert {name: r["source"] for name, r in rows.items()} == {n: s for n, (s, _) in IMAGES.items() if s}
    assert all(r["scope"] == "media" and r["product_id"] == "test:1" for r in rows.values())
    assert server.requests.count("/.well-known/tdmrep.json") == 1
    # an opt-out is recorded as such: not a failure, never retried
    assert stats.n_failed == 0 and stats.n_out == 2 and stats.details["optouts"] == {"media": 3}
    assert stats.statuses["opted_out"] == 3
    (row,) = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()
    assert json.loads(row["config"])["job"]["optouts"] == {"media": 3}
    assert "opted_out" in shown(status_table(stats))


def test_a_flow_retry_does_not_count_opted_out_files_as_failed(store):
    from m5data.download.stage import store_failure_rate

    rows = media_rows([f"http://x.test/{i}.jpg" for i in range(5)])
    for row, status in zip(rows, ["ok", "opted_out", "opted_out", "opted_out", "failed"]):
        row["status"] = status
    store.write("media", rows)
    assert store_failure_rate(store) == 0.5  # 1 failed of 2 tried


def test_robots_txt_refusals_are_optout_rows(store):
    """A product page robots.txt disallows is never fetched: an ``optouts`` row (scope page, source
    robots.txt, no product id: the page was not read) counted in the crawl's summary; a disallowed
    link that is no product page (the shop's cart) is not an opt-out."""
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=6, per_page=6)
    server.add("/robots.txt", Page(b"User-agent: *\nDisallow: /cart\nDisallow: /p/SKU-0001\nDisallow: /p/SKU-0004\n",
                                   "text/plain"))
    stats, ids = crawl_shop(store, server, skus)
    assert {ids[r["product_id"]] for r in store.read("products").to_pylist()} == {0, 2, 3, 5}
    assert not any(p.startswith(("/p/SKU-0001", "/p/SKU-0004", "/cart")) for p in server.requests)
    rows = sorted(store.read("optouts").to_pylist(), key=lambda r: r["url"])
    assert [r["url"] for r in rows] == [server.url + "/p/SKU-0001.html?ref=list1", server.url + "/p/SKU-0004.html?ref=list1"]
    assert all((r["product_id"], r["scope"], r["source"], r["directive"], r["run_id"]) ==
               (None, "page", "robots.txt", "Disallow", stats.run_id) and r["seen_at"] for r in rows)
    assert stats.details["optouts"] == {"page": 2, "robots.txt": 2}
    (row,) = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()
    assert json.loads(row["config"])["job"]["optouts"] == {"page": 2, "robots.txt": 2} and row["n_failed"] == 0
    assert "2 product pages: not stored (2 disallowed by robots.txt" in shown(crawl_summary(stage_summary, stats))

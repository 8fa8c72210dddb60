"""Crawl safety: scope is host + port, and the private-address policy applies to every request,
redirect hops included (SafetyMiddleware)."""

import asyncio
from urllib.parse import quote

import pytest
from scrapy import Request
from scrapy.utils.test import get_crawler
from support.crawl_server import SiteServer
from support.media_server import MediaServer

from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.crawler.safety import RefusedRequest, SafetyMiddleware, crawl_scope, in_scope
from m5data.crawler.spider import ProductSpider


def reasons(store) -> dict[str, str]:
    return {r["url"]: r["reason"] for r in store.read("crawl_errors").to_pylist()}


def test_scope_is_host_and_port():
    scope = crawl_scope(["http://shop.test:8000/list", "https://other.test/"])
    assert in_scope("http://shop.test:8000/p/1", scope) and in_scope("http://img.shop.test:8000/a", scope)
    assert not in_scope("http://shop.test:8001/p/1", scope)  # same host, another port: off-site
    assert not in_scope("http://shop.test/p/1", scope)
    assert in_scope("http://other.test/x", scope) and in_scope("https://other.test:443/x", scope)  # 80/443 are one
    assert not in_scope("https://other.test:8443/x", scope) and not in_scope("ftp://other.test/x", scope)


def refuse(url, *, allow_private=False, start="http://10.0.0.1/", redirect_from=None):
    """Run the middleware on one request (a redirect hop when ``redirect_from``); the refusal or None."""
    crawler = get_crawler(ProductSpider, {"M5DATA_ALLOW_PRIVATE": allow_private})
    spider = ProductSpider(start_urls=[start])
    meta = {"redirect_urls": [redirect_from]} if redirect_from else {}
    try:
        asyncio.run(SafetyMiddleware.from_crawler(crawler).process_request(Request(url, meta=meta), spider))
    except RefusedRequest as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("target", ["http://10.0.0.1/latest/meta-data/", "http://169.254.169.254/latest/",
                                    "http://[::ffff:127.0.0.1]/", "http://127.0.0.1/admin"])
def test_redirect_hops_to_private_addresses_are_refused(target):
    start = target.split("/latest")[0].split("/admin")[0].rstrip("/") + "/"
    why = refuse(target, start=start, redirect_from=start)  # in scope: only the address rule can refuse it
    assert why is not None and "not public" in why and "crawl.allow_private" in why
    assert refuse(target, start=start, redirect_from=start, allow_private=True) is None


def test_redirect_hop_off_the_scope_is_refused_even_with_allow_private():
    why = refuse("http://169.254.169.254/latest/", start="http://127.0.0.1:8000/", allow_private=True,
                 redirect_from="http://127.0.0.1:8000/")
    assert why is not None and why.startswith("off-site redirect from http://127.0.0.1:8000/")
    assert refuse("http://127.0.0.1:8001/", start="http://127.0.0.1:8000/", allow_private=True,
                  redirect_from="http://127.0.0.1:8000/").startswith("off-site redirect")
    assert refuse("file:///etc/passwd", allow_private=True).startswith("only http(s)")


def test_loopback_start_urls_are_refused_by_default(store):
    with SiteServer({"/list.html": "<html><body>hello</body></html>"}) as server:
        starts = [server.url + "/list.html", f"http://localhost:{server.port}/list.html"]
        with pytest.raises(CrawlFailed, match="no page could be fetched"):
            run(store, load(environ={}), start_urls=starts)
        assert server.requests == []  # refused before connecting, robots.txt included
    got = reasons(store)
    assert got[starts[0]].startswith("refused: address 127.0.0.1, which is not public")
    assert got[starts[1]].startswith("refused: host localhost resolves to 127.0.0.1")


def test_redirects_and_links_to_another_port_are_not_followed(store):
    other = SiteServer({"/secret.html": "<html><body>internal</body></html>"})
    page = (f'<html><body><a href="http://127.0.0.1:{other.port}/secret.html">same host, other port</a>'
            f'<a href="/redirect-to?to={quote(f"http://127.0.0.1:{other.port}/secret.html")}">hop</a>'
            f'<a href="/redirect-to?to={quote("http://169.254.169.254/latest/meta-data/")}">metadata</a></body></html>')
    with other, MediaServer({"list.html": page.encode()}) as shop:
        start = shop.url("/redirect-to?to=" + quote(shop.url("/f/list.html")))  # an in-scope redirect is fine
        # a start URL whose redirect leaves for another port (Scrapy exempts start requests from its off-site check)
        hop = shop.url("/redirect-to?to=" + quote(f"http://127.0.0.1:{other.port}/from-start.html"))
        settings = load(overrides={"crawl.allow_private": True, "crawl.obey_robots": False}, environ={})
        stats = run(store, settings, start_urls=[start, hop])
        assert other.requests == []
    assert stats.n_in >= 1
    got = reasons(store)
    assert got[f"http://127.0.0.1:{other.port}/secret.html"].startswith("refused: off-site redirect")
    assert got[f"http://127.0.0.1:{other.port}/from-start.html"].startswith(f"refused: off-site redirect from {hop}")
    # a link's redirect to another host is refused with a row too (Scrapy's own off-site filter,
    # which would drop it silently when it is scheduled, is off)
    assert got["http://169.254.169.254/latest/meta-data/"].startswith("refused: off-site redirect from ")

"""Pages the crawl followed and did not store always leave a reason (issue 35, defects 2 and 8).

A real crawl (Scrapy subprocess, pages on 127.0.0.1) of a listing whose product links answer
with: a product, a 403, a redirect to a login page (in scope, off-site, and into a path robots.txt
disallows), a captcha page, a page without product data, a product whose JSON-LD nests 900 levels
deep, and 0.9 MB of gzip that inflates to 900 MB. Each product link that gave no product leaves one
``crawl_errors`` row whose reason is one of a small fixed vocabulary, the run's failures count them
by reason, and the crawl subprocess stays far below 1 GiB of memory (``crawl.max_page_bytes``).
"""

import json
import subprocess
import sys
import zlib

import pytest
from support.crawl_server import Page, SiteServer

from m5data.storage import Store

MIB = 2**20
BOMB_MIB = 900  # inflated size of the gzip page


def gzip_bomb(mib: int) -> bytes:
    """An HTML page as gzip: ``mib`` members of 1 MiB of spaces (about 1 KB each), after a head.

    A gzip stream may hold several members, read as one body (RFC 1952), so 900 copies of one small
    member inflate to 900 MiB without compressing 900 MiB here."""
    def member(data: bytes) -> bytes:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        return z.compress(data) + z.flush()

    return member(b"<html><head><title>Bomb</title></head><body>") + member(b" " * MIB) * mib


def deep_jsonld(depth: int) -> str:
    """A product page whose JSON-LD Product holds a value nested ``depth`` levels deep."""
    nested = '{"@type": "Thing", "a": ' * depth + '"x"' + "}" * depth
    return ('<html><head><script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product", '
            f'"name": "Deep lamp", "sku": "DEEP-1", "image": "/img/deep.jpg", "isRelatedTo": {nested}}}</script>'
            "</head><body><h1>Deep lamp</h1></body></html>")


def product(sku: str, name: str) -> str:
    ld = {"@context": "https://schema.org", "@type": "Product", "sku": sku, "name": name, "image": f"/img/{sku}.jpg",
          "offers": {"@type": "Offer", "price": "9.50", "priceCurrency": "EUR"}}
    return f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script></head><body></body></html>'


CAPTCHA = ("<html><head><title>Robot Check</title></head><body><p>Enter the characters you see below</p>"
           '<form action="/errors/validateCaptcha"><img src="/captcha/abc.jpg"><input name="field-keywords">'
           '</form><a href="/">home</a></body></html>')
LOGIN = ('<html><head><title>Sign in</title></head><body><form action="/account/login" method="post">'
         '<input name="user"><input type="password" name="pw"></form><a href="/help.html">help</a></body></html>')
GONE = ('<html><head><title>Item unavailable</title></head><body><p>This item is no longer available.</p>'
        '<a href="/">home</a></body></html>')

CHILD = r"""
import json, resource, sys
from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.storage import Store
store = Store.init(sys.argv[1])
settings = load(overrides={"crawl.max_depth": 2, "crawl.allow_private": True}, environ={})
try:
    stats = run(store, settings, start_urls=[sys.argv[2] + "/"])
except CrawlFailed as exc:
    stats = exc.stats
print(json.dumps({"status": stats.status, "failures": dict(stats.failures), "n_out": stats.n_out,
                  "child_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


@pytest.fixture(scope="module")
def walled(tmp_path_factory):
    server = SiteServer({})
    links = {
        "/p/1.html": product("OK-1", "Plain mug"),
        "/p/2.html": Page(b"<html><body>Forbidden</body></html>", status=403),
        "/p/3.html": Page(b"", status=302, headers={"Location": "/account/login?next=/p/3.html"}),
        "/p/4.html": CAPTCHA,
        "/p/5.html": GONE,
        "/p/6.html": deep_jsonld(900),
        "/p/7.html": Page(gzip_bomb(BOMB_MIB), headers={"Content-Encoding": "gzip"}),
        "/p/8.html": Page(b"", status=302, headers={"Location": "http://localhost:1/member/login.jhtml?f=top"}),
        "/p/9.html": Page(b"", status=301, headers={"Location": "/member/login.jhtml?redirect=/p/9.html"}),
        "/p/10.html": Page(b"<html><body>" + b" " * (20 * MIB) + b"</body></html>"),  # over the cap, not compressed
    }
    for path, page in links.items():
        server.add(path, page)
    server.add("/account/login?next=/p/3.html", LOGIN)
    server.add("/about.html", "<html><head><title>About us</title></head><body><p>A shop.</p></body></html>")
    server.add("/robots.txt", Page(b"User-agent: *\nDisallow: /member/\n", "text/plain"))
    server.add("/", "<html><body>" + "".join(f'<a href="{p}">{p}</a>' for p in [*links, "/about.html"]) + "</body></html>")
    root = tmp_path_factory.mktemp("walled")
    with server:
        out = subprocess.run([sys.executable, "-c", CHILD, str(root / "store"), server.url], capture_output=True,
                             text=True, check=True, cwd=root)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    store = Store.open(root / "store")
    rows = {r["url"].removeprefix(server.url): r for r in store.read("crawl_errors").to_pylist()}
    yield result, rows, server


def test_every_product_link_not_stored_leaves_a_row_with_its_reason(walled):
    result, rows, _ = walled
    reasons = {url: row["reason"] for url, row in rows.items()}
    assert result["n_out"] == 1  # /p/1.html
    assert reasons["/p/2.html"] == "http 403"
    assert reasons["/p/3.html"].startswith("login redirect: to ") and "/account/login?next=/p/3.html" in reasons["/p/3.html"]
    assert reasons["/p/8.html"].startswith("login redirect: to http://localhost:1/member/login.jhtml")  # off-site
    assert reasons["/p/9.html"].startswith("login redirect: to ")  # into a path robots.txt disallows
    assert reasons["/p/4.html"].startswith("captcha page: ")
    assert reasons["/p/5.html"] == "not a product page: no schema.org Product or og:type product"
    assert "/about.html" not in reasons and "/" not in reasons  # not product links: no row for a page without product
    assert not any("/account/login" in url or "/member/" in url for url in reasons)  # one row per product link
    for path in ("/p/3.html", "/p/4.html", "/p/8.html", "/p/9.html"):
        assert rows[path]["platform"] == "127.0.0.1"


def test_json_ld_nested_900_deep_leaves_a_row(walled):
    _, rows, _ = walled
    reason = rows["/p/6.html"]["reason"]
    assert reason.startswith("not a product page: ") and "invalid JSON-LD: block 1: nested deeper than 100 levels" in reason


def test_gzip_page_inflating_over_the_cap_is_refused_with_url_and_size(walled):
    result, rows, server = walled
    reason = rows["/p/7.html"]["reason"]
    sent = len(server.routes["/p/7.html"].body)
    assert sent < MIB and reason.startswith(f"page too large: {sent:,} bytes compressed, over 20,9"), reason
    assert f"crawl.max_page_bytes is {20 * MIB:,} bytes" in reason  # the cap it went over
    assert rows["/p/10.html"]["reason"] == f"page too large: {20 * MIB + 26:,} bytes (Content-Length); " \
                                           f"crawl.max_page_bytes is {20 * MIB:,} bytes"
    assert result["child_peak_rss"] < 1024 * MIB, result  # the crawl's peak RSS (all 16 pages may be in flight)


def test_summary_counts_dropped_pages_by_reason(walled):
    result, _, _ = walled
    failures = result["failures"]
    assert failures["login redirect"] == 3
    assert failures["captcha page"] == 1 and failures["not a product page"] == 2  # /p/5.html, /p/6.html
    assert failures["page too large"] == 2 and failures["http 403"] == 1
    assert result["status"] == "ok"


def test_cli_summary_counts_walled_pages_and_warns(store):
    from typer.testing import CliRunner

    from m5data.cli import app

    server = SiteServer({"/p/1.html": product("OK-1", "Plain mug"), "/p/2.html": CAPTCHA,
                         "/p/3.html": Page(b"", status=302, headers={"Location": "/signin?to=/p/3.html"}),
                         "/signin?to=/p/3.html": LOGIN})
    server.add("/", "<html><body>" + "".join(f'<a href="/p/{i}.html">{i}</a>' for i in (1, 2, 3)) + "</body></html>")
    with server:
        result = CliRunner().invoke(app, ["--store", str(store.root), "--set", "crawl.allow_private=true", "crawl",
                                          "--start-url", server.url + "/"])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert "failed: login redirect 1" in lines and "failed: captcha page 1" in lines
    assert "warning: 2 pages walled off (login redirect 1, captcha page 1): the shop may be blocking the crawler; " \
           "see crawl_errors" in " ".join(lines)


def test_a_body_without_content_length_over_the_cap_is_refused(store):
    """A body sent until the connection closes (no Content-Length) is cut off at crawl.max_page_bytes."""
    import socket
    import threading

    from m5data.config import load
    from m5data.crawler.crawl import CrawlFailed, run

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():  # every path (robots.txt too): 3 MiB of page, then the connection closes
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was closed: the test is over
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>" + b" " * (3 * MIB))
                except OSError:  # the crawler hung up at the cap
                    pass

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{port}/p/1.html"
    with listener, pytest.raises(CrawlFailed, match="no page could be fetched"):
        run(store, load(overrides={"crawl.allow_private": True, "crawl.max_page_bytes": MIB}, environ={}), start_urls=[url])
    [row] = store.read("crawl_errors").to_pylist()
    assert row["url"] == url and row["reason"].startswith("page too large: over 1,"), row["reason"]
    assert row["reason"].endswith(f"bytes received (no Content-Length); crawl.max_page_bytes is {MIB:,} bytes")

"""A real crawl (Scrapy subprocess, HTTP on 127.0.0.1) of payload responses, CJK pages and empty start URLs.

JSON and JavaScript responses (an mtop JSON answer, a JSONP script, a ``.js`` file served as
``application/octet-stream``) become products like pages do; GBK / Big5 pages whose only charset
declaration sits deep in ``<head>`` are decoded right; a start URL that yields nothing leaves a
``no product found`` row, and a crawl whose start URLs all yield nothing fails.
"""

from pathlib import Path

import pytest
from support.crawl_server import Page, SiteServer

from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.storage import Store

PAGES = Path(__file__).parents[1] / "pages"


def gbk_late_meta(name: str, charset: str = "gbk") -> bytes:
    """A saved page re-encoded to ``charset`` with 160 KB of script before its <meta charset>."""
    text = (PAGES / name).read_text(encoding="utf-8")
    padding = "<script>var cfg = {" + ",".join(f"k{i}: {i}" for i in range(16_000)) + "};</script>\n"
    return text.replace("<head>", "<head>\n" + padding, 1).encode(charset)


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    server = SiteServer({})
    raw = (PAGES / "taobao/mtop_detail.json").read_bytes()
    routes = {
        "/h5/mtop.taobao.detail.getdetail/6.0/": Page(raw, "application/json;charset=UTF-8"),
        "/h5/jsonp.js": Page(b"mtopjsonp2(" + raw.replace(b"678901234567", b"678901234999").replace(
            "收纳柜".encode(), "收纳柜 二代".encode()) + b")", "application/javascript"),  # another product, not a duplicate
        "/static/100012043978.js": Page((PAGES / "jd/pageconfig.js").read_bytes(), "application/octet-stream"),
        "/saved/tmall.html": Page(gbk_late_meta("tmall/item_pc.html"), "text/html"),
        "/saved/jd.html": Page((PAGES / "jd/item.html").read_text(encoding="utf-8").encode("gbk"), "text/html"),
        "/saved/big5.html": Page(gbk_late_meta("generic/og_title_prefix.html", "big5").replace(
            b"Wireless Mouse 2.4G Silent Click", "無線滑鼠 靜音 華碩".encode("big5")), "text/html"),
    }
    for path, page in routes.items():
        server.add(path, page)
    server.add("/", "<html><body>" + "".join(f'<a href="{p}">{i}</a>' for i, p in enumerate(routes)) + "</body></html>")
    server.add("/empty.html", "<html><head><title>Nothing</title></head><body><p>Closed for the holidays.</p></body></html>")
    store = Store.init(tmp_path_factory.mktemp("payloads") / "store")
    with server:
        stats = run(store, load(overrides={"crawl.max_depth": 1, "crawl.allow_private": True}, environ={}),
                    start_urls=[server.url + "/", server.url + "/empty.html"])
    con = store.connect()
    yield store, stats, con
    con.close()


def rows(con, sql: str) -> list:
    return con.sql(sql).fetchall()


def test_json_jsonp_and_js_file_responses_become_products(crawled):
    _, stats, con = crawled
    got = dict(rows(con, "SELECT product_id, title FROM products"))
    assert got["taobao:678901234567"] == "北欧实木床头柜 简约现代卧室收纳柜"
    assert got["taobao:678901234999"] == "北欧实木床头柜 简约现代卧室收纳柜 二代"
    assert got["jd:100012043978"] == "小米 Redmi K70 16GB+512GB 墨羽"
    assert rows(con, "SELECT count(*) FROM specs WHERE product_id = 'taobao:678901234567'") == [(6,)]
    assert rows(con, "SELECT url FROM media WHERE product_id = 'taobao:678901234567' AND kind = 'video'") == [
        ("https://cloud.video.taobao.com/play/u/3300112233/p/1/e/6/t/1/290000111222.mp4",)]
    assert stats.status == "ok"


def test_cjk_pages_with_a_late_or_http_equiv_charset_are_read(crawled):
    _, _, con = crawled
    tmall = rows(con, "SELECT title, price, category_path FROM products WHERE product_id = 'tmall:640123456789'")
    assert tmall == [("Philips/飞利浦 HD9651 空气炸锅 家用大容量", 999.0, ["厨房电器", "空气炸锅"])]
    assert ("容量", "6.2L") in rows(con, "SELECT property, value FROM specs WHERE product_id = 'tmall:640123456789'")
    jd = rows(con, "SELECT title, price FROM products WHERE product_id = 'jd:100066896338'")
    assert jd == [("华为 HUAWEI Mate 60 12GB+512GB 雅川青", 6499.0)]
    big5 = rows(con, "SELECT title FROM products WHERE platform = '127.0.0.1'")
    assert big5 == [("無線滑鼠 靜音 華碩",)]


def test_a_start_url_without_product_or_link_is_recorded(crawled):
    _, stats, con = crawled
    reasons = dict(rows(con, "SELECT url, reason FROM crawl_errors"))
    empty = [r for u, r in reasons.items() if u.endswith("/empty.html")]
    assert len(empty) == 1 and empty[0].startswith("no product found: no schema.org Product or og:type product")
    assert stats.failures["no product found"] == 1 and stats.status == "ok"  # the other start URL gave products


def test_a_crawl_whose_start_urls_all_yield_nothing_fails(tmp_path):
    server = SiteServer({
        "/a.html": "<html><body><p>Nothing to see.</p><a href='http://elsewhere.test/'>off-site</a></body></html>",
        "/shell.html": "<html><head><script src='/app.js'></script></head><body><div id='app'></div></body></html>",
        "/robots.txt": Page(b"User-agent: *\nDisallow: /private/\n", "text/plain"),
    })
    with server:
        store = Store.init(tmp_path / "store")
        urls = [server.url + "/a.html", server.url + "/shell.html", server.url + "/gone.html"]
        with pytest.raises(CrawlFailed, match="no product found: none of the 3 start URL"):
            run(store, load(overrides={"crawl.allow_private": True}, environ={}), start_urls=urls)
        robots = Store.init(tmp_path / "robots")
        with pytest.raises(CrawlFailed, match="no product found: none of the 1 start URL"):
            run(robots, load(overrides={"crawl.allow_private": True}, environ={}), start_urls=[server.url + "/private/x.html"])
    reasons = {url.rsplit("/", 1)[1]: reason for url, reason in
               store.connect().sql("SELECT url, reason FROM crawl_errors").fetchall()}
    assert reasons["a.html"].startswith("no product found:")
    assert reasons["shell.html"].endswith("crawl with --render")  # a script shell: says what would help
    assert reasons["gone.html"] == "http 404"
    assert store.read("runs").to_pylist()[-1]["status"] == "failed"
    [(reason,)] = robots.connect().sql("SELECT reason FROM crawl_errors").fetchall()
    assert reason.startswith("no product found: the start URL was not fetched")  # robots.txt disallows it
    assert "/private/x.html" not in server.requests

"""A real crawl (Scrapy subprocess, HTTP on 127.0.0.1) of the saved real pages and of malformed pages.

One crawl serves the whole module: an index page links the Amazon page, the schema.org JSON-LD
pages, the AliExpress items (three as item pages carrying the payload in their
``window.runParams`` script, two as the JSON the item data endpoint returns), pages with a wrong
declared charset, broken pages, a 404, a robots.txt-disallowed page and an off-site link.
"""

import json
from pathlib import Path

import duckdb
import pytest
from support.crawl_server import Page, SiteServer

from m5data.config import load
from m5data.crawler.adapters.aliexpress import VIDEO_URL
from m5data.crawler.crawl import run
from m5data.storage import Store

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "pages"
ALI_AS_JSON = {"1005005709028962", "1005005714394639"}
ZH = "美的(Midea) 1.5匹 变频冷暖 空调挂机 新一级能效"


def _product_ld(name: str, sku: str, extra: dict | None = None) -> str:
    ld = {"@context": "https://schema.org", "@type": "Product", "name": name, "sku": sku,
          "image": [f"/img/{sku}.jpg"], "offers": {"@type": "Offer", "price": "2999.00", "priceCurrency": "CNY"},
          **(extra or {})}
    return f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'


def build_site(server: SiteServer) -> None:
    links = []

    def add(path, page):
        server.add(path, page)
        links.append(path)

    add("/amazon/dp/B00FLYWNYQ", (REALDATA / "amazon/amazon_instant_pot_duo.html").read_bytes())
    for f in sorted((REALDATA / "jsonld").glob("*.html")):
        add(f"/jsonld/{f.name}", f.read_bytes())
    for f in sorted((REALDATA / "aliexpress").glob("item-*.json")):
        item_id, raw = f.stem.split("-", 1)[1], f.read_text(encoding="utf-8")
        if item_id in ALI_AS_JSON:
            add(f"/aliexpress/api/item/{item_id}.json", Page(raw.encode(), "application/json; charset=utf-8"))
        else:
            add(f"/aliexpress/item/{item_id}.html",
                '<!DOCTYPE html><html><head><meta charset="utf-8"><title>AliExpress</title></head><body>'
                f'<div id="root"></div><script>\nwindow.runParams = {raw};\n</script></body></html>')
    # declared charset wrong: GBK bytes sent as utf-8, UTF-8 bytes sent as iso-8859-1
    gbk_page = (f'<html><head><meta charset="utf-8">{_product_ld(ZH, "ZH-GBK", {"additionalProperty": [{"@type": "PropertyValue", "name": "能效等级：", "value": "一级"}]})}'
                f"</head><body><h1>{ZH}</h1></body></html>")
    add("/shop/gbk.html", Page(gbk_page.encode("gbk"), "text/html; charset=utf-8"))
    add("/shop/latin.html", Page(f"<html><head>{_product_ld(ZH, 'ZH-UTF8')}</head><body>{ZH}</body></html>".encode("utf-8"),
                                 "text/html; charset=iso-8859-1"))
    # malformed: no title, truncated markup; a product page with nothing in it; binary junk; a 404
    add("/shop/broken.html", '<html><body><div itemscope itemtype="http://schema.org/Product"><img itemprop="image" src="/img/broken.jpg">'
                             '<span itemprop="sku">BROKEN-1</span><div itemprop="offers" itemscope itemtype="http://schema.org/Offer">'
                             '<span itemprop="price">12,50</span><table><tr><td>unclosed')
    add("/shop/nothing.html", '<html><head><meta property="og:type" content="product"></head><body></body></html>')
    add("/shop/junk.html", Page(bytes(range(256)) * 8, "text/html"))
    links.append("/shop/gone.html")
    server.add("/robots.txt", Page(b"User-agent: *\nDisallow: /private/\n", "text/plain"))
    add("/private/secret.html", _product_ld("secret", "SECRET"))
    links.append(f"http://localhost:{server.port}/offsite.html")
    server.add("/offsite.html", _product_ld("offsite", "OFFSITE"))
    server.add("/", "<html><body>" + "".join(f'<a href="{link}">{i}</a>' for i, link in enumerate(links)) + "</body></html>")


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} not present")
    server = SiteServer({})
    build_site(server)
    store = Store.init(tmp_path_factory.mktemp("crawl") / "store")
    settings = load(overrides={"crawl.max_depth": 1, "crawl.allow_private": True}, environ={})
    with server:
        stats = run(store, settings, start_urls=[server.url + "/"])
    con = store.connect()
    yield store, stats, server, con
    con.close()


def product(con, product_id: str) -> dict:
    rows = con.sql(f"SELECT * FROM products WHERE product_id = '{product_id}'").to_arrow_table().to_pylist()
    assert len(rows) == 1, f"{product_id}: {len(rows)} rows"
    return rows[0]


def specs(con, product_id: str) -> list[tuple[str, str]]:
    return con.sql(f"SELECT property, value FROM specs WHERE product_id = '{product_id}' ORDER BY position").fetchall()


def media(con, product_id: str, kind: str) -> list[str]:
    return [r[0] for r in con.sql(f"SELECT url FROM media WHERE product_id = '{product_id}' AND kind = '{kind}' ORDER BY position").fetchall()]


def errors(con) -> dict[str, tuple[str, int | None]]:
    return {url.split("/", 3)[3]: (reason, status) for url, reason, status in
            con.sql("SELECT url, reason, http_status FROM crawl_errors").fetchall()}


def test_amazon_page_gives_what_a_reader_lists(crawled):
    _, _, _, con = crawled
    p = product(con, "amazon:B00FLYWNYQ")
    assert p["title"].startswith("Instant Pot Duo 7-in-1 Electric Pressure Cooker, Slow Cooker, Rice Cooker, Steamer, Sauté")
    assert p["title"].endswith("Stainless Steel, 6 Quart")
    assert (p["price"], p["currency"], p["merchant_id"]) == (99.95, "USD", "ATVPDKIKX0DER")
    assert p["category_path"] == ["Home & Kitchen", "Kitchen & Dining", "Small Appliances", "Rice Cookers"]
    images = media(con, "amazon:B00FLYWNYQ", "image")
    assert images[0] == "https://m.media-amazon.com/images/I/710KoJMG2lL._AC_SL1500_.jpg"
    assert len(images) == 6 and all(u.endswith("_AC_SL1500_.jpg") for u in images)
    videos = media(con, "amazon:B00FLYWNYQ", "video")
    assert len(videos) == 10 and all(u.endswith(".mp4") for u in videos)
    assert not any("al-na-9d5791cf" in u for u in videos)  # sponsored videos of other products
    pairs = specs(con, "amazon:B00FLYWNYQ")
    assert pairs[:3] == [("Brand", "Instant Pot"), ("Capacity", "5.68 Liters"), ("Material", "Stainless steel")]
    assert ("UPC", "810028585201") in pairs and ("Wattage", "1000 watts") in pairs
    assert ("Product Dimensions", '12.2"D x 13.38"W x 12.48"H') in pairs
    assert len(pairs) == 22 and "Customer Reviews" not in dict(pairs)


def test_jsonld_pages_and_duplicate_pages_stored_once(crawled):
    store, _, _, con = crawled
    p = product(con, "127.0.0.1:605.612.48")
    assert (p["price"], p["currency"], p["merchant_id"]) == (249.99, "USD", "IKEA")
    assert len(media(con, p["product_id"], "image")) == 4
    assert p["category_path"][-1] == "Dressers & chests of drawers"
    # jsonld.html and jsonld_offers_array.html are one product: one row in the Parquet parts too
    raw = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.table_dir('products')}/*.parquet') "
                     "WHERE product_id = '127.0.0.1:605.612.48'").fetchall()[0][0]
    assert raw == 1
    err = errors(con)
    assert err["jsonld/thereyouwish_empty_jsonld.html"][0].startswith("invalid JSON-LD: block 2")
    assert err["jsonld/thereyouwish_defective_jsonld.html"][0] == "partial: schema.org Product has no name"
    partial = con.sql("SELECT title, price FROM products WHERE product_id LIKE '127.0.0.1:u%'").fetchall()
    assert len(partial) == 1  # both broken pages share their canonical URL, hence one product id
    assert partial[0][0].startswith("STORKLINTA 6-drawer dresser, white/anchor/unlock function") and partial[0][1] is None


def test_aliexpress_payloads_from_page_script_and_data_endpoint(crawled):
    _, _, _, con = crawled
    for f in sorted((REALDATA / "aliexpress").glob("item-*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))["data"]
        info = data["productInfoComponent"]
        p = product(con, f"aliexpress:{info['idStr']}")
        assert p["title"] == " ".join(info["subject"].split())
        assert p["merchant_id"] == str(data["sellerComponent"]["storeNum"])
        props = [data["productPropComponent"]["props"][k] for k in sorted(data["productPropComponent"]["props"], key=int)]
        assert specs(con, p["product_id"]) == [(x["attrName"].strip(), " ".join(x["attrValue"].split())) for x in props]
        paths = data["imageComponent"]["imagePathList"]
        assert media(con, p["product_id"], "image") == [paths[k] for k in sorted(paths, key=int)]
        video = data.get("videoComponent")
        assert media(con, p["product_id"], "video") == (
            [VIDEO_URL.format(uid=video["videoUid"], vid=video["videoId"])] if video else [])
    first = product(con, "aliexpress:1005002724686123")
    assert (first["price"], first["currency"]) == (1986.69, "MXN")
    assert first["category_path"] == ["Todas las categorías", "Ordenadores y oficina",
                                      "Accesorios para ordenadores portátiles", "Adaptador para ordenador portátil"]
    assert len(specs(con, first["product_id"])) == 14
    assert media(con, "aliexpress:1005004787627817", "video") == [
        "https://video.aliexpress-media.com/play/u/ae_sg_item/2136113456/p/1/e/6/t/10301/314590204503.mp4"]


def test_charset_detected_from_bytes_when_declaration_is_wrong(crawled):
    _, _, _, con = crawled
    assert product(con, "127.0.0.1:ZH-GBK")["title"] == ZH
    assert specs(con, "127.0.0.1:ZH-GBK") == [("能效等级", "一级")]
    assert product(con, "127.0.0.1:ZH-UTF8")["title"] == ZH


def test_malformed_pages_give_partial_products_or_errors(crawled):
    _, stats, _, con = crawled
    broken = product(con, "127.0.0.1:BROKEN-1")
    assert broken["title"] is None and broken["price"] == 12.5
    assert media(con, "127.0.0.1:BROKEN-1", "image") == [crawled[2].url + "/img/broken.jpg"]
    err = errors(con)
    assert err["shop/broken.html"] == ("missing title", None)
    assert err["shop/nothing.html"][0].startswith("no product data")
    assert err["shop/gone.html"] == ("http 404", 404)
    assert "shop/junk.html" not in err and stats.status == "ok"
    assert stats.failures["http 404"] == 1 and stats.failures["missing title"] == 1


def test_scope_robots_and_media_rows(crawled):
    store, stats, server, con = crawled
    paths = set(server.requests)
    assert "/robots.txt" in paths and "/shop/gbk.html" in paths
    assert not any(p.startswith("/private/") for p in paths)  # robots.txt disallows it
    assert "/offsite.html" not in paths  # linked as http://localhost:<port>/...: another host
    assert not any(p.startswith("/amazon/") and p != "/amazon/dp/B00FLYWNYQ" for p in paths)  # max_depth 1
    n_products = con.sql("SELECT count(*) FROM products").fetchall()[0][0]
    assert n_products == stats.n_out == 11
    bad = con.sql("SELECT count(*) FROM media WHERE status <> 'pending' OR media_id <> sha1(product_id || '|' || kind || '|' || url)").fetchall()[0][0]
    assert bad == 0
    roles = con.sql("SELECT role, count(*) FROM media WHERE kind = 'image' AND position = 0 GROUP BY 1").fetchall()
    assert roles == [("main", n_products)]
    run_row = store.read("runs", where=f"run_id = '{stats.run_id}'").to_pylist()[0]
    assert (run_row["stage"], run_row["status"], run_row["n_out"]) == ("crawl", "ok", 11)

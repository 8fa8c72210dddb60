"""The crawl's parsing, without a crawl: generic schema.org layer, adapters, normalisation, charset.

Pages are real Scrapy responses built from bytes (the saved pages of ../shared/realdata and small
pages written here); the HTTP crawl itself is tested in test_crawl_pages.py.
"""

import hashlib
import json

import pytest
from scrapy.http import HtmlResponse, TextResponse

from m5data.crawler.adapters import AdapterChooser, UnknownSite, get_adapter
from m5data.crawler.adapters.aliexpress import VIDEO_URL
from m5data.crawler.adapters.base import script_json
from m5data.crawler.extraction import detect_encoding, read_page
from m5data.crawler.generic_product import parse_price
from m5data.crawler.items import ProductItem, clean_property, clean_text, url_id
from m5data.crawler.pipeline import product_rows
from m5data.storage.media_ids import media_id


def html_response(url: str, body: str | bytes, encoding: str = "utf-8") -> HtmlResponse:
    return HtmlResponse(url, body=body.encode(encoding) if isinstance(body, str) else body, encoding=encoding)


def parse(url: str, body, site: str | None = None) -> ProductItem:
    response = html_response(url, body) if not isinstance(body, TextResponse) else body
    adapter = AdapterChooser(site)(url, response)
    page = read_page(response.text, url)
    assert adapter.is_product_page(response, page)
    return adapter.product(response, page).normalised()


# ------------------------------------------------------------------ normalisation
@pytest.mark.parametrize("raw, clean", [
    ("  Farbe\u00a0 &amp;\n Größe ", "Farbe & Größe"),
    ("ＡＢＣ１２３　型号", "ABC123 型号"),  # full-width ASCII and ideographic space (NFKC)
    ("\u200eB00FLYWNYQ\u200f", "B00FLYWNYQ"),  # Amazon's direction marks
    ("   ", None),
    (None, None),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


@pytest.mark.parametrize("raw, clean", [("品牌：", "品牌"), ("Brand :", "Brand"), ("• Size", "Size"),
                                        ("Wi-Fi", "Wi-Fi"), (" Item Weight\u200f : \u200e", "Item Weight")])
def test_clean_property_trims_colons_and_bullets(raw, clean):
    assert clean_property(raw) == clean


@pytest.mark.parametrize("raw, price", [
    ("249.99", 249.99), (99, 99.0), ("$1,299.00", 1299.0), ("1.299,00 €", 1299.0), ("12,50", 12.5),
    ("US $3.59 - $4.06", 3.59), ("¥ 1 234", 1234.0), ("free", None), (None, None),
])
def test_parse_price(raw, price):
    assert parse_price(raw) == price


def test_normalised_item_drops_home_crumb_title_crumb_and_empty_specs():
    item = ProductItem("p", "1", "http://x/1", title="Lamp", category_path=["首页", "Home &amp; Garden", "Lamp"],
                       specs=[("Colour:", " red "), ("", "x"), ("Size", "  ")], images=["a", "a", "b"])
    out = item.normalised()
    assert out.category_path == ["Home & Garden"]
    assert out.specs == [("Colour", "red")]
    assert out.images == ["a", "b"]


def test_content_hash_ignores_url_and_ids_only():
    a = ProductItem("p", "1", "http://x/1", title="Lamp", price=3.0)
    b = ProductItem("q", "2", "http://y/2", title="Lamp", price=3.0)
    c = ProductItem("p", "1", "http://x/1", title="Lamp", price=4.0)
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_product_rows_media_keys_roles_and_status():
    item = ProductItem("shop", "9", "http://x/9", title="T", images=["http://i/1.jpg", "http://i/2.jpg"],
                       videos=["http://v/1.mp4"], specs=[("a", "1")], media_meta={"http://v/1.mp4": {"hls": "h"}})
    product, specs, media = product_rows(item, "run1", None, "hash")
    assert product["product_id"] == "shop:9" and product["has_video"] and product["has_specs"]
    assert specs == [{"product_id": "shop:9", "position": 0, "property": "a", "value": "1"}]
    assert [(m["kind"], m["role"], m["position"]) for m in media] == [("image", "main", 0), ("image", "gallery", 1), ("video", "video", 0)]
    assert media[0]["media_id"] == hashlib.sha1(b"shop:9|image|http://i/1.jpg").hexdigest() == media_id("shop:9", "image", "http://i/1.jpg")
    assert {m["status"] for m in media} == {"pending"}
    assert json.loads(media[2]["meta"]) == {"hls": "h"}


# ------------------------------------------------------------------ charset
GBK_TEXT = "美的(Midea) 变频空调 KFR-35GW 新一级能效"


def test_detect_encoding_trusts_bytes_over_a_wrong_declaration():
    assert detect_encoding(GBK_TEXT.encode("utf-8"), "iso-8859-1") == "utf-8"
    gbk = ("<html><head><title>" + GBK_TEXT + "</title></head><body>" + "<p>" + GBK_TEXT * 3 + "</p></body></html>").encode("gbk")
    assert detect_encoding(gbk, "utf-8") in {"gbk", "gb18030", "gb2312"}
    assert detect_encoding(gbk, "gbk") == "gbk"
    assert detect_encoding(b"plain ascii", "iso-8859-1") == "iso8859-1"
    assert detect_encoding(b"\xef\xbb\xbf" + GBK_TEXT.encode("utf-8"), "gbk") == "utf-8"
    assert detect_encoding("Größe und Gewicht: schön".encode("cp1252"), "cp1252") == "cp1252"


# ------------------------------------------------------------------ generic layer
MICRODATA = """<html><head><title>Shop</title></head><body>
<ol itemscope itemtype="https://schema.org/BreadcrumbList">
 <li itemprop="itemListElement" itemscope itemtype="https://schema.org/ListItem"><a itemprop="item" href="/"><span itemprop="name">Home</span></a><meta itemprop="position" content="1"></li>
 <li itemprop="itemListElement" itemscope itemtype="https://schema.org/ListItem"><a itemprop="item" href="/lamps"><span itemprop="name">Lampen &amp; Leuchten</span></a><meta itemprop="position" content="2"></li>
</ol>
<div itemscope itemtype="http://schema.org/Product">
 <h1 itemprop="name">Tischlampe  „Luna“</h1>
 <img itemprop="image" src="/img/luna-1.jpg"><img itemprop="image" src="/img/luna-2.jpg">
 <span itemprop="productID">LUNA-7</span>
 <div itemprop="offers" itemscope itemtype="http://schema.org/Offer"><span itemprop="price">1.299,00</span><meta itemprop="priceCurrency" content="EUR">
  <div itemprop="seller" itemscope itemtype="http://schema.org/Organization"><span itemprop="name">Licht GmbH</span></div></div>
 <div itemprop="additionalProperty" itemscope itemtype="http://schema.org/PropertyValue"><span itemprop="name">Farbe:</span><span itemprop="value">Weiß</span></div>
 <div itemprop="isRelatedTo" itemscope itemtype="http://schema.org/Product"><span itemprop="name">Other</span><img itemprop="image" src="/img/other.jpg"></div>
</div></body></html>"""


def test_generic_layer_reads_microdata_of_a_shop_it_was_never_tuned_to():
    item = parse("http://shop.test/p/luna", MICRODATA)
    assert item.product_id == "shop.test:LUNA-7"
    assert item.title == "Tischlampe „Luna“"
    assert item.images == ["http://shop.test/img/luna-1.jpg", "http://shop.test/img/luna-2.jpg"]
    assert (item.price, item.currency, item.merchant_id) == (1299.0, "EUR", "Licht GmbH")
    assert item.category_path == ["Lampen & Leuchten"]
    assert item.specs == [("Farbe", "Weiß")]
    assert item.problems == []


def test_generic_layer_reads_graph_aggregate_offer_video_and_hashes_the_canonical_url():
    ld = {"@context": "https://schema.org", "@graph": [
        {"@type": "WebPage", "name": "page"},
        {"@type": ["Product", "Thing"], "name": "Kettle", "image": {"@type": "ImageObject", "contentUrl": "//cdn.test/k.jpg"},
         "offers": {"@type": "AggregateOffer", "lowPrice": 19, "priceCurrency": "GBP"},
         "category": "Kitchen > Small appliances > Kettles",
         "video": {"@type": "VideoObject", "contentUrl": "https://cdn.test/k.mp4"}}]}
    body = (f'<html><head><link rel="canonical" href="https://shop.test/kettle?utm=1">'
            f'<script type="application/ld+json">{json.dumps(ld)}</script></head><body></body></html>')
    item = parse("http://www.shop.test/kettle?ref=abc", body)
    assert item.platform == "shop.test"
    assert item.source_id == url_id("https://shop.test/kettle?utm=1")
    assert (item.title, item.price, item.currency) == ("Kettle", 19.0, "GBP")
    assert item.images == ["http://cdn.test/k.jpg"]
    assert item.videos == ["https://cdn.test/k.mp4"]
    assert item.category_path == ["Kitchen", "Small appliances", "Kettles"]


def test_broken_jsonld_block_keeps_the_others_and_is_recorded():
    good = {"@context": "https://schema.org", "@type": "Product", "name": "Mug", "sku": "M1", "offers": {"price": "4.5"}}
    body = ('<html><head><script type="application/ld+json">{"@type": "Product", "name": </script>'
            f'<script type="application/ld+json">{json.dumps(good)}</script></head></html>')
    item = parse("http://shop.test/mug", body)
    assert (item.product_id, item.title, item.price) == ("shop.test:M1", "Mug", 4.5)
    assert len(item.problems) == 1 and item.problems[0].startswith("invalid JSON-LD: block 1")


def test_read_page_survives_empty_and_binary_bodies():
    assert read_page("", "http://x/").problems
    page = read_page("\x00\x01\x02 garbage <<<>", "http://x/")
    assert not page.is_product_page


# ------------------------------------------------------------------ real saved pages, parsed directly
def test_realdata_jsonld_pages(realdata):
    pages = realdata / "pages" / "jsonld"
    good = parse("http://127.0.0.1/ikea", (pages / "thereyouwish_jsonld.html").read_bytes())
    array = parse("http://127.0.0.1/ikea2", (pages / "thereyouwish_jsonld_offers_array.html").read_bytes())
    assert good.product_id == array.product_id == "127.0.0.1:605.612.48"
    assert good.title == 'STORKLINTA 6-drawer dresser - white/anchor/unlock function 55 1/8x18 7/8x29 1/2 "'
    assert (good.price, good.currency, array.price) == (249.99, "USD", 249.99)
    assert len(good.images) == 4 and all(u.startswith("https://www.ikea.com/us/en/images/products/storklinta") for u in good.images)
    assert good.category_path == ["Products", "Storage & organization", "Dressers & storage drawers", "Dressers & chests of drawers"]
    defective = parse("http://127.0.0.1/d", (pages / "thereyouwish_defective_jsonld.html").read_bytes())
    empty = parse("http://127.0.0.1/e", (pages / "thereyouwish_empty_jsonld.html").read_bytes())
    for item in (defective, empty):  # partial: title and image from OpenGraph, no price
        assert item.title.startswith("STORKLINTA 6-drawer dresser, white/anchor/unlock function")
        assert item.price is None and len(item.images) == 1 and item.problems
    assert defective.problems == ["partial: schema.org Product has no name"]
    assert empty.problems[0].startswith("invalid JSON-LD")


def test_realdata_aliexpress_payload_in_an_unquoted_js_object(realdata):
    raw = json.loads((realdata / "pages/aliexpress/item-1005002724686123.json").read_text(encoding="utf-8"))
    # the page's own form: `window.runParams = { data: {...} };` (a JS object, not JSON)
    body = "<html><body><script>\nwindow.runParams = {\n    data: " + json.dumps(raw["data"]) + "\n};\n</script></body></html>"
    item = parse("http://127.0.0.1/item/1005002724686123.html", body)
    assert item.product_id == "aliexpress:1005002724686123"
    assert item.videos == [VIDEO_URL.format(uid="2209493311115", vid="313196470521")]
    assert item.category_path[-1] == "Adaptador para ordenador portátil"


def test_adapter_registry():
    assert get_adapter("amazon").name == "amazon"
    with pytest.raises(UnknownSite, match="known: aliexpress, amazon"):
        get_adapter("ebay")
    choose = AdapterChooser()
    assert choose("https://www.amazon.de/dp/B00FLYWNYQ").name == "amazon"
    assert choose("https://es.aliexpress.com/item/1.html").name == "aliexpress"
    assert choose("https://shop.test/x").name == "generic"
    assert AdapterChooser("aliexpress")("https://shop.test/x").name == "aliexpress"


def test_script_json_skips_non_json_candidates():
    text = "var a = {notjson}; var a = {\"x\": [1, 2]}; rest"
    assert script_json(text, "var a =") == {"x": [1, 2]}
    assert script_json(text, "var b =") is None

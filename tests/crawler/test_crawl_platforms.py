"""Taobao, Tmall, JD, older AliExpress, plain-HTML spec tables, hidden title text and data: URIs.

Pages are the synthetic ones in tests/pages/ (see its README), parsed as real Scrapy responses:
each test asserts what a reader of the page lists (title, main image, price, spec pairs,
breadcrumb, video) and the platform id. The crawl of the same pages over HTTP (payloads served
as JSON and JavaScript, CJK charsets) is in test_crawl_payloads.py.
"""

import json
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Response, TextResponse

from m5data.crawler.adapters import AdapterChooser
from m5data.crawler.adapters.base import is_html
from m5data.crawler.extraction import read_page
from m5data.crawler.items import ProductItem

PAGES = Path(__file__).parents[1] / "pages"


def page_item(url: str, name: str, site: str | None = None, kind: type[Response] = HtmlResponse,
              content_type: str = "text/html; charset=utf-8") -> ProductItem:
    body = (PAGES / name).read_bytes()
    response = kind(url, body=body, encoding="utf-8", headers={"Content-Type": content_type})
    adapter = AdapterChooser(site)(url, response)
    page = read_page(response.text, url) if is_html(response) else None
    assert adapter.is_product_page(response, page), f"{name}: not a product page for {adapter.name}"
    return adapter.product(response, page).normalised()


# ------------------------------------------------------------------ Taobao
def test_taobao_pc_page_g_config_thumbnails_and_attributes_list():
    item = page_item("https://item.taobao.com/item.htm?id=612345678901&spm=a21", "taobao/item_pc.html")
    assert item.product_id == "taobao:612345678901"
    assert item.title == "日式陶瓷马克杯 大容量咖啡杯带盖勺"
    assert (item.price, item.currency, item.merchant_id) == (39.0, "CNY", "2201234567")
    # the g_config payload's full-size images (the thumbnails carry a _50x50 suffix)
    assert item.images[0] == "https://img.alicdn.com/imgextra/i1/2201234567/O1CN01aaaa_!!2201234567.jpg"
    assert len(item.images) == 3
    assert item.specs[:3] == [("品牌", "Lovwish/乐唯诗"), ("型号", "MK-0815"), ("材质", "陶瓷")]
    # the list shows a truncated value; the title attribute holds all of it
    assert ("颜色分类", "白色 黑色 雾霾蓝 奶油黄 抹茶绿 樱花粉") in item.specs
    assert item.category_path == [] and item.videos == [] and item.problems == []


def test_taobao_mtop_json_response_with_group_props_and_price_in_a_json_string():
    item = page_item("https://h5api.m.taobao.com/h5/mtop.taobao.detail.getdetail/6.0/?data=%7B%7D",
                     "taobao/mtop_detail.json", kind=TextResponse, content_type="application/json")
    assert item.product_id == "taobao:678901234567"  # seller.shopType C: a Taobao shop
    assert item.title == "北欧实木床头柜 简约现代卧室收纳柜"
    assert item.price == 128.0  # apiStack[0].value, a JSON string: the price shown, not the struck-through one
    assert item.images[0] == "https://img.alicdn.com/bao/uploaded/i4/3300112233/O1CN01dddd_!!3300112233.jpg"
    assert item.specs == [("品牌", "木匠工坊"), ("材质", "橡胶木"), ("颜色分类", "原木色 胡桃色"), ("是否可定制", "否"),
                          ("长度", "45cm"), ("宽度", "35cm")]
    video = "https://cloud.video.taobao.com/play/u/3300112233/p/1/e/6/t/1/290000111222.mp4"
    assert item.videos == [video] and item.media_meta[video] == {"video_id": "290000111222"}
    assert item.merchant_id == "3300112233"


def test_taobao_payload_as_jsonp_script():
    raw = (PAGES / "taobao/mtop_detail.json").read_text(encoding="utf-8")
    body = f"mtopjsonp3({raw})".encode()
    response = TextResponse("https://h5api.m.taobao.com/h5/x/6.0/?callback=mtopjsonp3", body=body, encoding="utf-8")
    adapter = AdapterChooser()(response.url, response)
    item = adapter.product(response, None).normalised()
    assert (item.product_id, item.price, len(item.specs)) == ("taobao:678901234567", 128.0, 6)


# ------------------------------------------------------------------ Tmall
def test_tmall_pc_page_tshop_setup_new_pro_group_promo_price_and_video():
    item = page_item("https://detail.tmall.com/item.htm?id=640123456789", "tmall/item_pc.html")
    assert item.product_id == "tmall:640123456789"
    assert item.title == "Philips/飞利浦 HD9651 空气炸锅 家用大容量"  # the label image inside <h1> adds nothing
    assert (item.price, item.currency) == (999.0, "CNY")  # the promotion price shown, not the list price
    assert item.merchant_id == "1714128138"
    assert item.images == ["https://img.alicdn.com/bao/uploaded/i1/1714128138/O1CN01ffff_!!1714128138.jpg",
                           "https://img.alicdn.com/bao/uploaded/i2/1714128138/O1CN01gggg_!!1714128138.jpg"]
    assert item.category_path == ["厨房电器", "空气炸锅"]
    # newProGroup (all groups) over the shorter #J_AttrUL list
    assert item.specs == [("品牌", "Philips/飞利浦"), ("飞利浦型号", "HD9651/91"), ("颜色分类", "黑色"), ("容量", "6.2L"),
                          ("功率", "2000W"), ("定时范围", "0-60分钟"), ("温控范围", "80-200°C")]
    video = "https://cloud.video.taobao.com/play/u/1714128138/p/1/e/6/t/1/50012345.mp4"  # the Flash URL's MP4 twin
    assert item.videos == [video] and item.media_meta[video] == {"video_id": "50012345"}


def test_tmall_h5_page_data_detail_and_mdskip_assignments():
    item = page_item("https://detail.m.tmall.com/item.htm?id=587654321098", "tmall/item_h5.html")
    assert item.product_id == "tmall:587654321098"
    assert item.title == "Apple/苹果 AirPods Pro (第二代) 主动降噪无线蓝牙耳机"
    assert item.price == 1899.0 and item.merchant_id == "2616970884"
    assert item.images[0] == "https://img.alicdn.com/imgextra/i4/2616970884/O1CN01pppp_!!2616970884.jpg"
    assert item.specs == [("品牌", "Apple/苹果"), ("型号", "AirPods Pro (第二代)"), ("耳机类型", "入耳式"), ("连接方式", "蓝牙")]
    assert item.videos == ["https://cloud.video.taobao.com/play/u/2616970884/p/2/e/6/t/1/380123456789.mp4"]


def test_saved_tmall_and_jd_pages_get_their_real_platform_not_the_demo_shops():
    """Same templates as the demo shop's shopa/shopb, on a host no adapter claims."""
    assert page_item("http://127.0.0.1:8000/saved/a.html", "tmall/item_pc.html").platform == "tmall"
    assert page_item("http://127.0.0.1:8000/saved/b.html", "tmall/item_h5.html").platform == "tmall"
    assert page_item("http://127.0.0.1:8000/saved/c.html", "taobao/item_pc.html").platform == "taobao"
    assert page_item("http://127.0.0.1:8000/saved/d.html", "jd/item.html").platform == "jd"


def test_taobao_api_answer_for_a_tmall_shop_is_a_tmall_product():
    raw = (PAGES / "taobao/mtop_detail.json").read_text(encoding="utf-8").replace('"shopType":"C"', '"shopType":"B"')
    response = TextResponse("https://h5api.m.taobao.com/h5/x/6.0/", body=raw.encode(), encoding="utf-8")
    item = AdapterChooser()(response.url, response).product(response, None)
    assert item.product_id == "tmall:678901234567"


# ------------------------------------------------------------------ JD
def test_jd_page_page_config_crumbs_spec_lists_and_ptable():
    item = page_item("https://item.jd.com/100066896338.html", "jd/item.html")
    assert item.product_id == "jd:100066896338"
    assert item.title == "华为 HUAWEI Mate 60 12GB+512GB 雅川青"
    assert (item.price, item.currency, item.merchant_id) == (6499.0, "CNY", "1000004259")
    base = "https://img14.360buyimg.com/n1/jfs/t1/"
    assert item.images == [base + "220000/1/2345/98765/64e0a1b2F7c3d4e5f/a1b2c3d4e5f60718.jpg",
                           base + "219999/2/3456/87654/64e0a1b3F8d4e5f6a/b2c3d4e5f6071829.jpg",
                           base + "219998/3/4567/76543/64e0a1b4F9e5f6a7b/c3d4e5f607182930.jpg"]
    # category levels only: not the brand drop-down (other brands) nor the product name
    assert item.category_path == ["手机通讯", "手机", "手机"]
    assert item.specs[:3] == [("品牌", "华为(HUAWEI)"), ("商品名称", "华为Mate 60"), ("商品编号", "100066896338")]
    # Ptable pairs the lists lack; the help text in dd.Ptable-tips is not a value
    assert ("入网型号", "BRA-AL00") in item.specs and ("屏幕尺寸", "6.69英寸") in item.specs
    assert [k for k, _ in item.specs].count("操作系统") == 1
    assert not any("工信部" in v for _, v in item.specs)


def test_jd_page_config_as_a_javascript_file():
    item = page_item("http://static.test/item/100012043978.js", "jd/pageconfig.js", site="jd", kind=TextResponse,
                     content_type="application/javascript")
    assert item.product_id == "jd:100012043978"
    assert item.title == "小米 Redmi K70 16GB+512GB 墨羽"
    assert item.images[0] == "https://img14.360buyimg.com/n1/jfs/t1/180000/5/1234/56789/65a0b1c2Fd3e4f5a6/0a1b2c3d4e5f6a7b.jpg"
    assert len(item.images) == 2 and item.merchant_id == "1000004123"


# ------------------------------------------------------------------ AliExpress (older payload)
def test_older_aliexpress_run_params_modules():
    for site in (None, "aliexpress"):  # chosen by template, and forced: both read the modules
        item = page_item("https://www.aliexpress.us/item/4000123456789.html", "aliexpress/item_runparams_old.html", site=site)
        assert item.product_id == "aliexpress:4000123456789"
        assert item.title == "Mini Portable Bluetooth Speaker Waterproof Wireless Subwoofer"
        assert (item.price, item.currency, item.merchant_id) == (12.34, "USD", "1100223344")
        assert item.images[0] == "https://ae01.alicdn.com/kf/H1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6dQ.jpg"
        assert item.specs == [("Brand Name", "SOUNDWAVE"), ("Model Number", "SW-M1"), ("Waterproof", "IPX7")]
        assert item.category_path == ["All Categories", "Consumer Electronics", "Portable Audio & Video", "Speakers"]
        assert item.videos == ["https://video.aliexpress-media.com/play/u/ae_sg_item/2200998877/p/1/e/6/t/10301/30123456789.mp4"]


# ------------------------------------------------------------------ generic layer: plain HTML
def test_generic_spec_tables_in_main_content_with_nav_footer_and_shipping_guards():
    item = page_item("https://peakline.test/p/tr2", "generic/spec_tables.html")
    assert item.product_id == "peakline.test:TR2-28"
    assert item.specs == [("Volume", "28 L"), ("Weight", "1.1 kg"), ("Material", "Recycled polyester 600D"),
                          ("Back length", "48 cm"), ("Rain cover", "included"), ("Hydration", "bladder sleeve, 3 L"),
                          ("Hip belt", "padded, removable"), ("Warranty", "5 years"), ("Brand", "Peakline")]
    assert item.category_path == ["Outdoor", "Backpacks"]  # the aria-labelled breadcrumb, home dropped


def test_ebay_hidden_title_prefix_item_specifics_and_microdata_pairs():
    item = page_item("https://www.ebay.test/itm/1234", "generic/ebay_item.html")
    assert item.title == "Vintage Canon AE-1 Program 35mm SLR Film Camera Body Black"  # no "Details about"
    assert (item.price, item.currency) == (149.99, "USD")
    assert item.images == ["https://i.ebayimg.test/images/g/AbCdEfGh/s-l1600.jpg"]
    assert item.specs == [("Condition", "Used: An item that has been used previously."), ("Brand", "Canon"),
                          ("Model", "AE-1 Program"), ("Type", "SLR"), ("Format", "35mm"), ("Color", "Black"),
                          ("MPN", "AE-1P")]  # the footer's two-cell rows are not specs
    assert item.category_path == ["Cameras & Photo", "Film Photography", "Film Cameras"]


def test_og_title_with_price_and_discount_prefixes_gives_the_visible_name():
    item = page_item("https://gadgethub.test/p/mouse", "generic/og_title_prefix.html")
    assert item.title == "Wireless Mouse 2.4G Silent Click"
    assert (item.price, item.currency) == (12.34, "USD")


def test_page_without_spec_blocks_gets_no_invented_pairs():
    body = ('<html><head><meta property="og:type" content="product"><meta property="og:title" content="Lamp"></head><body>'
            '<nav><ul><li>Sale: 50%</li><li>New: today</li></ul></nav><main><h1>Lamp</h1>'
            '<ul><li>Made to last: really.</li><li>Colour: red</li><li>Looks great</li><li>Ships fast</li></ul></main>'
            '<footer><dl><dt>Phone</dt><dd>1</dd><dt>Mail</dt><dd>2</dd></dl></footer></body></html>')
    response = HtmlResponse("http://x.test/lamp", body=body.encode(), encoding="utf-8")
    item = AdapterChooser()(response.url, response).product(response, read_page(response.text, response.url))
    assert item.specs == []  # one key: value item among four is not a spec list; nav and footer never count


# ------------------------------------------------------------------ data: URIs
def test_amazon_landing_image_placeholder_is_never_media():
    item = page_item("https://www.amazon.com/dp/B0TESTTIMR", "amazon/landing_placeholder.html")
    assert item.product_id == "amazon:B0TESTTIMR"
    assert item.images[0] == "https://m.media-amazon.test/images/I/61TimerAAL._AC_SL1500_.jpg"  # the largest
    assert not any(u.startswith("data:") for u in item.images)
    assert item.category_path == ["Home & Kitchen", "Kitchen Timers"] and item.price == 9.99


@pytest.mark.parametrize("site", [None, "generic", "taobao", "jd"])
def test_no_adapter_stores_a_data_uri(site):
    body = ('<html><head><meta property="og:type" content="product"><meta property="og:title" content="Cup">'
            '<meta property="og:image" content="data:image/png;base64,iVBORw0KGgo="></head><body><h1>Cup</h1>'
            '<ul id="J_UlThumb"><li><img src="data:image/gif;base64,R0lGOD"></li></ul>'
            '<div id="spec-list"><img data-url="data:image/gif;base64,R0lGOD"></div><div class="sku-name">Cup</div></body></html>')
    response = HtmlResponse("http://x.test/cup", body=body.encode(), encoding="utf-8")
    adapter = AdapterChooser(site)(response.url, response)
    item = adapter.product(response, read_page(response.text, response.url))
    assert not [u for u in item.images + item.videos if u.startswith("data:")]


def html_only(name: str, url: str, cut: tuple[str, str]) -> ProductItem:
    """A saved page with one script payload cut out: the adapter must read the HTML instead."""
    text = (PAGES / name).read_text(encoding="utf-8")
    start = text.index(cut[0])
    text = text[:start] + text[text.index(cut[1], start) + len(cut[1]):]
    response = HtmlResponse(url, body=text.encode(), encoding="utf-8")
    return AdapterChooser()(url, response).product(response, read_page(response.text, url)).normalised()


def test_taobao_html_thumbnails_and_booth_without_the_payload():
    item = html_only("taobao/item_pc.html", "https://item.taobao.com/item.htm?id=612345678901", ("var g_config", "};\n"))
    assert item.product_id == "taobao:612345678901"  # from the URL's id parameter
    assert item.title == "日式陶瓷马克杯 大容量咖啡杯带盖勺" and item.price == 39.0
    # thumbnails (data-src, _50x50 suffix) and the booth image (_400x400) are one full-size image each
    assert item.images == [f"https://img.alicdn.com/imgextra/i{i}/2201234567/O1CN01{c * 4}_!!2201234567.jpg"
                           for i, c in ((1, "a"), (2, "b"), (3, "c"))]


def test_tmall_attr_list_without_the_pro_group_payload():
    item = html_only("tmall/item_pc.html", "https://detail.tmall.com/item.htm?id=640123456789", ("var itemProps", "};\n"))
    assert item.specs == [("品牌", "Philips/飞利浦"), ("飞利浦型号", "HD9651/91"), ("容量", "6.2L"), ("功率", "2000W")]


# ------------------------------------------------------------------ Amazon detail bullets, recommendation carousels
BOOK_SPECS = [("Publisher", "O'Reilly Media; 1st edition (March 3, 2020)"), ("Language", "English"),
              ("Paperback", "412 pages"), ("ISBN-10", "1000000012"), ("ISBN-13", "978-1000000019"),
              ("Item Weight", "1.4 pounds"), ("Dimensions", "7 x 0.9 x 9.2 inches")]


def book_page(url: str, site: str | None = None, edit=lambda text: text) -> ProductItem:
    text = edit((PAGES / "amazon/book_detail_bullets.html").read_text(encoding="utf-8"))
    response = HtmlResponse(url, body=text.encode(), encoding="utf-8")
    page = read_page(response.text, url)
    return AdapterChooser(site)(url, response).product(response, page).normalised()


@pytest.mark.parametrize("url", ["https://www.amazon.com/dp/1000000012", "http://127.0.0.1:8000/saved/book.html"])
def test_amazon_book_detail_bullets_are_the_specs(url):
    item = book_page(url)
    assert item.product_id == "amazon:1000000012" and item.title == "Learning Web Scraping: Patterns for Messy Pages"
    assert item.specs == BOOK_SPECS  # marks (&rlm; &lrm;) and colons gone; rank and review bullets left out


def test_generic_spec_reader_never_reads_recommendation_carousels():
    """The carousel's "JavaScript: The Good Parts Douglas Crockford 4.1 out of 5 stars" reads like a
    key: value item; so does a sponsored list under its heading. Neither is a spec of this product."""
    item = book_page("http://shop.test/book", "generic",
                     lambda t: t.replace("<head>", '<head><meta property="og:type" content="product">'))
    assert item.specs == BOOK_SPECS


def test_amazon_tech_spec_table_without_its_class_then_bullets_the_table_lacks():
    table = ('<table id="productDetails_techSpec_section_1" class="a-keyvalue"><tr><th> Reading age </th><td> 18 years and up </td></tr>'
             "<tr><th> Publisher </th><td> O'Reilly Media </td></tr></table>")
    item = book_page("https://www.amazon.com/dp/1000000012", edit=lambda t: t.replace('<div id="detailBulletsWrapper_feature_div"', table + '<div id="detailBulletsWrapper_feature_div"'))
    assert item.specs == [("Reading age", "18 years and up"), ("Publisher", "O'Reilly Media")] + BOOK_SPECS[1:]


def test_amazon_page_without_details_gets_no_carousel_specs():
    cut = lambda t: t[:t.index('<div id="detailBulletsWrapper_feature_div"')] + "</div></div></body></html>"  # noqa: E731
    assert book_page("https://www.amazon.com/dp/1000000012", edit=cut).specs == []


# ------------------------------------------------------------------ 2015-era Tmall itemDO.mainPic
def tmall_2015(main_pic: str, url: str = "https://detail.tmall.com/item.htm?id=45012345678") -> ProductItem:
    setup = {"itemDO": {"itemId": "45012345678", "title": "Apple/苹果 iPhone 6s 全网通", "userId": "1917047079",
                        "reservePrice": "5288.00", "mainPic": main_pic},
             "newProGroup": [{"groupName": "基本信息", "attrs": [{"name": "品牌", "value": "Apple/苹果"}, {"name": "型号", "value": "iPhone 6s"}]}]}
    body = (f'<html><head><meta charset="utf-8"></head><body><div id="J_DetailMeta" class="tm-detail-meta"></div>'
            f"<script>TShop.Setup({json.dumps(setup, ensure_ascii=False)});</script></body></html>")
    response = HtmlResponse(url, body=body.encode(), encoding="utf-8")
    return AdapterChooser()(url, response).product(response, read_page(response.text, url)).normalised()


@pytest.mark.parametrize("main_pic, image", [
    ("TB1aBcDeFgHiJkL.jpg", "https://img.alicdn.com/bao/uploaded/TB1aBcDeFgHiJkL.jpg"),
    ("i1/1917047079/TB2xYz_!!1917047079.jpg", "https://img.alicdn.com/bao/uploaded/i1/1917047079/TB2xYz_!!1917047079.jpg"),
    ("//img.alicdn.com/bao/uploaded/i4/1917047079/TB1q.jpg_430x430q90.jpg", "https://img.alicdn.com/bao/uploaded/i4/1917047079/TB1q.jpg"),
])
def test_tmall_2015_item_do_main_pic_is_the_main_image(main_pic, image):
    item = tmall_2015(main_pic)
    assert item.product_id == "tmall:45012345678" and item.specs == [("品牌", "Apple/苹果"), ("型号", "iPhone 6s")]
    assert item.images == [image]


# ------------------------------------------------------------------ full-width colons in spec lists
@pytest.mark.parametrize("li", [
    '<li title="Apple/苹果 iPhone 11">产品名称：Apple/苹果 iPhone 11</li>',
    "<li>产品名称&nbsp;：&nbsp;Apple/苹果 iPhone 11</li>",
    '<li title="&nbsp;Apple/苹果 iPhone 11"><span>产品名称：</span>Apple/苹果&nbsp;iPhone&nbsp;11</li>',
])
@pytest.mark.parametrize("url, site, wrap", [
    ("https://detail.tmall.com/item.htm?id=601234567890", None, '<ul id="J_AttrUL">{}</ul>'),  # Tmall's list
    ("http://shop.test/p/1", "generic", "<ul>{}</ul>"),  # a plain-HTML spec list
    ("https://item.jd.com/100012345678.html", None, '<ul class="parameter2">{}</ul>'),  # JD's list
])
def test_full_width_colon_items_are_split_like_ascii_ones(li, url, site, wrap):
    items = f'<li title="&nbsp;Apple/苹果">品牌:&nbsp;Apple/苹果</li>{li}<li title="&nbsp;iPhone 11">型号:&nbsp;iPhone 11</li>'
    body = ('<html><head><meta property="og:type" content="product"><title>iPhone 11</title></head><body>'
            f'<div class="tb-detail-hd"><h1>iPhone 11</h1></div><div class="sku-name">iPhone 11</div>{wrap.format(items)}</body></html>')
    response = HtmlResponse(url, body=body.encode(), encoding="utf-8")
    item = AdapterChooser(site)(url, response).product(response, read_page(response.text, url)).normalised()
    assert item.specs == [("品牌", "Apple/苹果"), ("产品名称", "Apple/苹果 iPhone 11"), ("型号", "iPhone 11")]

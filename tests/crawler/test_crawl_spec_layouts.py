"""Spec blocks of real page layouts that used to lose facts (issue 39).

- a Tmall page with both the ``#J_AttrUL`` attribute list and the ``table.tm-tableAttr`` spec
  table: the adapter kept only the longer block, so a fact only in the shorter one was dropped;
- Amazon pages of the older layouts (``#detail-bullets`` / ``#productDetailsTable`` items
  ``<li><b>ISBN-10:</b> 1000000039</li>``, ``#prodDetails`` ``td.label``/``td.value`` rows,
  ``#technicalSpecifications_section_1``): no spec pair was read.

Pages are the synthetic ones in tests/pages/ (see its README), parsed as real Scrapy responses.
"""

import pytest
from scrapy.http import HtmlResponse
from test_crawl_platforms import page_item

from m5data.crawler.adapters import AdapterChooser
from m5data.crawler.extraction import read_page

IPHONE = [("产品名称", "Apple/苹果 iPhone 11"), ("品牌", "Apple/苹果"), ("型号", "iPhone 11"),
          ("机身颜色", "黑色 白色 红色 紫色 黄色 绿色"), ("上市时间", "2019-09"), ("屏幕尺寸", "6.1英寸")]


def edited_item(url: str, name: str, edit) -> object:
    from test_crawl_platforms import PAGES
    text = edit((PAGES / name).read_text(encoding="utf-8"))
    response = HtmlResponse(url, body=text.encode(), encoding="utf-8")
    adapter, page = AdapterChooser()(url, response), read_page(response.text, url)
    assert adapter.is_product_page(response, page), f"{name}: not a product page for {adapter.name}"
    return adapter.product(response, page).normalised()


# ------------------------------------------------------------------ Tmall: attribute list + spec table
def test_tmall_attribute_list_and_spec_table_are_merged():
    """The table (five facts) is longer than the list (four): 产品名称, only in the list, stays. A
    property in both is kept once, at the list's place; where the two disagree (the list's colour
    text is cut short with "...") the table's value wins."""
    item = page_item("https://detail.tmall.com/item.htm?id=602345678901", "tmall/item_attr_list_and_table.html")
    assert item.product_id == "tmall:602345678901" and item.platform == "tmall"
    assert item.specs == IPHONE


def test_tmall_spec_table_facts_stay_when_the_attribute_list_is_longer():
    """The converse: a list longer than the table keeps the table's facts that the list lacks."""
    cut = ("<tr><th>上市时间</th><td>&nbsp;2019-09</td></tr>", "<tr><th>机身颜色</th><td>&nbsp;黑色 白色 红色 紫色 黄色 绿色</td></tr>")
    item = edited_item("https://detail.tmall.com/item.htm?id=602345678901", "tmall/item_attr_list_and_table.html",
                       lambda t: t.replace(cut[0], "").replace(cut[1], ""))
    assert item.specs == [("产品名称", "Apple/苹果 iPhone 11"), ("品牌", "Apple/苹果"), ("型号", "iPhone 11"),
                          ("机身颜色", "黑色 白色 红色 紫色..."), ("屏幕尺寸", "6.1英寸")]


def test_tmall_page_with_only_one_block_reads_it():
    no_table = edited_item("https://detail.tmall.com/item.htm?id=602345678901", "tmall/item_attr_list_and_table.html",
                           lambda t: t[:t.index('<table class="tm-tableAttr"')] + t[t.index("</table>") + 8:])
    assert no_table.specs == [("产品名称", "Apple/苹果 iPhone 11"), ("品牌", "Apple/苹果"), ("型号", "iPhone 11"),
                              ("机身颜色", "黑色 白色 红色 紫色...")]
    no_list = edited_item("https://detail.tmall.com/item.htm?id=602345678901", "tmall/item_attr_list_and_table.html",
                          lambda t: t[:t.index('<ul id="J_AttrUL">')] + t[t.index("</ul>", t.index('<ul id="J_AttrUL">')) + 5:])
    assert no_list.specs == IPHONE[1:3] + IPHONE[4:] + IPHONE[3:4]


# ------------------------------------------------------------------ Amazon: older detail layouts
BOOK = [("Series", "Practical Programmers"), ("Paperback", "280 pages"),
        ("Publisher", "Example Press; 1 edition (October 28, 2014)"), ("Language", "English"), ("ISBN-10", "1000000039"),
        ("ISBN-13", "978-1000000039"), ("Product Dimensions", "7.5 x 0.6 x 9.2 inches"), ("Shipping Weight", "1.2 pounds")]


@pytest.mark.parametrize("url", ["https://www.amazon.com/dp/1000000039", "http://127.0.0.1:8000/saved/old-book.html"])
def test_amazon_older_book_layout_product_details_table_bullets(url):
    """``<li><b>ISBN-10:</b> 1000000039</li>`` items under ``#detail-bullets`` / ``#productDetailsTable``:
    the review stars widget, the Best Sellers Rank (with its ladder of categories, a nested list
    whose ``<b>`` is no label) and the feedback note are not facts; the shipping-rates link goes."""
    item = page_item(url, "amazon/book_product_details_table.html")
    assert item.product_id == "amazon:1000000039"
    assert item.title == "Crawling in Practice: Scrapers That Survive Real Pages"
    assert item.specs == BOOK


def test_amazon_prod_details_label_value_rows_and_technical_specifications():
    item = page_item("https://www.amazon.com/dp/B0TESTKT17", "amazon/electronics_prod_details.html")
    assert item.product_id == "amazon:B0TESTKT17" and item.price == 12.99
    assert item.specs == [("Display", "2.4 inches LCD"), ("Maximum Time", "99 minutes 59 seconds"), ("Alarm Volume", "85 dB"),
                          ("Item Weight", "5.3 ounces"), ("Product Dimensions", "4.7 x 2.6 x 0.4 inches"),
                          ("Item model number", "KT-2017"), ("Batteries", "1 AAA batteries required. (included)"),
                          ("ASIN", "B0TESTKT17"), ("Shipping Weight", "7.2 ounces"), ("Date First Available", "March 8, 2017")]


RLM, LRM = "\u200f", "\u200e"


@pytest.mark.parametrize("container", [
    '<div id="detail-bullets"><div class="content"><ul>{}</ul></div></div>',
    '<table id="productDetailsTable"><tr><td class="bucket"><div class="content"><ul>{}</ul></div></td></tr></table>',
    '<div id="detail_bullets_id"><div class="content"><ul>{}</ul></div></div>',
    '<div id="detailBullets_feature_div"><ul class="a-unordered-list a-nostyle a-vertical">{}</ul></div>',
    '<div id="technical-data"><h2>Technical Details</h2><div class="content"><ul>{}</ul></div></div>',
], ids=["detail-bullets", "productDetailsTable", "detail_bullets_id", "detailBullets_feature_div", "technical-data"])
@pytest.mark.parametrize("label", [
    "<b>{}:</b> {}",
    "<b>{}</b>: {}",
    "<strong>{}:</strong>{}",
    '<span class="a-list-item"><span class="a-text-bold">{} ' + RLM + " : " + LRM + "</span> <span>{}</span></span>",
    '<span class="a-list-item"><span class="a-text-bold">{}\n&rlm;\n:\n&lrm;\n</span> <span>{}</span></span>',
    "{}: {}",
], ids=["b-colon-inside", "b-colon-after", "strong-no-space", "a-text-bold-marks", "a-text-bold-entities", "no-label"])
def test_amazon_detail_bullet_containers_and_label_styles(container, label):
    items = "".join(f"<li>{label.format(k, v)}</li>" for k, v in (("Item model number", "X-1"), ("Department", "Unisex")))
    items += "<li>Ships from <b>Seattle</b> warehouse</li><li><b>Best Sellers Rank:</b> #7 in Clothing</li>"
    body = ('<html><body><span id="productTitle">Rain Jacket</span><input type="hidden" id="ASIN" value="B0TESTJAC1">'
            f"{container.format(items)}</body></html>")
    response = HtmlResponse("https://www.amazon.com/dp/B0TESTJAC1", body=body.encode(), encoding="utf-8")
    item = AdapterChooser()(response.url, response).product(response, read_page(response.text, response.url)).normalised()
    assert item.specs == [("Item model number", "X-1"), ("Department", "Unisex")]


def test_amazon_oldest_title_and_asin_input_still_give_the_product_and_its_facts():
    """Pages older still name the product in ``#btAsinTitle`` and carry the ASIN in an input with a
    name but no id: the page is still a product, with its title and its detail bullets."""
    def older(text):
        return (text.replace('<span id="productTitle" class="a-size-large">', '<span id="btAsinTitle">')
                .replace('<input type="hidden" id="ASIN" name="ASIN"', '<input type="hidden" name="ASIN"'))
    item = edited_item("https://www.amazon.com/gp/product/1000000039", "amazon/book_product_details_table.html", older)
    assert item.product_id == "amazon:1000000039"
    assert item.title == "Crawling in Practice: Scrapers That Survive Real Pages"
    assert item.specs == BOOK

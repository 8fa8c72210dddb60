"""Amazon product pages (``/dp/<ASIN>``): no schema.org Product, so everything comes from the HTML.

- title ``#productTitle`` (the oldest layout: ``#btAsinTitle``); id the ``ASIN`` input (by id or name); seller the ``merchantID`` input;
- price: the core price block (``.a-offscreen``), else the ``priceAmount`` in the page JSON;
- images: the ``colorImages.initial`` list of the ``ImageBlockATF`` script (``hiRes``, else
  ``large``), else the landing image;
- breadcrumb: ``#wayfinding-breadcrumbs_feature_div``;
- specs: the rows of the product-details tables, in page order (``prodDetTable``,
  ``#productDetails_techSpec_section_*``, ``#productDetails_detailBullets_sections1``,
  ``#technicalSpecifications_section_*``, and the older ``#prodDetails`` tables of
  ``td.label``/``td.value`` rows), then the detail bullets for properties the tables lack:
  ``#detailBullets_feature_div`` (``<span class="a-text-bold">Publisher &rlm; : &lrm;</span>``)
  and the older ``#detail-bullets*``, ``#detail_bullets*``, ``#productDetailsTable`` and
  ``#technical-data`` lists (``<li><b>ISBN-10:</b> 1937785734</li>``), label marks and colons
  stripped; else the ``#productOverview`` table. Rows that are not facts about the product are
  left out: the customer reviews (a stars widget and a count), the Best Sellers Rank (dropped,
  not shortened: a sales position that changes daily, whose ladder of categories repeats the
  breadcrumb), the feedback and shipping-policy rows; a "(View shipping rates and policies)"
  link goes from a shipping weight. Recommendation carousels are never specs;
- videos: the "Videos for this product" carousel items whose ``data-product-asin`` is this
  ASIN. Their player URL is an HLS playlist, which is not one downloadable file, so the media
  URL is the item's MP4 rendition (``data-video-previews``) and the playlist goes in
  ``media.meta`` (``hls``), with the video's title. Sponsored videos of other products are
  left out.
"""

from __future__ import annotations

import json
import re

from ..generic_product import parse_price
from .base import SiteAdapter, merge_specs, script_json

# labels of detail rows that are not facts about the product (see the module docstring)
_NOT_SPECS = re.compile(r"customer reviews?|best ?sellers? rank|sales rank|^feedback$|(domestic|international) shipping", re.I)
_SYMBOLS = {"$": "USD", "US$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR", "CA$": "CAD", "C$": "CAD", "A$": "AUD"}
_VISIBLE = ".//text()[not(ancestor::script) and not(ancestor::style)]"
_TITLE = "#productTitle, #btAsinTitle"
# the product-details tables (technical details, additional information), with or without the class
_TABLES = ("table.prodDetTable, table[id^='productDetails_techSpec_section_'], table#productDetails_detailBullets_sections1, "
           "table[id^='technicalSpecifications_section_'], #prodDetails table")
# the detail-bullet lists, newer (a-text-bold labels) and older (<b> labels) layouts
_BULLETS = ("#detailBullets_feature_div li, [id^='detail-bullets'] li, [id^='detail_bullets'] li, #productDetailsTable li, "
            "#technical-data li")
_LABEL = "(.//b|.//strong|.//*[contains(concat(' ', normalize-space(@class), ' '), ' a-text-bold ')])[1]"
_NO_TEXT = {"script", "style", "noscript", "template"}
_SPACES = re.compile(r"[\s\u200e\u200f]+")  # Amazon's direction marks (&lrm; &rlm;) read as spaces
_LINKS = re.compile(r"\s*\((?:View shipping rates and policies|See Top 100[^)]*|See all reviews)\)", re.I)
_PAIR = re.compile(r"^([^:：]{1,40}?)\s*[:：]\s*(.+)$")


def _area(size) -> float:
    try:
        return float(size[0]) * float(size[1])
    except (TypeError, ValueError, IndexError):
        return 0.0


def _visible_text(sel) -> str:
    return " ".join(t.strip() for t in sel.xpath(_VISIBLE).getall() if t.strip())


def _text(el, skip=frozenset()) -> str:
    """The text of an lxml element without scripts, styles and the elements in ``skip``; ``<br>``,
    direction marks and runs of whitespace as one space."""
    parts = [el.text or ""]
    for child in el:
        if child.tag == "br":
            parts.append(" ")
        elif isinstance(child.tag, str) and child.tag not in _NO_TEXT and child not in skip:
            parts.append(_text(child, skip))
        parts.append(child.tail or "")
    return _SPACES.sub(" ", "".join(parts)).strip()


def _fact(prop: str, value: str) -> tuple[str, str] | None:
    """A detail row as a spec pair: label colons gone, Amazon's link texts gone from the value;
    None for an empty row or one that is not a fact about the product."""
    prop, value = prop.strip(" :："), _LINKS.sub("", value.lstrip(" :：")).strip()
    return (prop, value) if prop and value and not _NOT_SPECS.search(prop) else None


def _row(tr) -> tuple[str, str] | None:
    """A details-table row: ``th``/``td``, or the older layout's ``td.label``/``td.value``."""
    th, td = tr.xpath("./th"), tr.xpath("./td")
    if th and td:
        return _fact(" ".join(_text(c) for c in th), " ".join(_text(c) for c in td))
    return _fact(_text(td[0]), _text(td[1])) if len(td) == 2 else None


def _bullet(li) -> tuple[str, str] | None:
    """A detail bullet: the label in its leading ``<b>``/``<strong>``/``.a-text-bold``, the rest of
    the item the value (a nested list, such as the rank's ladder of categories, is not read);
    without a label, the item's text split at its first colon."""
    nested = set(li.xpath(".//ul|.//ol"))
    text = _text(li, nested)
    label = [el for el in li.xpath(_LABEL) if not any(n in el.iterancestors() for n in nested)][:1]
    if label and text.startswith(_text(label[0]).rstrip(" :：")) and _text(label[0]):
        return _fact(_text(label[0]), _text(li, nested | set(label)))
    m = _PAIR.match(text)
    return _fact(m.group(1), m.group(2)) if m else None


class AmazonAdapter(SiteAdapter):
    name = "amazon"
    host_pattern = r"(.+\.)?amazon\.(com|ca|co\.uk|de|fr|it|es|co\.jp|in|com\.au|com\.mx|com\.br|nl|se|pl|sg|ae|sa|com\.tr|cn)"

    def is_product_page(self, response, page) -> bool:
        return bool(response.css(_TITLE) or response.css("input#ASIN, input[name=ASIN]"))

    def recognises(self, response) -> bool:
        text = response.text
        titled = 'id="productTitle"' in text or 'id="btAsinTitle"' in text
        return titled and any(m in text for m in ('id="ASIN"', 'name="ASIN"', "ImageBlockATF"))

    def parse(self, response, page, item) -> None:
        asin = response.css("input#ASIN::attr(value), input[name=ASIN]::attr(value)").get()
        if not asin:
            m = re.search(r"/(?:dp|gp/product)/([A-Z0-9]{10})", response.url)
            asin = m.group(1) if m else None
        if asin:
            item.source_id = asin.strip()
        title = _visible_text(response.css(_TITLE)[:1]) if response.css(_TITLE) else None
        if title:
            item.title = title
        self._price(response, item)
        merchant = response.css("input#merchantID::attr(value), input[name=merchantID]::attr(value)").get()
        if not merchant:
            m = re.search(r'"merchantId"\s*:\s*"([A-Z0-9]+)"', response.text)
            merchant = m.group(1) if m else None
        item.merchant_id = merchant or item.merchant_id
        images = self._images(response)
        if images:
            item.images = images
        crumbs = [t.strip() for t in response.css("#wayfinding-breadcrumbs_feature_div li a::text").getall() if t.strip()]
        self.fill(item, category_path=crumbs, specs=self._specs(response))
        self._videos(response, asin, item)

    def _price(self, response, item) -> None:
        for css in ("#corePrice_feature_div .a-offscreen::text", "#corePriceDisplay_desktop_feature_div .a-price .a-offscreen::text",
                    "#priceblock_ourprice::text", "#priceblock_dealprice::text", "#price_inside_buybox::text"):
            for text in response.css(css).getall():
                if (price := parse_price(text)) is not None:
                    item.price = price
                    symbol = re.match(r"\s*([^\d\s.,]+)", text)
                    item.currency = _SYMBOLS.get(symbol.group(1).strip()) if symbol else item.currency
                    return
        m = re.search(r'"priceAmount"\s*:\s*([0-9.]+)', response.text)
        if m:
            item.price = float(m.group(1))

    def _images(self, response) -> list[str]:
        text = response.text
        pos = text.find("'colorImages'")
        if pos == -1:
            pos = text.find('"colorImages"')
        entries = script_json(text[pos:pos + 200_000], "'initial':") if pos != -1 else None
        if entries is None and pos != -1:
            entries = script_json(text[pos:pos + 200_000], '"initial":')
        urls = []
        for entry in entries or []:
            if isinstance(entry, dict) and (url := entry.get("hiRes") or entry.get("large")):
                urls.append(url)
        if not urls:  # the landing image's own attributes; its src is often an inline data: placeholder
            for img in response.css("#landingImage, #imgBlkFront, #imgTagWrapperId img"):
                dynamic = img.attrib.get("data-a-dynamic-image")
                try:
                    sizes = json.loads(dynamic) if dynamic else {}
                except ValueError:
                    sizes = {}
                if isinstance(sizes, dict) and sizes:  # {"url": [width, height], ...}: the largest first
                    urls = sorted(sizes, key=lambda u: -_area(sizes[u]))
                    break
                for attr in ("data-old-hires", "src"):
                    value = (img.attrib.get(attr) or "").strip()
                    if value and not value.startswith("data:"):
                        urls = [value]
                        break
                if urls:
                    break
        return [u for u in urls if isinstance(u, str) and not u.strip().startswith("data:")]

    def _specs(self, response) -> list[tuple[str, str]]:
        """The product-details tables (every row, as the page lists it), then the detail bullets
        for properties the tables lack; the overview table only when both are missing. Carousels
        ("Customers who bought...", sponsored products) are never read: their entries are other
        products, and only the named detail blocks are."""
        rows = [_row(tr) for tr in (sel.root for sel in response.css(_TABLES).xpath("./tr|./tbody/tr"))]
        lists = [sel.root for sel in response.css(_BULLETS)]
        inner = set(lists)
        # an item inside another (the rank's ladder of categories) is part of that item
        bullets = [_bullet(li) for li in lists if not any(a in inner for a in li.iterancestors())]
        specs = merge_specs([r for r in rows if r], [b for b in bullets if b])
        if not specs:
            for row in response.css("#productOverview_feature_div tr"):
                cells = row.css("td")
                if len(cells) >= 2:
                    specs.append((_visible_text(cells[0]), _visible_text(cells[1])))
        return specs

    def _videos(self, response, asin: str | None, item) -> None:
        for node in response.css("[data-video-url]"):
            product_asin = node.attrib.get("data-product-asin")
            if asin and product_asin and product_asin != asin:
                continue
            hls = node.attrib.get("data-video-url", "").strip()
            url = hls if re.search(r"\.mp4($|\?)", hls) else None
            previews = node.attrib.get("data-video-previews", "")
            if url is None:
                mp4s = [p for p in previews.split(",") if p.startswith("http") and ".mp4" in p]
                url = mp4s[-1] if mp4s else None
            if url:
                url = response.urljoin(url)
                item.videos.append(url)
                meta = {"title": node.attrib.get("data-title"), "duration": node.attrib.get("data-formatted-duration")}
                if hls and hls != url:
                    meta["hls"] = hls
                item.media_meta[url] = {k: v for k, v in meta.items() if v}

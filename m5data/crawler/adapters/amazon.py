"""Amazon product pages (``/dp/<ASIN>``): no schema.org Product, so everything comes from the HTML.

- title ``#productTitle``; id the ``ASIN`` input; seller the ``merchantID`` input;
- price: the core price block (``.a-offscreen``), else the ``priceAmount`` in the page JSON;
- images: the ``colorImages.initial`` list of the ``ImageBlockATF`` script (``hiRes``, else
  ``large``), else the landing image;
- breadcrumb: ``#wayfinding-breadcrumbs_feature_div``;
- specs: the rows of the product-details tables (``prodDetTable``, ``#productDetails_techSpec_section_1``,
  ``#productDetails_detailBullets_sections1``), then the ``#detailBullets_feature_div`` list
  (books: ``Publisher &rlm; : &lrm; O'Reilly``, marks and colon stripped) for properties the
  tables lack, else the ``#productOverview`` table; review and rank rows are left out (they
  describe sales, not the product); recommendation carousels are never specs;
- videos: the "Videos for this product" carousel items whose ``data-product-asin`` is this
  ASIN. Their player URL is an HLS playlist, which is not one downloadable file, so the media
  URL is the item's MP4 rendition (``data-video-previews``) and the playlist goes in
  ``media.meta`` (``hls``), with the video's title. Sponsored videos of other products are
  left out.
"""

from __future__ import annotations

import json
import re

from ..extraction import parse_price
from .base import SiteAdapter, script_json

_NOT_SPECS = {"customer reviews", "best sellers rank"}
_SYMBOLS = {"$": "USD", "US$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR", "CA$": "CAD", "C$": "CAD", "A$": "AUD"}
_VISIBLE = ".//text()[not(ancestor::script) and not(ancestor::style)]"
# the product-details tables (technical details, additional information), with or without the class
_TABLES = ("table.prodDetTable, table#productDetails_techSpec_section_1, table#productDetails_techSpec_section_2, "
           "table#productDetails_detailBullets_sections1")


def _area(size) -> float:
    try:
        return float(size[0]) * float(size[1])
    except (TypeError, ValueError, IndexError):
        return 0.0


def _key(text: str) -> str:
    """A detail label without Amazon's direction marks and colon (``Publisher &rlm; : &lrm;``)."""
    return text.replace("\u200f", " ").replace("\u200e", " ").strip().rstrip(":：").strip()


def _visible_text(sel) -> str:
    return " ".join(t.strip() for t in sel.xpath(_VISIBLE).getall() if t.strip())


class AmazonAdapter(SiteAdapter):
    name = "amazon"
    host_pattern = r"(.+\.)?amazon\.(com|ca|co\.uk|de|fr|it|es|co\.jp|in|com\.au|com\.mx|com\.br|nl|se|pl|sg|ae|sa|com\.tr|cn)"

    def is_product_page(self, response, page) -> bool:
        return bool(response.css("#productTitle") or response.css("input#ASIN"))

    def recognises(self, response) -> bool:
        text = response.text
        return 'id="productTitle"' in text and ('id="ASIN"' in text or "ImageBlockATF" in text)

    def parse(self, response, page, item) -> None:
        asin = response.css("input#ASIN::attr(value), input[name=ASIN]::attr(value)").get()
        if not asin:
            m = re.search(r"/(?:dp|gp/product)/([A-Z0-9]{10})", response.url)
            asin = m.group(1) if m else None
        if asin:
            item.source_id = asin.strip()
        title = _visible_text(response.css("#productTitle")) if response.css("#productTitle") else None
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
        if crumbs:
            item.category_path = crumbs
        specs = self._specs(response)
        if specs:
            item.specs = specs
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
        """The product-details tables, then the detail bullets for properties the tables lack; the
        overview table only when both are missing. Carousels ("Customers who bought...", sponsored
        products) are never read: their entries are other products."""
        specs = []
        for row in response.css(_TABLES).xpath("./tr|./tbody/tr"):
            prop = _visible_text(row.css("th"))
            value = _visible_text(row.css("td"))
            if prop and value and _key(prop).lower() not in _NOT_SPECS:
                specs.append((prop, value))
        have = {_key(p).lower() for p, _ in specs}
        for li in response.css("#detailBullets_feature_div li"):
            parts = [t for t in (_key(x) if i == 0 else x.strip() for i, x in enumerate(li.xpath(_VISIBLE).getall())) if t]
            if len(parts) >= 2 and parts[0].lower() not in _NOT_SPECS | have:
                have.add(parts[0].lower())
                specs.append((parts[0], " ".join(parts[1:])))
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

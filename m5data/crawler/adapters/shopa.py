"""The demo shop's ``shopa`` platform (a Tmall-like template; see docs/demo-shop.md).

No schema.org: title ``<h1>`` in ``.tb-detail-hd``; price ``.tm-price`` (CNY); seller
``data-seller-id``; breadcrumb ``#J_Breadcrumb``; specs in ``table.tm-tableAttr`` (``th``/``td``
rows, group header rows skipped) or ``dl.tb-attrs`` (``dt``/``dd``); images and the video URL in
the JSON object passed to ``TShop.Setup(...)`` in a script (the thumbnail list as fallback).
"""

from __future__ import annotations

import re

from .base import SiteAdapter, script_json

_VISIBLE = "normalize-space(string(.))"


class ShopAAdapter(SiteAdapter):
    name = "shopa"

    generic_specs = False  # the template's spec table is the whole truth (none on a page without one)

    def recognises(self, response) -> bool:
        # the demo shop's own seller domain: a real Tmall page (same template) is the tmall adapter's
        text = response.text
        return "TShop.Setup(" in text and 'id="detail"' in text and ".shopa.example.invalid" in text

    def is_product_page(self, response, page) -> bool:
        return "TShop.Setup(" in response.text or bool(response.css("#detail[data-item-id]"))

    def parse(self, response, page, item) -> None:
        setup = script_json(response.text, "TShop.Setup(")
        setup = setup if isinstance(setup, dict) else {}
        info = setup.get("itemDO") or {}
        source_id = response.css("#detail::attr(data-item-id)").get() or info.get("itemId")
        if not source_id and (m := re.search(r"/item/(\d+)\.html", response.url)):
            source_id = m.group(1)
        item.source_id = str(source_id or item.source_id)
        # the <title> fallback of the generic layer would read "tmall.com天猫" on a page without a title
        item.title = response.css(".tb-detail-hd h1").xpath(_VISIBLE).get() or info.get("title") or None
        price = response.css(".tm-price::text").get() or info.get("reservePrice")
        if price:
            from ..generic_product import parse_price

            item.price, item.currency = parse_price(price), "CNY"
        item.merchant_id = response.css(".slogo-shopname::attr(data-seller-id)").get() or info.get("sellerId") or item.merchant_id
        item.category_path = [t for t in (a.xpath(_VISIBLE).get() for a in response.css("#J_Breadcrumb a")) if t]
        images = (setup.get("propertyPics") or {}).get("default") or response.css("#J_UlThumb img::attr(src)").getall()
        item.images = [response.urljoin(u) for u in images if u]
        video = setup.get("video") or {}
        if video.get("videoUrl"):
            url = response.urljoin(video["videoUrl"])
            item.videos = [url]
            item.media_meta[url] = {k: video[k] for k in ("videoId", "duration") if k in video}
        specs = []
        for row in response.css("table.tm-tableAttr tbody tr"):
            th, td = row.css("th"), row.css("td")
            if th and td and not th.attrib.get("colspan"):
                specs.append((th[0].xpath("string(.)").get(), td[0].xpath("string(.)").get()))
        if not specs:
            for dt in response.css("dl.tb-attrs dt"):
                dd = dt.xpath("following-sibling::dd[1]")
                if dd:
                    specs.append((dt.xpath("string(.)").get(), dd[0].xpath("string(.)").get()))
        item.specs = specs

"""The demo shop's ``shopb`` platform (a JD-like template; see docs/demo-shop.md).

Publishes schema.org ``Product`` and ``BreadcrumbList`` JSON-LD, so the generic layer reads id,
title, images, price, seller, breadcrumb and video (``subjectOf`` VideoObject). The adapter adds
the spec list, ``<li>属性：值</li>`` items of ``#parameter-brand`` and ``ul.parameter2``, and reads
the title from ``.sku-name`` when the JSON-LD has none (never the ``<title>``, which carries the
site's suffix).
"""

from __future__ import annotations

import re

from .base import SiteAdapter

_SEP = re.compile(r"[：:]")


class ShopBAdapter(SiteAdapter):
    name = "shopb"

    generic_specs = False  # the template's spec lists are the whole truth (none on a page without them)

    def recognises(self, response) -> bool:
        # the demo shop's own mall domain: a real JD page (same template) is the jd adapter's
        text = response.text
        return "var pageConfig = {product:" in text and ".shopb.example.invalid" in text

    def parse(self, response, page, item) -> None:
        names = [p.get("name") for p in (page.products if page else []) if p.get("name")]
        item.title = names[0] if names else (response.css(".sku-name").xpath("normalize-space(string(.))").get() or None)
        if not item.merchant_id:
            item.merchant_id = response.css(".J-hove-wrap::attr(data-vender-id)").get()
        if not item.images:
            item.images = [response.urljoin(u) for u in response.css("#spec-list img::attr(data-url)").getall()]
        if not item.videos:
            item.videos = [response.urljoin(u) for u in response.css("video source::attr(src)").getall()]
        specs = []
        for li in response.css("#parameter-brand li, ul.parameter2 li"):
            text = li.xpath("string(.)").get() or ""
            parts = _SEP.split(text, maxsplit=1)
            if len(parts) == 2:
                specs.append((parts[0], parts[1]))
        item.specs = specs
        item.currency = item.currency or "CNY"

"""AliExpress item pages: the whole item is a JSON payload, not HTML.

An item page carries it in a script (``window.runParams = {data: {...}}``); the same payload is
what the page's data endpoint returns as JSON. Both are read. In saved payloads, arrays may
appear as objects keyed ``"0"``, ``"1"``...; both shapes are read.

- id ``productInfoComponent.idStr``; title ``productInfoComponent.subject``;
- price: the lowest price shown to the visitor (``priceComponent.discountPrice`` when a
  discount runs, else ``origPrice``) in the visitor's currency, else ``minPrice`` in the base
  currency;
- images ``imageComponent.imagePathList`` (full size); breadcrumb
  ``breadcrumbComponent.pathList`` names (raw, all levels); seller ``sellerComponent.storeNum``;
- specs ``productPropComponent.props`` (``attrName``, ``attrValue``) in page order;
- video: the payload names the video only by ``videoUid`` + ``videoId``
  (``videoComponent``, formerly ``imageComponent``); its URL is AliExpress's public play URL
  ``https://video.aliexpress-media.com/play/u/ae_sg_item/<uid>/p/1/e/6/t/10301/<id>.mp4``,
  the ids kept in ``media.meta``.
"""

from __future__ import annotations

import json

from ..jsobject import js_assignments
from .base import SiteAdapter, script_json

VIDEO_URL = "https://video.aliexpress-media.com/play/u/ae_sg_item/{uid}/p/1/e/6/t/10301/{vid}.mp4"


def _seq(value) -> list:
    """A JSON array, or an object keyed "0", "1", ... (arrays as saved by some tools), as a list."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    return []


def payload(response) -> dict | None:
    """The item payload's ``data`` object, from a JSON body or an item page's script (JSON, or a
    JavaScript object read tolerantly: unquoted keys, single quotes, trailing commas)."""
    text = response.text
    value = None
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
    if value is None:
        value = script_json(text, "window.runParams")
        if not (isinstance(value, dict) and "data" in value):
            value = None
            pos = text.find("window.runParams")
            if pos != -1:
                for _, found in js_assignments(text[pos:], ("runParams",)):
                    value = found
                    break
    data = value.get("data") if isinstance(value, dict) else None
    if isinstance(data, dict) and ("productInfoComponent" in data or "titleModule" in data):
        return data
    return None


class AliExpressAdapter(SiteAdapter):
    name = "aliexpress"
    host_pattern = r"(.+\.)?aliexpress\.(com|ru|us)"

    _last: tuple[object, dict | None] = (None, None)

    def _payload(self, response) -> dict | None:
        if self._last[0] is not response:  # is_product_page and parse read the same page: decode once
            self._last = (response, payload(response))
        return self._last[1]

    def is_product_page(self, response, page) -> bool:
        return self._payload(response) is not None

    generic_specs = False  # the payload's spec list is the item's; the page's HTML is an empty shell

    def recognises(self, response) -> bool:
        text = response.text
        return ("window.runParams" in text or '"productInfoComponent"' in text[:500_000] or '"titleModule"' in text[:500_000]) \
            and self.is_product_page(response, None)

    def parse(self, response, page, item) -> None:
        data = self._payload(response)
        if data is None:
            item.problems.append("no AliExpress item payload")
            return
        if "productInfoComponent" not in data:
            self._parse_modules(response, data, item)
            return
        info = data.get("productInfoComponent") or {}
        item.source_id = str(info.get("idStr") or info.get("id") or item.source_id)
        item.title = info.get("subject") or (data.get("metaDataComponent") or {}).get("title") or item.title
        self._price(data, info, item)
        images = _seq((data.get("imageComponent") or {}).get("imagePathList"))
        if images:
            item.images = [response.urljoin(u) for u in images if isinstance(u, str)]
        crumbs = [c.get("name") for c in _seq((data.get("breadcrumbComponent") or {}).get("pathList")) if isinstance(c, dict)]
        if any(crumbs):
            item.category_path = [c for c in crumbs if c]
        seller = data.get("sellerComponent") or {}
        if seller.get("storeNum") is not None:
            item.merchant_id = str(seller["storeNum"])
        props = _seq((data.get("productPropComponent") or {}).get("props"))
        item.specs = [(p.get("attrName"), p.get("attrValue")) for p in props if isinstance(p, dict)]
        for source in (data.get("videoComponent"), data.get("imageComponent")):
            if isinstance(source, dict) and source.get("videoUid") and source.get("videoId"):
                url = VIDEO_URL.format(uid=source["videoUid"], vid=source["videoId"])
                item.videos.append(url)
                item.media_meta[url] = {"video_uid": str(source["videoUid"]), "video_id": str(source["videoId"])}
                break

    @staticmethod
    def _parse_modules(response, data: dict, item) -> None:
        """The older payload: ``titleModule``, ``imageModule``, ``priceModule``, ``specsModule``,
        ``crossLinkModule.breadCrumbPathList``, ``storeModule`` (ids in ``actionModule`` /
        ``commonModule`` / ``pageModule``)."""
        def module(name: str) -> dict:
            value = data.get(name)
            return value if isinstance(value, dict) else {}

        for name in ("actionModule", "commonModule", "pageModule", "titleModule", "storeModule"):
            pid = module(name).get("productId")
            if pid:
                item.source_id = str(pid)
                break
        item.title = module("titleModule").get("subject") or module("pageModule").get("title") or item.title
        prices = module("priceModule")
        for amount in (prices.get("minActivityAmount"), prices.get("minAmount")):
            if isinstance(amount, dict) and isinstance(amount.get("value"), (int, float)):
                item.price, item.currency = float(amount["value"]), amount.get("currency")
                break
        else:
            from ..generic_product import parse_price

            for text in (prices.get("formatedActivityPrice"), prices.get("formatedPrice")):
                if (price := parse_price(text)) is not None:
                    item.price = price
                    break
        images = module("imageModule")
        paths = _seq(images.get("imagePathList"))
        if paths:
            item.images = [response.urljoin(u) for u in paths if isinstance(u, str)]
        crumbs = [c.get("name") for c in _seq(module("crossLinkModule").get("breadCrumbPathList")) if isinstance(c, dict)]
        if any(crumbs):
            item.category_path = [c for c in crumbs if c]
        store = module("storeModule")
        if store.get("storeNum") is not None:
            item.merchant_id = str(store["storeNum"])
        props = _seq(module("specsModule").get("props"))
        item.specs = [(p.get("attrName"), p.get("attrValue")) for p in props if isinstance(p, dict)]
        for source in (module("videoModule"), images):
            if source.get("videoUid") and source.get("videoId"):
                url = VIDEO_URL.format(uid=source["videoUid"], vid=source["videoId"])
                item.videos.append(url)
                item.media_meta[url] = {"video_uid": str(source["videoUid"]), "video_id": str(source["videoId"])}
                break

    @staticmethod
    def _price(data: dict, info: dict, item) -> None:
        prices = data.get("priceComponent") or {}
        for amount in ((prices.get("discountPrice") or {}).get("minActivityAmount"),
                       (prices.get("origPrice") or {}).get("minAmount")):
            if isinstance(amount, dict) and isinstance(amount.get("value"), (int, float)):
                item.price, item.currency = float(amount["value"]), amount.get("currency")
                return
        if isinstance(info.get("minPrice"), (int, float)):
            item.price = float(info["minPrice"])
            item.currency = (data.get("currencyComponent") or {}).get("baseCurrencyCode")

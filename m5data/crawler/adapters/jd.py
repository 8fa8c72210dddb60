"""JD item pages (``item.jd.com/<sku>.html``) and their payloads (``jd``).

- payload: ``var pageConfig = {product: {...}}`` (a JavaScript object: single quotes, unquoted
  keys): ``skuid``, ``name``, ``src`` / ``imageList`` (``jfs/...`` paths on JD's image CDN),
  ``venderId`` / ``shopId``, ``cat``, ``mainVideoId`` / ``imageAndVideoJson``, ``videoPath``;
  the mobile page's ``window._itemOnly`` / ``window._itemInfo`` (``item.skuName``, ``item.image``,
  ``price.p``) too, and the same objects served as a ``.js`` or JSON response;
- HTML: title ``.sku-name`` (label images left out); price ``.p-price .price`` / ``.J-p-<sku>``
  (JD fills it in by script: empty on a page saved before that ran); images ``#spec-img``
  (``data-origin``) then ``#spec-list`` (``data-url`` / ``src``, thumbnail size dirs ``/n5/``,
  ``s54x54_`` mapped to the ``/n1/`` image); breadcrumb ``.crumb > .item > a`` (the category
  levels; the brand drop-down and the product name are not levels); specs ``#parameter-brand li``
  and ``.parameter2 li`` (``key：value``, the full value from the ``title`` attribute), then the
  ``.Ptable`` groups (``dl``/``dt``/``dd``, help-text ``dd.Ptable-tips`` skipped; or the older
  ``table.Ptable`` rows) for properties the lists lack; video ``<video>`` sources or a
  ``videoPath`` / ``mainVideoUrl`` URL (its id in ``media.meta``).
"""

from __future__ import annotations

import re

from ..generic_product import parse_price
from .base import SiteAdapter, absolute, find, html_of, payloads

IMAGE_BASE = "https://img14.360buyimg.com/n1/"
_JD_IMAGE = re.compile(r"^(?:https?:)?//img\d*\.360buyimg\.com/(?:n\d+|imgzone|popWaterMark)/(?:s\d+x\d+_)?(jfs/.+)$", re.I)
_SEP = re.compile(r"\s*[:：]\s*")
_MARKERS = ("pageConfig", "_itemOnly", "360buyimg.com", "parameter2", "jd.com", "jfs/t")
_VISIBLE = "normalize-space(string(.))"


def jd_image(response, url) -> str | None:
    """A JD image as its ``/n1/`` (page-size) URL: ``jfs/...`` paths and thumbnails mapped to it."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if url.startswith("jfs/"):
        return IMAGE_BASE + url
    if m := _JD_IMAGE.match(url):
        return IMAGE_BASE + m.group(1)
    return absolute(response, url)


class JDAdapter(SiteAdapter):
    name = "jd"
    host_pattern = r"(.+\.)?(jd\.com|jd\.hk|360buy\.com)"

    def recognises(self, response) -> bool:
        text = response.text[:3_000_000]
        return ("pageConfig" in text or "_itemOnly" in text) and any(m in text for m in _MARKERS[2:]) \
            and self.is_product_page(response, None)

    def _product(self, response) -> dict:
        values = [v for _, v in payloads(response)]
        product = find(values, "product", lambda v: isinstance(v, dict) and ("skuid" in v or "name" in v)) or {}
        mobile = find(values, "item", lambda v: isinstance(v, dict) and ("skuName" in v or "skuId" in v)) or {}
        price = find(values, "price", lambda v: isinstance(v, dict) and "p" in v) or {}
        return {"product": product, "mobile": mobile, "price": price}

    def is_product_page(self, response, page) -> bool:
        data = self._product(response)
        return bool(data["product"] or data["mobile"] or html_of(response).css(".sku-name") or (page is not None and page.is_product_page))

    def parse(self, response, page, item) -> None:
        data = self._product(response)
        product, mobile = data["product"], data["mobile"]
        sku = product.get("skuid") or mobile.get("skuId") or (m.group(1) if (m := re.search(r"/(\d+)\.html", response.url)) else None)
        if sku:
            item.source_id = str(sku)
        title = html_of(response).css(".sku-name").xpath(_VISIBLE).get()
        item.title = (title or "").strip() or product.get("name") or mobile.get("skuName") or item.title
        prices = [html_of(response).css(".p-price .price::text, .summary-price .price::text").get(),
                  html_of(response).css(f".J-p-{sku}::text").get() if sku else None, data["price"].get("p"),
                  data["price"].get("op"), product.get("price")]
        for value in prices:
            if value is not None and (price := parse_price(value)) is not None and price > 0:
                item.price, item.currency = price, "CNY"
                break
        item.currency = item.currency or "CNY"
        vendor = product.get("venderId") or product.get("shopId") or mobile.get("venderID") or mobile.get("venderId")
        if vendor:
            item.merchant_id = str(vendor)
        self._images(response, product, mobile, item)
        crumbs = [t for t in (a.xpath(_VISIBLE).get() for a in html_of(response).css(".crumb > .item > a")) if t and t.strip()]
        self.fill(item, category_path=crumbs, specs=self._specs(response))
        self._videos(response, product, item)

    @staticmethod
    def _images(response, product, mobile, item) -> None:
        urls = []
        main = html_of(response).css("#spec-img::attr(data-origin), #spec-img::attr(src)").get()
        if main:
            urls.append(main)
        for img in html_of(response).css("#spec-list img"):
            urls.append(img.attrib.get("data-url") or img.attrib.get("src"))
        if not urls:
            urls = list(product.get("imageList") or []) or ([product["src"]] if product.get("src") else []) \
                or list(mobile.get("image") or [])
        found = [u for u in (jd_image(response, u) for u in urls) if u]
        if found:
            item.images = found

    @staticmethod
    def _specs(response) -> list[tuple[str, str]]:
        specs = []
        for li in html_of(response).css("#parameter-brand li, ul.parameter2 li, .p-parameter-list li"):
            text = (li.xpath("string(.)").get() or "").replace("\xa0", " ").strip()
            parts = _SEP.split(text, maxsplit=1)
            if len(parts) == 2 and parts[0].strip():
                title = (li.attrib.get("title") or "").strip()
                specs.append((parts[0], title if title and len(title) >= len(parts[1].strip()) else parts[1]))
        have = {k.strip(":： ") for k, _ in specs}
        table = []
        for dl in html_of(response).css(".Ptable dl, .Ptable-item dl"):
            for dt in dl.css("dt"):
                dd = dt.xpath("following-sibling::dd[not(contains(@class, 'Ptable-tips'))][1]")
                if dd:
                    table.append((dt.xpath(_VISIBLE).get(), dd[0].xpath(_VISIBLE).get()))
        for row in html_of(response).css("table.Ptable tr"):
            cells = row.css("td")
            if len(cells) == 2:
                table.append((cells[0].xpath(_VISIBLE).get(), cells[1].xpath(_VISIBLE).get()))
        seen = set()
        for k, v in table:
            key = (k or "").strip(":： ")
            if key and key not in have and key not in seen:
                seen.add(key)
                specs.append((k, v))
        return specs

    @staticmethod
    def _videos(response, product, item) -> None:
        video_json = product.get("imageAndVideoJson") if isinstance(product.get("imageAndVideoJson"), dict) else {}
        video_id = product.get("mainVideoId") or video_json.get("mainVideoId")
        urls = html_of(response).css("video source::attr(src), video::attr(src)").getall()
        for key in ("videoPath", "mainVideoUrl", "videoUrl"):
            value = product.get(key) or video_json.get(key)
            if isinstance(value, str) and re.search(r"\.(mp4|m3u8)(\?|$)", value):
                urls.append(value)
        for url in dict.fromkeys(filter(None, (absolute(response, u) for u in urls))):
            item.videos.append(url)
            if video_id:
                item.media_meta[url] = {"video_id": str(video_id)}

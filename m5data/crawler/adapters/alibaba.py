"""Taobao and Tmall item pages and payloads (``taobao``, ``tmall``): one reader, two platforms.

What a page or response carries, in the order read (the first that gives a field wins):

- script payloads (``var _DATA_Detail = {...}``, ``var _DATA_Mdskip = {...}``, ``var g_config =
  {...}``, ``TShop.Setup({...})``) and JSON/JS responses (the mtop ``mtop.taobao.detail.getdetail``
  answer, JSONP ``mtopjsonp1({...})``, a ``.js`` file), read with the tolerant parser in
  ``jsobject.py``; JSON held in strings (``apiStack[].value``, ``mockData``) is decoded too:
  - H5 detail: ``item`` (``itemId``, ``title``, ``images``, ``videos``), ``props.groupProps``
    (``[{"基本信息": [{"品牌": "X"}, ...]}]``), ``seller`` (``userId``, ``shopType``), the price's
    ``priceText``;
  - older Tmall PC: ``itemDO`` (``itemId``, ``title``, ``reservePrice``, ``userId``, ``mainPic``:
    the main image, a bare image id such as ``i1/123/TB1x.jpg`` on ``img.alicdn.com/bao/uploaded/``),
    ``newProGroup`` (``[{groupName, attrs: [{name, value}]}]``), ``propertyPics.default``,
    ``valItemInfo.skuMap`` prices, ``imgVedioUrl`` / ``imgVedioID``;
  - older Taobao PC: ``g_config.idata.item`` (``id``, ``title``, ``pic``, ``auctionImages``);
- HTML: title ``.tb-detail-hd h1`` / ``.tb-main-title``; price ``.tm-promo-price .tm-price``,
  ``#J_PromoPriceNum``, ``.tm-price``, ``#J_StrPrice .tb-rmb-num``; images ``#J_UlThumb`` /
  ``.tb-thumb`` (thumbnail size suffix removed) and ``#J_ImgBooth``; specs ``ul.attributes-list
  li`` / ``#J_AttrUL li`` (``品牌:&nbsp;X``, the full value from the ``title`` attribute) and
  ``table.tm-tableAttr``; breadcrumb ``#J_Breadcrumb``, ``.tm-breadcrumb``, ``#J_CrumbSlideCon``.

Platform: ``tmall`` when the host is Tmall's or the data says so (``seller.shopType`` B,
``isTmall``, ``itemDO``, a Tmall template), else ``taobao`` (a Tmall item served through Taobao's
H5 API is a Tmall product). Images and videos on ``//`` URLs become https.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from ..generic_product import parse_price
from .base import SiteAdapter, absolute, find, html_of, merge_specs, payloads, walk

_SIZE_SUFFIX = re.compile(r"(\.(?:jpe?g|png|gif|webp))_[^/?#]+$", re.I)
_VIDEO_URL = re.compile(r"\.(?:mp4|m3u8|swf)(?:\?|$)", re.I)
_SEP = re.compile(r"\s*[:：]\s*")
IMAGE_HOST = "https://img.alicdn.com/bao/uploaded/"  # where a payload's bare image ids live
_BARE_IMAGE = re.compile(r"^(?:i\d+/\d+/)?[\w!~.-]+\.(?:jpe?g|png|gif|webp)$", re.I)
_TMALL_MARKERS = ("TShop.Setup(", 'id="J_AttrUL"', 'class="tm-price"', '"itemDO"', "newProGroup", "detail.tmall.com",
                  '"isTmall":true', "isTmall: true", "tm-detail-meta")
_TAOBAO_MARKERS = ("g_config", "tb-main-title", "attributes-list", "J_UlThumb", "_DATA_Detail", "mtop.taobao.detail",
                   '"groupProps"', "item.taobao.com")
_VISIBLE = "normalize-space(string(.))"


def payload_image(response, url) -> str | None:
    """A payload's image as a URL: a bare image id (``TB1x.jpg``, ``i1/123/TB1x.jpg``, as older
    payloads write ``mainPic``) on Taobao's image host, ``//`` as https, else against the page."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if _BARE_IMAGE.match(url):
        return IMAGE_HOST + url
    return absolute(response, url)


def full_size(url: str) -> str:
    """An alicdn image URL without its thumbnail suffix (``x.jpg_60x60q90.jpg`` -> ``x.jpg``)."""
    return _SIZE_SUFFIX.sub(r"\1", url)


def group_props(value) -> list[tuple[str, str]]:
    """Spec pairs of an H5 ``groupProps`` list: ``[{"group": [{"key": "value"}, ...]}, ...]``."""
    pairs = []
    for group in value if isinstance(value, list) else [value]:
        if not isinstance(group, dict):
            continue
        for entries in group.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    pairs.extend((str(k), str(v)) for k, v in entry.items() if v not in (None, ""))
    return pairs


def pro_group(value) -> list[tuple[str, str]]:
    """Spec pairs of the PC ``newProGroup`` list: ``[{groupName, attrs: [{name, value}]}]``."""
    pairs = []
    for group in value if isinstance(value, list) else []:
        for attr in (group.get("attrs") or []) if isinstance(group, dict) else []:
            if isinstance(attr, dict) and attr.get("name") and attr.get("value") not in (None, ""):
                pairs.append((str(attr["name"]), str(attr["value"])))
    return pairs


class TaobaoAdapter(SiteAdapter):
    name = "taobao"
    host_pattern = r"(.+\.)?(taobao\.com|tb\.cn)"
    markers: tuple[str, ...] = _TAOBAO_MARKERS  # what in a page's text names this platform's template

    def recognises(self, response) -> bool:
        text = response.text[:3_000_000]
        return any(m in text for m in self.markers) and self.is_product_page(response, None)

    def is_product_page(self, response, page) -> bool:
        return bool(self._item(response) or self._html_title(response) or (page is not None and page.is_product_page))

    # ------------------------------------------------------------------ payload
    @staticmethod
    def _values(response) -> list:
        return [v for _, v in payloads(response)]

    def _item(self, response) -> dict:
        """The payload's item: H5 ``item``, PC ``itemDO`` or ``g_config.idata.item`` (merged, first wins)."""
        values = self._values(response)
        out: dict = {}
        for key in ("item", "itemDO"):
            node = find(values, key, lambda v: isinstance(v, dict) and ("title" in v or "itemId" in v or "auctionImages" in v))
            if node:
                out = {**node, **out}
        return out

    @staticmethod
    def _html_title(response) -> str | None:
        for css in (".tb-detail-hd h1", "h3.tb-main-title", ".tb-main-title", "[data-spm='1000983']"):
            sel = html_of(response).css(css)
            if sel:
                text = sel[0].attrib.get("data-title") or sel[0].xpath(_VISIBLE).get()
                if text and text.strip():
                    return text.strip()
        return None

    def is_tmall(self, response, values: list, item: dict) -> bool:
        host = (urlsplit(response.url).hostname or "").lower()
        if re.search(r"(^|\.)tmall\.(com|hk)$", host):
            return True
        seller = find(values, "seller", lambda v: isinstance(v, dict) and "shopType" in v) or {}
        if str(seller.get("shopType", "")).upper() == "B" or find(values, "isTmall", lambda v: v is True):
            return True
        if find(values, "itemDO", lambda v: isinstance(v, dict)) is not None:
            return True
        text = response.text[:3_000_000]
        return any(m in text for m in _TMALL_MARKERS[:3]) or "tmallDescUrl" in item

    # ------------------------------------------------------------------ parse
    def parse(self, response, page, item) -> None:
        values = self._values(response)
        data = self._item(response)
        item.platform = "tmall" if self.is_tmall(response, values, data) else "taobao"
        source_id = data.get("itemId") or data.get("id") or find(values, "itemId", lambda v: isinstance(v, (str, int)))
        if not source_id:
            query = parse_qs(urlsplit(response.url).query)
            source_id = (query.get("id") or [None])[0] or (m.group(1) if (m := re.search(r"/i(\d+)\.htm", response.url)) else None)
        if source_id:
            item.source_id = str(source_id)
        item.title = self._html_title(response) or data.get("title") or item.title
        if isinstance(item.title, str):
            item.title = item.title.strip()
        self._price(response, values, data, item)
        self._images(response, values, data, item)
        self._videos(response, values, item)
        seller = find(values, "seller", lambda v: isinstance(v, dict) and ("userId" in v or "shopId" in v)) or {}
        merchant = seller.get("userId") or seller.get("shopId") or data.get("userId") or data.get("sellerId") \
            or find(values, "sellerId", lambda v: isinstance(v, (str, int)))
        if merchant:
            item.merchant_id = str(merchant)
        crumbs = [t for t in (a.xpath(_VISIBLE).get() for a in html_of(response).css(
            "#J_Breadcrumb a, .tm-breadcrumb a, #J_CrumbSlideCon a, .breadcrumb a")) if t and t.strip()]
        self.fill(item, specs=self._specs(response, values), category_path=crumbs)
        item.currency = item.currency or "CNY"

    def _price(self, response, values, data, item) -> None:
        price_node = find(values, "price", lambda v: isinstance(v, dict) and isinstance(v.get("priceText"), (str, int, float)))
        candidates = [price_node.get("priceText") if price_node else None,
                      find(values, "priceText", lambda v: isinstance(v, (str, int, float)))]
        for css in ("#J_PromoPriceNum::text", ".tm-promo-price .tm-price::text", ".tm-price::text",
                    "#J_StrPrice .tb-rmb-num::text", ".tb-rmb-num::text", "#J_StrPrice em::text"):
            candidates.append(html_of(response).css(css).get())
        candidates.append(find(values, "defaultItemPrice", lambda v: isinstance(v, (str, int, float))))
        sku_map = find(values, "skuMap", lambda v: isinstance(v, dict)) or {}
        sku_prices = [p for p in (parse_price(s.get("price")) for s in sku_map.values() if isinstance(s, dict)) if p is not None]
        candidates.append(min(sku_prices) if sku_prices else None)
        candidates += [data.get("reservePrice"), data.get("price")]
        for value in candidates:
            if value is not None and (price := parse_price(value)) is not None:
                item.price = price
                return

    def _images(self, response, values, data, item) -> None:
        urls = []
        images = data.get("images") or data.get("auctionImages")
        pics = find(values, "propertyPics", lambda v: isinstance(v, dict) and v.get("default"))
        for source in (images, (pics or {}).get("default"), [data.get("pic")] if data.get("pic") else None):
            if source:
                urls = [payload_image(response, u) for u in source if isinstance(u, str)]
                break
        urls = [u for u in urls if u]
        if not urls:
            urls = [img.attrib.get("data-src") or img.attrib.get("src") for img in html_of(response).css("#J_UlThumb img, ul.tb-thumb img")]
            urls = [u for u in urls if u]
            booth = html_of(response).css("#J_ImgBooth")
            booth = booth[0].attrib.get("data-src") or booth[0].attrib.get("src") if booth else None
            if booth and (not urls or full_size(booth) != full_size(urls[0])):
                urls.insert(0, booth)
        if data.get("mainPic"):  # the 2015-era itemDO's main image (a bare image id or a // URL)
            urls.insert(0, payload_image(response, data["mainPic"]))
        found = [full_size(a) for a in (absolute(response, u) for u in urls if u) if a]
        if found:
            item.images = found

    def _videos(self, response, values, item) -> None:
        found: dict[str, dict] = {}
        for node in (n for v in values for n in walk(v)):
            video_id = node.get("videoId") or node.get("imgVedioID") or node.get("videoid")
            for key, value in node.items():
                if not (isinstance(value, str) and _VIDEO_URL.search(value)):
                    continue
                lower = key.lower()
                if not ("vedio" in lower or "video" in lower or (lower == "url" and (video_id or "videoThumbnailURL" in node))):
                    continue
                url = absolute(response, value)
                if "cloud.video.taobao.com" in url and url.endswith(".swf"):  # the Flash player URL: its MP4 twin
                    url = url.replace("/e/1/", "/e/6/")[: -len(".swf")] + ".mp4"
                found.setdefault(url, {"video_id": str(video_id)} if video_id else {})
        for url, meta in found.items():
            item.videos.append(url)
            if meta:
                item.media_meta[url] = meta

    @staticmethod
    def _specs(response, values) -> list[tuple[str, str]]:
        """A payload's spec groups; else the page's attribute list and spec table, merged: a page
        may carry both, each with facts the other lacks (产品名称 only in the list, 上市时间 only in
        the table). The list's order, then the table's further properties in the table's order; a
        property in both is kept once, at the list's place, with the table's value: the table is the
        spec sheet, every value written out, while the list is a summary whose shown text Tmall cuts
        short ("黑色 白色 红色...") and whose full value only an optional ``title`` keeps."""
        grouped = find(values, "groupProps", lambda v: isinstance(v, list))
        if grouped and (pairs := group_props(grouped)):
            return pairs
        pro = find(values, "newProGroup", lambda v: isinstance(v, list))
        if pro and (pairs := pro_group(pro)):
            return pairs
        return merge_specs(TaobaoAdapter._attribute_list(response), TaobaoAdapter._spec_table(response), then_wins=True)

    @staticmethod
    def _attribute_list(response) -> list[tuple[str, str]]:
        """``ul.attributes-list`` / ``#J_AttrUL`` items (``品牌:&nbsp;X``), the value from ``title``
        when the item has one (the text is cut short with "..." where the value is long)."""
        lists = []
        for li in html_of(response).css("ul.attributes-list li, #J_AttrUL li"):
            text = (li.xpath("string(.)").get() or "").replace("\xa0", " ")
            parts = _SEP.split(text.strip(), maxsplit=1)
            if len(parts) != 2 or not parts[0].strip():
                continue
            title = (li.attrib.get("title") or "").replace("\xa0", " ").strip()
            lists.append((parts[0], title or parts[1]))
        return lists

    @staticmethod
    def _spec_table(response) -> list[tuple[str, str]]:
        """``table.tm-tableAttr`` rows (``th``/``td``; a ``th colspan`` row is a group header)."""
        table = []
        for row in html_of(response).css("table.tm-tableAttr tr"):
            th, td = row.css("th"), row.css("td")
            if th and td and not th.attrib.get("colspan"):
                table.append((th[0].xpath("string(.)").get(), td[0].xpath("string(.)").get()))
        return table


class TmallAdapter(TaobaoAdapter):
    name = "tmall"
    host_pattern = r"(.+\.)?(tmall\.com|tmall\.hk)"
    markers = _TMALL_MARKERS

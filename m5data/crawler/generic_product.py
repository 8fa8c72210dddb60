"""The product a page's structured data gives, without a site adapter (:func:`generic_product`): the
schema.org Product's fields first, then OpenGraph, then ``<title>`` / ``<h1>``; its values parsed
(prices in any locale's notation, image and video URLs, the first offer with a price) and the spec
pairs of pages whose adapter gave none (plain-HTML spec tables, schema.org brand / mpn / color /
material). The page itself is read by :mod:`.extraction`.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin

from .extraction import PageData, as_list, html_breadcrumb, node_text, node_types
from .items import ProductItem, host_platform, url_id
from .spectables import clean_title, spec_pairs

_ID_KEYS = ("sku", "productID", "mpn", "gtin13", "gtin12", "gtin14", "gtin8", "gtin")


def parse_price(value) -> float | None:
    """A price from ``249.99``, ``"$1,299.00"``, ``"1.299,00 €"``, ``"US $3.59 - $4.06"`` (the first)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    match = re.search(r"\d[\d.,\s\u00a0']*", str(value))
    if not match:
        return None
    num = re.sub(r"[\s\u00a0']", "", match.group(0)).rstrip(".,")
    if "," in num and "." in num:
        dec = "," if num.rfind(",") > num.rfind(".") else "."
        num = num.replace("." if dec == "," else ",", "").replace(",", ".")
    elif "," in num:
        head, _, tail = num.rpartition(",")
        num = num.replace(",", ".") if len(tail) in (1, 2) and head.count(",") == 0 else num.replace(",", "")
    elif num.count(".") > 1:
        num = num.replace(".", "")
    try:
        return float(num)
    except ValueError:
        return None


def _image_urls(value, base: str) -> list[str]:
    out = []
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("contentUrl") or v.get("url") or v.get("@id")
            if isinstance(v, list):
                v = v[0] if v else None
        if isinstance(v, str) and v.strip() and not v.strip().startswith("data:"):
            out.append(urljoin(base, v.strip()))
    return out


def _offer_price(offers) -> tuple[float | None, str | None, str | None]:
    """(price, currency, seller) from the first offer that has a price."""
    for offer in as_list(offers):
        if not isinstance(offer, dict):
            continue
        seller = offer.get("seller")
        seller_id = None
        if isinstance(seller, dict):
            seller_id = node_text(seller.get("identifier")) or node_text(seller.get("@id")) or node_text(seller.get("name"))
        elif seller:
            seller_id = node_text(seller)
        price = parse_price(node_text(offer.get("price")) if not isinstance(offer.get("price"), (int, float)) else offer.get("price"))
        currency = node_text(offer.get("priceCurrency"))
        if price is None:
            price = parse_price(node_text(offer.get("lowPrice")))
        if price is None:
            for spec in as_list(offer.get("priceSpecification")):
                if isinstance(spec, dict) and (p := parse_price(node_text(spec.get("price")))) is not None:
                    price, currency = p, currency or node_text(spec.get("priceCurrency"))
                    break
        if price is None and offer.get("offers"):  # AggregateOffer listing its offers
            price, currency2, seller2 = _offer_price(offer.get("offers"))
            currency, seller_id = currency or currency2, seller_id or seller2
        if price is not None:
            return price, currency, seller_id
    return None, None, None


def generic_product(page: PageData, url: str, platform: str | None = None) -> ProductItem:
    """The product a page publishes as structured data: schema.org first, then OpenGraph, then <title>.

    Fields the page does not publish stay empty; ``problems`` says what was broken.
    """
    products = page.products
    item = ProductItem(platform=platform or host_platform(url), source_id="", url=url)
    item.problems.extend(page.problems)

    def pick(key):
        for p in products:
            if (v := p.get(key)) not in (None, "", []):
                return v
        return None

    item.title = node_text(pick("name"))
    if products and item.title is None:
        item.problems.append("partial: schema.org Product has no name")
    if item.title is None:
        item.title = page_title(page)
    item.description = node_text(pick("description")) or page.og("og:description")
    item.images = _image_urls(pick("image"), url)
    if not item.images:
        item.images = [urljoin(url, u) for u in page.opengraph.get("og:image", []) + page.opengraph.get("og:image:url", [])]
    item.price, item.currency, item.merchant_id = _offer_price(pick("offers"))
    if item.price is None:
        item.price = parse_price(page.og("product:price:amount", "og:price:amount"))
        item.currency = item.currency or page.og("product:price:currency", "og:price:currency")
    videos = as_list(pick("video")) + [v for v in as_list(pick("subjectOf")) if isinstance(v, dict) and "VideoObject" in node_types(v)]
    for video in videos:
        if isinstance(video, dict):
            item.videos.extend(_image_urls(video.get("contentUrl") or video.get("embedUrl") or video.get("url"), url))
        elif isinstance(video, str):
            item.videos.append(urljoin(url, video))
    if not item.videos:
        item.videos = [urljoin(url, u) for u in page.opengraph.get("og:video:url", []) or page.opengraph.get("og:video", [])]
    for prop in as_list(pick("additionalProperty")):
        if isinstance(prop, dict) and node_text(prop.get("name")):
            value = prop.get("value")
            values = value if isinstance(value, list) else [value]
            text = ", ".join(str(node_text(v)) for v in values if node_text(v) is not None)
            if prop.get("unitText") and text:
                text = f"{text} {node_text(prop.get('unitText'))}"
            item.specs.append((node_text(prop.get("name")), text))
    if page.breadcrumbs:
        item.category_path = max(page.breadcrumbs, key=len)
    elif (category := pick("category")) is not None:
        cats = [node_text(c) for c in as_list(category)]
        item.category_path = [c.strip() for c in re.split(r"\s*[>/›»|]\s*", cats[0])] if len(cats) == 1 and cats[0] else [c for c in cats if c]
    if not item.category_path:
        item.category_path = html_breadcrumb(page)
    if item.merchant_id is None:
        item.merchant_id = node_text(pick("seller"))
    for key in _ID_KEYS:
        if (sid := node_text(pick(key))) is not None:
            item.source_id = sid
            break
    if not item.source_id:
        canonical = page.canonical or page.og("og:url") or node_text(pick("url"))
        item.source_id = url_id(urljoin(url, canonical) if canonical else url)
    return item


def page_title(page: PageData) -> str | None:
    """The product name of a page without a schema.org name: its visible ``<h1>`` when the page
    title / og:title contains it (they often add prices, discounts or the site name), else og:title
    or ``<title>`` without price and discount prefixes and the site-name suffix."""
    site = page.og("og:site_name")
    titles = [clean_title(t, site) for t in (page.og("og:title", "twitter:title"), page.title_tag) if t]
    titles = [t for t in titles if t]
    if page.h1:
        h1 = " ".join(page.h1.split()).lower()
        for t in titles:
            if h1 in " ".join(t.split()).lower() and len(h1) >= 0.5 * len(t):
                return page.h1
    return titles[0] if titles else None


def html_specs(page: PageData | None) -> list[tuple[str, str]]:
    """Spec pairs from the page's plain-HTML spec tables and lists (see ``spectables``)."""
    return spec_pairs(page.tree) if page is not None and page.tree is not None else []


_SCHEMA_SPECS = (("brand", "Brand"), ("mpn", "MPN"), ("color", "Color"), ("material", "Material"))


def schema_specs(page: PageData | None) -> list[tuple[str, str]]:
    """The schema.org Product's ``brand``, ``mpn``, ``color`` and ``material`` as spec pairs."""
    out = []
    for key, label in _SCHEMA_SPECS:
        for product in page.products if page is not None else []:
            if (value := node_text(product.get(key))) is not None:
                out.append((label, value))
                break
    return out


def add_generic_specs(item: ProductItem, page: PageData | None) -> None:
    """Specs for a page whose schema.org data and adapter gave none: its plain-HTML spec blocks;
    then the schema.org brand/mpn/color/material pairs whose property is not there yet."""
    if not item.specs:
        item.specs = html_specs(page)
    have = {p.strip(":： ").lower() for p, _ in item.specs}
    item.specs.extend((k, v) for k, v in schema_specs(page) if k.lower() not in have)

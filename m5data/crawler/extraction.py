"""The generic extraction layer: schema.org Product (JSON-LD, microdata) via extruct, then OpenGraph.

Any page that publishes a schema.org ``Product`` gives title, images, price (and, when published,
ids, seller, breadcrumb, ``additionalProperty`` spec pairs and ``video``) without a site adapter.
A broken JSON-LD block does not hide the page's other blocks: each block is parsed on its own and
the failure is recorded as a problem of the page. Charset: :func:`detect_encoding` trusts the bytes
over a declared charset that does not fit them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from .charset import declared_encoding, detect_encoding  # noqa: F401 (importable from here too)
from .items import ProductItem, host_platform, url_id
from .spectables import clean_title, spec_pairs, strip_hidden, visible_text

PRODUCT_TYPES = {"Product", "ProductGroup", "IndividualProduct", "ProductModel", "SomeProducts", "Vehicle", "Book"}
# JSON-LD nested deeper than this is not read (real pages nest under 15 levels): Python's json and the
# walks below recurse, and a page nested ~900 deep inside a Scrapy callback hit the recursion limit
JSONLD_MAX_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_ID_KEYS = ("sku", "productID", "mpn", "gtin13", "gtin12", "gtin14", "gtin8", "gtin")


# ---------------------------------------------------------------------------------------- page data
@dataclass
class PageData:
    """What the generic layer reads from one HTML page."""

    url: str
    tree: object  # lxml root, for adapters that need selectors on the same parse
    products: list[dict] = field(default_factory=list)  # schema.org Product nodes, JSON-LD first
    breadcrumbs: list[list[str]] = field(default_factory=list)
    opengraph: dict[str, list[str]] = field(default_factory=dict)
    canonical: str | None = None
    title_tag: str | None = None
    h1: str | None = None  # visible text of the page's first <h1> (hidden spans dropped)
    problems: list[str] = field(default_factory=list)

    def og(self, *keys: str) -> str | None:
        for key in keys:
            values = self.opengraph.get(key)
            if values:
                return values[0]
        return None

    @property
    def is_product_page(self) -> bool:
        """A page that says it shows a product: a schema.org Product, or ``og:type`` product."""
        og_type = (self.og("og:type") or "").lower()
        return bool(self.products) or og_type in {"product", "og:product", "product.item"}


def read_page(text: str, url: str) -> PageData:
    """Parse an HTML page once and collect its structured data (never raises on bad markup)."""
    import lxml.html
    from extruct.jsonld import JsonLdExtractor
    from extruct.opengraph import OpenGraphExtractor
    from extruct.uniform import _umicrodata_microformat
    from extruct.w3cmicrodata import MicrodataExtractor

    try:
        tree = lxml.html.fromstring(text.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except Exception as exc:  # an empty or binary body: lxml raises ParserError
        page = PageData(url=url, tree=None)
        page.problems.append(f"unparseable HTML: {type(exc).__name__}: {exc}")
        return page
    page = PageData(url=url, tree=tree)
    strip_hidden(tree)  # "Details about" and other visually hidden text inside titles
    nodes: list[dict] = []
    jsonld = JsonLdExtractor()
    for i, script in enumerate(tree.xpath('//script[@type="application/ld+json"]'), 1):
        if json_depth("".join(script.itertext()), JSONLD_MAX_DEPTH) > JSONLD_MAX_DEPTH:
            page.problems.append(f"invalid JSON-LD: block {i}: nested deeper than {JSONLD_MAX_DEPTH} levels; not read")
            continue
        try:
            nodes.extend(n for n in jsonld.extract_items(script) if isinstance(n, dict))
        except Exception as exc:  # invalid JSON in one block: keep the others
            page.problems.append(f"invalid JSON-LD: block {i}: {type(exc).__name__}: {str(exc)[:120]}")
    try:
        micro = _umicrodata_microformat(MicrodataExtractor().extract_items(tree, url), schema_context="http://schema.org")
    except Exception as exc:
        micro = []
        page.problems.append(f"invalid microdata: {type(exc).__name__}: {str(exc)[:120]}")
    for node in _top(nodes) + _top(micro):
        if _types(node) & PRODUCT_TYPES:
            page.products.append(node)
    for node in _walk(nodes + micro):
        if "BreadcrumbList" in _types(node) and (crumbs := _breadcrumb(node)):
            page.breadcrumbs.append(crumbs)
    try:
        for block in OpenGraphExtractor().extract_items(tree):
            for key, value in block.get("properties", []):
                page.opengraph.setdefault(key, []).append(value)
    except Exception as exc:
        page.problems.append(f"invalid OpenGraph: {type(exc).__name__}: {str(exc)[:120]}")
    page.canonical = _first(tree.xpath('//link[@rel="canonical"]/@href'))
    page.title_tag = _first(tree.xpath("//title//text()"))
    h1 = tree.xpath("(//h1)[1]")
    if h1:
        text = visible_text(h1[0])
        page.h1 = text if 0 < len(text) <= 400 else None
    return page


def json_depth(text: str, limit: int) -> int:
    """How deep arrays and objects nest in JSON ``text`` (strings skipped); stops counting past ``limit``."""
    if text.count("{") + text.count("[") <= limit:  # cannot nest deeper: the usual case, at C speed
        return 0
    depth = deepest = 0
    for m in re.finditer(r"[\[\]{}]", _JSON_STRING.sub("", text)):
        depth += 1 if m.group(0) in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


def html_breadcrumb(page: PageData) -> list[str]:
    """A breadcrumb trail marked up in plain HTML (``nav[aria-label=breadcrumb]``, ``.breadcrumb``)."""
    if page.tree is None:
        return []
    for xp in _CRUMB_XPATHS:
        found = [t for t in (visible_text(a) for a in page.tree.xpath(xp)[:12]) if t and t not in ">/›»|"]
        if found:
            return found
    return []


# plain-HTML breadcrumb trails (only used when the page has no schema.org breadcrumb or category)
_CRUMB_XPATHS = (
    "//nav[contains(translate(@aria-label, 'B', 'b'), 'breadcrumb')]//a",
    "//*[contains(concat(' ', normalize-space(@class), ' '), ' breadcrumb ') or contains(concat(' ', normalize-space(@class), ' '), ' breadcrumbs ') or @id='breadcrumb' or @id='breadcrumbs']//a",
    "//*[contains(@class, 'seo-breadcrumb') or contains(@class, 'breadcrumbs__')]//a",
)


def _top(nodes: list) -> list[dict]:
    """The page's own entities: top-level nodes, ``@graph`` members and a page's ``mainEntity``
    (not nested ones such as ``isRelatedTo`` products, which describe other products)."""
    out: list[dict] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if "@graph" in node:
            out.extend(_top(_as_list(node["@graph"])))
            continue
        out.append(node)
        for key in ("mainEntity", "mainEntityOfPage"):
            out.extend(n for n in _as_list(node.get(key)) if isinstance(n, dict))
    return out


def _walk(value):
    """Every dict node, depth first, including those in ``@graph`` and nested properties."""
    if isinstance(value, list):
        for v in value:
            yield from _walk(v)
    elif isinstance(value, dict):
        yield value
        for k, v in value.items():
            if k != "@context":
                yield from _walk(v)


def _types(node: dict) -> set[str]:
    raw = node.get("@type") or node.get("type") or []
    raw = raw if isinstance(raw, list) else [raw]
    return {re.split(r"[/#:]", str(t))[-1] for t in raw}


def _first(values):
    for v in values or []:
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _text(value) -> str | None:
    """A schema.org text value: a string, a number, a list (first) or a node with name/@value."""
    for v in _as_list(value):
        if isinstance(v, dict):
            v = v.get("name") or v.get("@value") or v.get("value")
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def _breadcrumb(node: dict) -> list[str]:
    elements = []
    for i, el in enumerate(_as_list(node.get("itemListElement"))):
        if not isinstance(el, dict):
            continue
        name = el.get("name")
        item = el.get("item")
        if not name and isinstance(item, dict):
            name = item.get("name")
        try:
            pos = float(el.get("position"))
        except (TypeError, ValueError):
            pos = float(i)
        name = _text(name)
        if name:
            elements.append((pos, i, name))
    return [name for _, _, name in sorted(elements)]


# ---------------------------------------------------------------------------------------- values
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
    for v in _as_list(value):
        if isinstance(v, dict):
            v = v.get("contentUrl") or v.get("url") or v.get("@id")
            if isinstance(v, list):
                v = v[0] if v else None
        if isinstance(v, str) and v.strip() and not v.strip().startswith("data:"):
            out.append(urljoin(base, v.strip()))
    return out


def _offer_price(offers) -> tuple[float | None, str | None, str | None]:
    """(price, currency, seller) from the first offer that has a price."""
    for offer in _as_list(offers):
        if not isinstance(offer, dict):
            continue
        seller = offer.get("seller")
        seller_id = None
        if isinstance(seller, dict):
            seller_id = _text(seller.get("identifier")) or _text(seller.get("@id")) or _text(seller.get("name"))
        elif seller:
            seller_id = _text(seller)
        price = parse_price(_text(offer.get("price")) if not isinstance(offer.get("price"), (int, float)) else offer.get("price"))
        currency = _text(offer.get("priceCurrency"))
        if price is None:
            price = parse_price(_text(offer.get("lowPrice")))
        if price is None:
            for spec in _as_list(offer.get("priceSpecification")):
                if isinstance(spec, dict) and (p := parse_price(_text(spec.get("price")))) is not None:
                    price, currency = p, currency or _text(spec.get("priceCurrency"))
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

    item.title = _text(pick("name"))
    if products and item.title is None:
        item.problems.append("partial: schema.org Product has no name")
    if item.title is None:
        item.title = page_title(page)
    item.description = _text(pick("description")) or page.og("og:description")
    item.images = _image_urls(pick("image"), url)
    if not item.images:
        item.images = [urljoin(url, u) for u in page.opengraph.get("og:image", []) + page.opengraph.get("og:image:url", [])]
    item.price, item.currency, item.merchant_id = _offer_price(pick("offers"))
    if item.price is None:
        item.price = parse_price(page.og("product:price:amount", "og:price:amount"))
        item.currency = item.currency or page.og("product:price:currency", "og:price:currency")
    videos = _as_list(pick("video")) + [v for v in _as_list(pick("subjectOf")) if isinstance(v, dict) and "VideoObject" in _types(v)]
    for video in videos:
        if isinstance(video, dict):
            item.videos.extend(_image_urls(video.get("contentUrl") or video.get("embedUrl") or video.get("url"), url))
        elif isinstance(video, str):
            item.videos.append(urljoin(url, video))
    if not item.videos:
        item.videos = [urljoin(url, u) for u in page.opengraph.get("og:video:url", []) or page.opengraph.get("og:video", [])]
    for prop in _as_list(pick("additionalProperty")):
        if isinstance(prop, dict) and _text(prop.get("name")):
            value = prop.get("value")
            values = value if isinstance(value, list) else [value]
            text = ", ".join(str(_text(v)) for v in values if _text(v) is not None)
            if prop.get("unitText") and text:
                text = f"{text} {_text(prop.get('unitText'))}"
            item.specs.append((_text(prop.get("name")), text))
    if page.breadcrumbs:
        item.category_path = max(page.breadcrumbs, key=len)
    elif (category := pick("category")) is not None:
        cats = [_text(c) for c in _as_list(category)]
        item.category_path = [c.strip() for c in re.split(r"\s*[>/›»|]\s*", cats[0])] if len(cats) == 1 and cats[0] else [c for c in cats if c]
    if not item.category_path:
        item.category_path = html_breadcrumb(page)
    if item.merchant_id is None:
        item.merchant_id = _text(pick("seller"))
    for key in _ID_KEYS:
        if (sid := _text(pick(key))) is not None:
            item.source_id = sid
            break
    if not item.source_id:
        canonical = page.canonical or page.og("og:url") or _text(pick("url"))
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
            if (value := _text(product.get(key))) is not None:
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

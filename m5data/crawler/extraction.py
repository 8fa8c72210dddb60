"""The generic extraction layer's reading of a page: schema.org Product (JSON-LD, microdata) via extruct,
then OpenGraph, the canonical link, ``<title>``, the visible ``<h1>`` and breadcrumbs (:class:`PageData`).

Any page that publishes a schema.org ``Product`` gives title, images, price (and, when published,
ids, seller, breadcrumb, ``additionalProperty`` spec pairs and ``video``) without a site adapter
(the product made from it: :mod:`.generic_product`).
A broken JSON-LD block does not hide the page's other blocks: each block is parsed on its own and
the failure is recorded as a problem of the page. Charset: :func:`detect_encoding` trusts the bytes
over a declared charset that does not fit them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .charset import declared_encoding, detect_encoding  # noqa: F401 (importable from here too)
from .spectables import strip_hidden, visible_text

PRODUCT_TYPES = {"Product", "ProductGroup", "IndividualProduct", "ProductModel", "SomeProducts", "Vehicle", "Book"}
# JSON-LD nested deeper than this is not read (real pages nest under 15 levels): Python's json and the
# walks below recurse, and a page nested ~900 deep inside a Scrapy callback hit the recursion limit
JSONLD_MAX_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


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
        if node_types(node) & PRODUCT_TYPES:
            page.products.append(node)
    for node in _walk(nodes + micro):
        if "BreadcrumbList" in node_types(node) and (crumbs := _breadcrumb(node)):
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
            out.extend(_top(as_list(node["@graph"])))
            continue
        out.append(node)
        for key in ("mainEntity", "mainEntityOfPage"):
            out.extend(n for n in as_list(node.get(key)) if isinstance(n, dict))
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


def node_types(node: dict) -> set[str]:
    raw = node.get("@type") or node.get("type") or []
    raw = raw if isinstance(raw, list) else [raw]
    return {re.split(r"[/#:]", str(t))[-1] for t in raw}


def _first(values):
    for v in values or []:
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def node_text(value) -> str | None:
    """A schema.org text value: a string, a number, a list (first) or a node with name/@value."""
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("name") or v.get("@value") or v.get("value")
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def _breadcrumb(node: dict) -> list[str]:
    elements = []
    for i, el in enumerate(as_list(node.get("itemListElement"))):
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
        name = node_text(name)
        if name:
            elements.append((pos, i, name))
    return [name for _, _, name in sorted(elements)]

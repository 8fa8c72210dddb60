"""The site adapter contract: what a site needs beyond the generic schema.org layer.

Adding a site = one subclass (name, hosts, ``parse`` and maybe ``is_product_page`` / ``links``)
registered in ``adapters/__init__.py``, plus a saved-page test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import ClassVar
from urllib.parse import urlsplit

from ..extraction import PageData
from ..generic_product import add_generic_specs, generic_product
from ..items import ProductItem, host_platform, url_id
from ..jsobject import js_assignments, loads_lenient


class SiteAdapter:
    """The generic adapter: schema.org / OpenGraph only, follows every in-scope link.

    Subclasses set ``name`` (the platform of their products), ``host_pattern`` (the hosts they
    claim when no ``--site`` is given) and override ``parse`` to fill what the page does
    not publish as structured data. ``parse`` gets the generic item already filled in.
    """

    name: ClassVar[str] = "generic"
    host_pattern: ClassVar[str | None] = None  # regex a host must match (full match), e.g. r"(.+\.)?amazon\.com"
    # fill specs from plain-HTML spec tables (and schema.org brand/mpn/color/material) when the
    # page and the adapter gave none; off for adapters that know exactly where a site's specs are
    generic_specs: ClassVar[bool] = True

    # a link whose URL looks like one of a product page: /p/SKU.html, /dp/ASIN, /products/handle,
    # /item/123.html, item.htm?id=, /100012043978.html. Such a link that gives no product leaves a
    # "not a product page" crawl_errors row; other links (listings, help pages) may give none silently
    product_url_pattern: ClassVar[str] = (r"/(?:p|dp|gp/product|product|products|item|items|goods|offer|detail|pd)/[^/]+"
                                          r"|/item\.html?$|/\d{5,}\.html?$")

    def is_product_url(self, url: str) -> bool:
        """Whether a link to ``url`` is followed as a product page (by its path)."""
        return bool(re.search(self.product_url_pattern, urlsplit(url).path, re.I))

    def matches(self, url: str) -> bool:
        """Whether this adapter claims ``url`` (used when the crawl names no ``--site``)."""
        host = (urlsplit(url).hostname or "").lower()
        return bool(self.host_pattern and re.fullmatch(self.host_pattern, host))

    def recognises(self, response) -> bool:
        """Whether a page is this site's template whatever its host (mirrors, saved copies, regional domains)."""
        return False

    @property
    def platform(self) -> str | None:
        """The platform products get; None = the generic rule (the host name)."""
        return None if self.name == "generic" else self.name

    def is_product_page(self, response, page: PageData | None) -> bool:
        """Whether ``response`` is a product page (default: it publishes a schema.org Product)."""
        return page is not None and page.is_product_page

    def product(self, response, page: PageData | None) -> ProductItem:
        """The generic layer's item, then this adapter's additions."""
        if page is not None:
            item = generic_product(page, response.url, self.platform)
        else:  # not HTML (a JSON endpoint): the adapter reads everything
            item = ProductItem(platform=self.platform or host_platform(response.url),
                               source_id=url_id(response.url), url=response.url)
        self.parse(response, page, item)
        if self.generic_specs:
            add_generic_specs(item, page)
        # an inline placeholder (data:, blob:) is never a media file to download
        item.images = [u for u in item.images if isinstance(u, str) and not _INLINE.match(u)]
        item.videos = [u for u in item.videos if isinstance(u, str) and not _INLINE.match(u)]
        if not (item.title or "").strip():  # says more than "Product has no name"
            item.problems = [p for p in item.problems if not p.startswith("partial: schema.org Product has no name")]
            item.problems.append("missing title")
        return item

    def parse(self, response, page: PageData | None, item: ProductItem) -> None:
        """Fill ``item`` with what the generic layer could not read (no-op for the generic adapter)."""

    @staticmethod
    def fill(item: ProductItem, **fields) -> None:
        """Set the fields the page gave (``specs=``, ``category_path=``...): one it left empty keeps
        the generic layer's value, so a page without a breadcrumb keeps the schema.org one."""
        for name, value in fields.items():
            if value:
                setattr(item, name, value)

    def links(self, response, page: PageData | None) -> Iterable[str]:
        """URLs to follow from this page (default: every ``<a href>`` and ``rel=next`` of an HTML page)."""
        if page is None:  # not HTML (a JSON endpoint, plain text): no links to read
            return []
        hrefs = response.css("a::attr(href), link[rel=next]::attr(href)").getall()
        return [response.urljoin(h.strip()) for h in hrefs if h and not h.strip().startswith(("#", "javascript:", "mailto:", "tel:"))]


_INLINE = re.compile(r"\s*(data|blob|javascript|about):", re.I)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)


def is_html(response) -> bool:
    """Whether a response is an HTML page (not a JSON or JavaScript payload)."""
    from scrapy.http import HtmlResponse

    if isinstance(response, HtmlResponse):
        return True
    head = response.text.lstrip("\ufeff \t\r\n")[:1]
    return head == "<"


class _NoHTML:
    """What ``css`` finds in a JSON or JavaScript response: nothing (parsel refuses css on JSON)."""

    @staticmethod
    def css(query: str):
        from parsel import SelectorList

        return SelectorList([])


def html_of(response):
    """``response`` for CSS selectors when it is HTML, else an object whose ``css`` finds nothing."""
    return response if is_html(response) else _NoHTML()


def script_text(response) -> str:
    """The page's inline scripts (JSON-LD left out), joined; the whole text for a JSON/JS response."""
    text = response.text
    if not is_html(response):
        return text
    return "\n;\n".join(body for attrs, body in _SCRIPT.findall(text) if "ld+json" not in attrs.lower() and body.strip())


_PAYLOADS: list = [None, None]  # (response, payloads) of the last page asked: adapters ask for one page several times


def payloads(response) -> list[tuple[str, object]]:
    """(name, value) of the data payloads of a response: the objects its scripts assign or pass to
    calls (``var _DATA_Detail = {...}``, ``TShop.Setup({...})``), or, for a JSON or JavaScript
    response, its value (name "") or its assignments. Cached for the last response."""
    if _PAYLOADS[0] is response:
        return _PAYLOADS[1]
    out: list[tuple[str, object]] = []
    if is_html(response):
        out = list(js_assignments(script_text(response)))
    else:
        text = response.text.lstrip("\ufeff \t\r\n")
        if text[:1] in "{[":  # JSON (or a bare JS object literal)
            value = loads_lenient(text)
            out = [("", value)] if value is not None else []
        else:  # a script: its assignments, or a JSONP call `cb({...})`
            out = list(js_assignments(text))
    _PAYLOADS[0], _PAYLOADS[1] = response, out
    return out


def walk(value, max_depth: int = 12):
    """Every dict inside ``value`` (depth first, page order), JSON strings holding objects decoded."""
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            continue
        if isinstance(node, dict):
            yield node
            stack.extend((v, depth + 1) for v in reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in reversed(node))
        elif isinstance(node, str) and len(node) > 40 and node[:1] == "{" and node[-1:] == "}":
            try:  # mtop responses nest JSON as strings (apiStack[].value, mockData)
                stack.append((json.loads(node), depth + 1))
            except ValueError:
                pass


def find(values, key: str, test=None):
    """The first value under ``key`` (in any dict inside ``values``) that passes ``test``."""
    for value in values:
        for node in walk(value):
            if key in node and node[key] not in (None, "", [], {}) and (test is None or test(node[key])):
                return node[key]
    return None


def absolute(response, url) -> str | None:
    """An absolute media URL (protocol-relative ``//cdn/...`` as https)."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if url.startswith("//"):
        return "https:" + url
    return response.urljoin(url)


def script_json(text: str, marker: str):
    """The JSON value that follows ``marker`` in a page's scripts (e.g. ``window.runParams =``).

    Scans to the first ``{`` or ``[`` after the marker and decodes one JSON value from there,
    ignoring what follows (``;``, more script). Returns None when the marker is absent or the
    value is not valid JSON.
    """
    pos = text.find(marker)
    while pos != -1:
        start = re.compile(r"[\[{]").search(text, pos + len(marker))
        if start is None:
            return None
        try:
            value, _ = json.JSONDecoder(strict=False).raw_decode(text, start.start())
            return value
        except ValueError:
            pos = text.find(marker, pos + len(marker))
    return None


def spec_key(prop: str | None) -> str:
    """A property name as two spec blocks of one page are matched: no spaces, colons, direction
    marks or case (``品牌:`` in a list is ``品牌`` in a table; ``Publisher &rlm; :`` is ``Publisher``)."""
    return re.sub(r"[\s:：\u200e\u200f]+", "", prop or "").lower()


def merge_specs(first: list, then: list, then_wins: bool = False) -> list[tuple[str, str]]:
    """Two spec blocks of one page as one: ``first``'s pairs as they are, in their order, then
    ``then``'s pairs whose property ``first`` lacks, once each, in ``then``'s order. A property in
    both stays at ``first``'s place, with ``then``'s value when ``then_wins`` (the adapter says why)."""
    out = list(first)
    at = {}
    for i, (prop, _) in enumerate(first):
        at.setdefault(spec_key(prop), i)
    taken: set[str] = set()
    for prop, value in then:
        key = spec_key(prop)
        if not key or key in taken or not str(value or "").replace("\xa0", " ").strip():
            continue  # a blank value never replaces one
        taken.add(key)
        if key not in at:
            out.append((prop, value))
        elif then_wins:
            out[at[key]] = (out[at[key]][0], value)
    return out

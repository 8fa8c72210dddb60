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

from ..extraction import PageData, generic_product
from ..items import ProductItem, host_platform, url_id


class SiteAdapter:
    """The generic adapter: schema.org / OpenGraph only, follows every in-scope link.

    Subclasses set ``name`` (the platform of their products), ``host_pattern`` (the hosts they
    claim when no ``--site`` is given) and override ``parse`` to fill what the page does
    not publish as structured data. ``parse`` gets the generic item already filled in.
    """

    name: ClassVar[str] = "generic"
    host_pattern: ClassVar[str | None] = None  # regex a host must match (full match), e.g. r"(.+\.)?amazon\.com"

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
        if not (item.title or "").strip():  # says more than "Product has no name"
            item.problems = [p for p in item.problems if not p.startswith("partial: schema.org Product has no name")]
            item.problems.append("missing title")
        return item

    def parse(self, response, page: PageData | None, item: ProductItem) -> None:
        """Fill ``item`` with what the generic layer could not read (no-op for the generic adapter)."""

    def links(self, response, page: PageData | None) -> Iterable[str]:
        """URLs to follow from this page (default: every ``<a href>`` and ``rel=next`` of an HTML page)."""
        if page is None:  # not HTML (a JSON endpoint, plain text): no links to read
            return []
        hrefs = response.css("a::attr(href), link[rel=next]::attr(href)").getall()
        return [response.urljoin(h.strip()) for h in hrefs if h and not h.strip().startswith(("#", "javascript:", "mailto:", "tel:"))]


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

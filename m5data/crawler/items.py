"""What a page parses into, how its text is normalised, and how a product is identified.

Product identity: ``product_id = "<platform>:<source_id>"``.

- A site adapter names the platform (``amazon``, ``aliexpress``, ``shopa``...) and reads the
  site's own id (ASIN, item id, ...).
- A page with no adapter (the generic layer) gets ``platform`` = the host name without ``www.``
  and without the port, and ``source_id`` = the first of schema.org ``sku``, ``productID``,
  ``mpn``, ``gtin13``/``gtin12``/``gtin14``/``gtin8``/``gtin`` that the page publishes, else
  ``u`` + the first 16 hex digits of sha1 of the canonical URL (``<link rel=canonical>``,
  ``og:url``, the Product's ``url``, else the page URL), canonicalised with w3lib.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_SPACE = re.compile(r"\s+")
_PROPERTY_EDGES = ":：-–—•·|*"  # colons and list bullets around a property name ("Brand:", "• Size")
# A breadcrumb's leading link to the home page is not a category level.
HOME_CRUMBS = {"首页", "主页", "home", "home page", "homepage", "inicio", "accueil", "startseite", "ホーム", "홈"}


def clean_text(value, nfkc: bool = True) -> str | None:
    """NFKC, HTML entities decoded, format characters (LRM, ZWSP, BOM) dropped, whitespace collapsed.

    Returns None for None or text that is empty after cleaning. ``nfkc=False`` keeps the
    characters as the page wrote them (for breadcrumb labels, which stay raw).
    """
    if value is None:
        return None
    text = str(value)
    if "&" in text:
        text = html.unescape(text)
    if nfkc:
        text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _SPACE.sub(" ", text).strip()
    return text or None


def clean_property(value) -> str | None:
    """A spec property name: clean text, trimmed of colons and bullets at either end."""
    text = clean_text(value)
    if text is None:
        return None
    text = text.strip(_PROPERTY_EDGES + " ").strip()
    return text or None


def url_id(url: str) -> str:
    """A stable source id for a page that publishes none: ``u`` + 16 hex digits of sha1(canonical URL)."""
    from w3lib.url import canonicalize_url

    return "u" + hashlib.sha1(canonicalize_url(url).encode("utf-8")).hexdigest()[:16]


def host_platform(url: str) -> str:
    """The platform name of a site without an adapter: its host, without ``www.`` and port."""
    host = (urlsplit(url).hostname or "unknown").lower()
    return host[4:] if host.startswith("www.") else host


@dataclass
class ProductItem:
    """One product page, as read (the pipeline normalises the text before storing it).

    ``images`` are in page order, the first being the main image; ``specs`` are ordered
    (property, value) pairs; ``media_meta`` maps a media URL to extra details kept in
    ``media.meta`` (e.g. the HLS playlist a video preview belongs to); ``problems`` are the
    reasons the page could be read only partly (they become a ``crawl_errors`` row).
    """

    platform: str
    source_id: str
    url: str
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    category_path: list[str] = field(default_factory=list)
    merchant_id: str | None = None
    description: str | None = None
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    specs: list[tuple[str, str]] = field(default_factory=list)
    media_meta: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def product_id(self) -> str:
        return f"{self.platform}:{self.source_id}"

    def normalised(self) -> ProductItem:
        """A copy with text normalised, spec pairs cleaned (empty ones dropped), media de-duplicated.

        The breadcrumb keeps the platform's own spelling (no NFKC: it is the raw label that the
        align stage maps), and loses a leading home link (首页, Home, Inicio...) and a last crumb
        that repeats the product title: neither is a category level.
        """
        specs = []
        for prop, value in self.specs:
            p, v = clean_property(prop), clean_text(value)
            if p and v:
                specs.append((p, v))
        path = [c for c in (clean_text(x, nfkc=False) for x in self.category_path) if c]
        while path and unicodedata.normalize("NFKC", path[0]).lower() in HOME_CRUMBS:
            path = path[1:]
        title = clean_text(self.title)
        if path and title and unicodedata.normalize("NFKC", path[-1]) == title:  # a breadcrumb ending with the product itself
            path = path[:-1]
        return ProductItem(
            platform=self.platform, source_id=clean_text(self.source_id) or self.source_id, url=self.url,
            title=title, price=self.price, currency=clean_text(self.currency),
            category_path=path, merchant_id=clean_text(self.merchant_id),
            description=clean_text(self.description), images=_unique(self.images),
            videos=_unique(self.videos), specs=specs, media_meta=dict(self.media_meta),
            problems=list(self.problems),
        )

    def content_hash(self) -> str:
        """sha256 of the page's content (everything but its URL and ids): equal for mirrored pages."""
        payload = [self.title, self.price, self.currency, self.category_path, self.merchant_id,
                   self.description, self.images, self.videos, [list(p) for p in self.specs]]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class PageError:
    """A page that could not be read (fully): becomes one ``crawl_errors`` row."""

    url: str
    platform: str | None
    reason: str
    http_status: int | None = None

    @property
    def kind(self) -> str:
        """The reason's first word(s) before a colon: the key failures are counted by."""
        return self.reason.split(":", 1)[0].strip()


def _unique(urls: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for url in urls:
        url = (url or "").strip()
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out


def media_id(product_id: str, kind: str, url: str) -> str:
    """The media key of a downloaded object: sha1 of ``product_id|kind|url``."""
    return hashlib.sha1(f"{product_id}|{kind}|{url}".encode("utf-8")).hexdigest()

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
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

_SPACE = re.compile(r"\s+")
# the control characters (Unicode Cc) that \s does not match: the others are whitespace, collapsed
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
_PROPERTY_EDGES = ":：-–—•·|*"  # colons and list bullets around a property name ("Brand:", "• Size")
# A breadcrumb's leading link to the home page is not a category level.
HOME_CRUMBS = {"首页", "主页", "home", "home page", "homepage", "inicio", "accueil", "startseite", "ホーム", "홈"}


def clean_text(value, nfkc: bool = True) -> str | None:
    """NFKC, HTML entities decoded, control characters (NUL, ESC...) and format characters (LRM,
    ZWSP, BOM) dropped, whitespace collapsed.

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
    text = _CONTROL.sub("", text)  # NUL, BEL, ESC... (control characters that are not whitespace)
    if not text.isascii():
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


@dataclass(frozen=True)
class Caps:
    """Upper bounds on what one page may store: the ``crawl.max_*`` settings (defaults in config.py)."""

    title_chars: int
    description_chars: int
    property_chars: int
    value_chars: int
    id_chars: int
    url_chars: int
    specs: int
    media: int
    crumbs: int

    @classmethod
    def from_settings(cls, crawl) -> Caps:
        """The caps of a ``CrawlSettings`` (``max_title_chars`` -> ``title_chars``, ...)."""
        return cls(**{f.name: getattr(crawl, "max_" + f.name) for f in fields(cls)})


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
    # the page's HTTP validators (``revalidate.validators_of``): link, etag, last_modified; {} when none
    validators: dict[str, str | None] = field(default_factory=dict)
    # the licence the page states (``licence.page_license``): a ``licenses`` row; {} when none
    license: dict[str, str | None] = field(default_factory=dict)

    @property
    def product_id(self) -> str:
        return f"{self.platform}:{self.source_id}"

    def normalised(self, caps: Caps | None = None) -> ProductItem:
        """A copy with text normalised, spec pairs cleaned (empty ones dropped), media de-duplicated,
        and, given ``caps``, every field within them (what they cut: one ``capped:`` problem).

        The breadcrumb keeps the platform's own spelling (no NFKC: it is the raw label that the
        align stage maps), and loses a leading home link (首页, Home, Inicio...) and a last crumb
        that repeats the product title: neither is a category level. Ids lose control characters
        and surrounding whitespace; an id empty after that stays empty (the pipeline refuses it).
        """
        fit = _Fit(caps)
        source_id = fit.ident(self.source_id, "source id") or ""
        merchant_id = fit.ident(self.merchant_id, "merchant id")
        title = fit.text(self.title, "title_chars", "title")
        description = fit.text(self.description, "description_chars", "description")
        currency = fit.text(self.currency, "id_chars", "currency")
        path = fit.crumbs(self.category_path)
        while path and unicodedata.normalize("NFKC", path[0]).lower() in HOME_CRUMBS:
            path = path[1:]
        if path and title and unicodedata.normalize("NFKC", path[-1]) == title:  # a breadcrumb ending with the product itself
            path = path[:-1]
        specs = fit.specs(self.specs)
        images, videos = fit.urls(self.images, "image"), fit.urls(self.videos, "video")
        meta = {url: fit.meta(self.media_meta[url]) for url in images + videos if url in self.media_meta}
        item = ProductItem(
            platform=self.platform, source_id=source_id, url=self.url, title=title, price=self.price,
            currency=currency, category_path=path, merchant_id=merchant_id, description=description,
            images=images, videos=videos, specs=specs, media_meta={u: m for u, m in meta.items() if m},
            problems=list(self.problems), validators=dict(self.validators), license=dict(self.license),
        )
        if fit.notes or fit.counts:
            item.problems.append(f"capped: {item.product_id}: {fit.note()}")
        return item

    def content_hash(self) -> str:
        """sha256 of the page's content (everything but its URL and ids): equal for mirrored pages."""
        payload = [self.title, self.price, self.currency, self.category_path, self.merchant_id,
                   self.description, self.images, self.videos, [list(p) for p in self.specs]]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass
class NotModified:
    """A product page that answered ``304 Not Modified`` to a refresh's conditional request: its
    product is unchanged and nothing of it is written (``revalidate.py``)."""

    url: str
    product_id: str


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


_PLURALS = {"spec property": "spec properties"}
_URL_BREAKS = re.compile("[\t\n\r]")  # what a browser's URL parser removes from a URL


class _Fit:
    """Normalises the fields of one item within ``caps`` (None: no caps) and words what it cut."""

    def __init__(self, caps: Caps | None):
        self.caps = caps
        self.notes: list[str] = []  # one per cut field, in field order
        self.counts: dict[tuple[str, str], int] = {}  # (thing, reason) -> how many were cut or dropped

    def count(self, thing: str, reason: str, n: int = 1) -> None:
        self.counts[(thing, reason)] = self.counts.get((thing, reason), 0) + n

    def note(self) -> str:
        counted = [f"{n} {_PLURALS.get(thing, thing + 's') if n > 1 else thing} {reason}" for (thing, reason), n in self.counts.items()]
        return ", ".join(self.notes + counted)

    def text(self, value, cap: str, what: str | None = None, clean=clean_text, **kw) -> str | None:
        """``clean(value)`` within ``caps.<cap>`` characters; a cut is noted for ``what`` (a field)
        or counted under ``kw['thing']``."""
        if value is None:
            return None
        raw = str(value)
        thing = kw.pop("thing", None)
        limit = getattr(self.caps, cap, None)
        if limit is None:
            return clean(raw, **kw)
        bound = 4 * limit + 256  # cleaning a 5 MB title takes seconds: only what can be kept is cleaned
        text = clean(raw[:bound], **kw)
        if text is not None and (len(text) > limit or len(raw) > bound):
            text = text[:limit].rstrip() or None
            if what:
                self.notes.append(f"{what} cut from {len(raw)} to {limit} characters (crawl.max_{cap})")
            else:
                self.count(thing or cap, f"cut (crawl.max_{cap})")
        return text

    def ident(self, value, what: str) -> str | None:
        """An id without control characters and edge whitespace; one over ``caps.id_chars`` is cut
        and ends with ``~`` + 16 hex digits of sha1 of the whole id, so that long ids stay apart."""
        if value is None:
            return None
        raw = str(value)
        limit = self.caps.id_chars if self.caps else None
        if limit is None or len(raw) <= limit:
            return clean_text(raw)
        text = clean_text(raw[:4 * limit + 256]) or ""
        if len(text) <= limit and len(raw) <= 4 * limit + 256:
            return text or None
        digest = hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        self.notes.append(f"{what} cut from {len(raw)} to {limit} characters (crawl.max_id_chars)")
        return text[:limit - 17] + "~" + digest

    def crumbs(self, path: list) -> list[str]:
        limit = self.caps.crumbs if self.caps else len(path)
        labels = [c for c in (self.text(x, "property_chars", thing="category label", nfkc=False) for x in path[:limit * 2]) if c]
        if len(labels) > limit or len(path) > limit * 2:
            self.notes.append(f"{len(path) - limit} of {len(path)} category levels dropped (crawl.max_crumbs)")
        return labels[:limit]

    def specs(self, pairs: list) -> list[tuple[str, str]]:
        limit = self.caps.specs if self.caps else None
        out: list[tuple[str, str]] = []
        for i, (prop, value) in enumerate(pairs):
            if limit is not None and len(out) >= limit:
                self.notes.append(f"{len(pairs) - i} of {len(pairs)} spec rows dropped (crawl.max_specs)")
                break
            p = self.text(prop, "property_chars", thing="spec property", clean=clean_property)
            v = self.text(value, "value_chars", thing="spec value")
            if p and v:
                out.append((p, v))
        return out

    def urls(self, urls: list, kind: str) -> list[str]:
        """Media URLs: de-duplicated in page order, tabs and newlines removed; one holding another
        control character, or longer than ``caps.url_chars``, is dropped (a cut URL is another URL)."""
        out = []
        for url in _unique([_URL_BREAKS.sub("", u) for u in urls if isinstance(u, str)]):
            if any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in url):
                self.count("media URL", "dropped (control characters)")
            elif self.caps and len(url) > self.caps.url_chars:
                self.count("media URL", "dropped (crawl.max_url_chars)")
            else:
                out.append(url)
        if self.caps and len(out) > self.caps.media:
            self.count(f"{kind} URL", "dropped (crawl.max_media)", len(out) - self.caps.media)
            out = out[:self.caps.media]
        return out

    def meta(self, meta: dict) -> dict:
        """A media URL's details, without string values over ``caps.value_chars``."""
        limit = self.caps.value_chars if self.caps else None
        out = {}
        for key, value in (meta or {}).items():
            if limit is not None and isinstance(value, str) and len(value) > limit:
                self.count("media detail", "dropped (crawl.max_value_chars)")
            else:
                out[key] = value
        return out


def _unique(urls: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for url in urls:
        url = (url or "").strip()
        if url and url not in seen:
            seen.add(url)
            out.append(url)
    return out

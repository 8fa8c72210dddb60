"""The Scrapy spider: start pages or sitemaps -> listing pages -> product pages -> items.

Scope: only the hosts and ports of the start URLs, only http(s) (:mod:`.safety`; its downloader
middleware checks every request again, redirects included, with the private-address policy). Robots.txt, depth, page limits and throttling
are Scrapy settings (``crawl.build_settings``). Resume: product pages whose product is already in
the store are not requested again (see ``docs/crawl.md``). A page that cannot be read becomes a
:class:`PageError` item, never an exception out of a callback.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.http import TextResponse
from w3lib.url import canonicalize_url

from ..storage.redact import strip_userinfo
from ..storage.takedowns import covering
from .adapters import AdapterChooser
from .adapters.base import is_html
from .extraction import declared_encoding, detect_encoding, read_page
from .failures import failure_items
from .items import NotModified, PageError, ProductItem, host_platform
from .licence import page_license
from .optouts import OptedOut, page_optout
from .render import as_text_response, needs_render, no_product_reason, render_meta
from .revalidate import conditional_headers, validators_of
from .safety import crawl_scope, in_scope
from .walls import WALLS, captcha, link_of, login_redirect, not_a_product

log = logging.getLogger(__name__)
_SITEMAP = re.compile(rb"<(?:\w+:)?(urlset|sitemapindex)\b")
SITEMAP_MAX_BYTES = 50 * 2**20  # a sitemap may hold 50,000 URLs in 50 MB (sitemaps.org): its own cap, inflated


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class ProductSpider(scrapy.Spider):
    """Crawls from ``start_urls`` (pages, sitemaps or a robots.txt listing sitemaps).

    Args:
        start_urls: where to start; their hosts are the crawl's allowed domains.
        site: an adapter name forced on every page (default: chosen per URL by host).
        done_urls: canonical URLs of product pages already stored (not requested again).
        validators: canonical URL -> (product_id, etag, last_modified) of stored product pages
            (a refresh): their requests are conditional, and a 304 is an unchanged product.
        render: render pages that need it (script-filled product data) in headless Chromium.
        render_timeout: seconds a rendered page may take.
        takedowns: the ``takedowns`` rows of kind url and domain: pages they cover are never
            requested (``taken_down``: URL -> the takedown, recorded by the pipeline).
    """

    name = "m5data"

    def __init__(self, start_urls: list[str], site: str | None = None, done_urls: set[str] | None = None,
                 render: bool = False, render_timeout: float = 30.0,
                 validators: dict[str, tuple[str, str | None, str | None]] | None = None,
                 versions: dict[str, tuple] | None = None, takedowns: list[dict] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.render = render  # re-fetch pages that need it through a headless browser (scrapy-playwright)
        self.render_timeout = render_timeout
        self.empty_starts: set[str] = set()  # start URLs that yielded no product and no link
        self.start_urls = list(start_urls)
        self.allowed_domains = sorted({host_of(u) for u in self.start_urls if host_of(u)})
        self.scope = crawl_scope(self.start_urls)  # (host, port) pairs; SafetyMiddleware reads it too
        self.choose = AdapterChooser(site)
        self.done_urls = done_urls or set()
        self.stored_skipped: set[str] = set()  # the stored product pages a link led to, not fetched again
        self.validators = validators or {}
        self.versions = versions  # a refresh's stored products, read once for the spider and the pipeline
        self.takedowns = takedowns or []
        self.taken_down: dict[str, dict] = {}  # the links not followed for a takedown -> that takedown

    @property
    def max_page_bytes(self) -> int:
        """``crawl.max_page_bytes``: Scrapy's ``DOWNLOAD_MAXSIZE``."""
        return self.crawler.settings.getint("DOWNLOAD_MAXSIZE")

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._count_bytes, signal=signals.bytes_received)
        return spider

    def _count_bytes(self, data, request, spider=None) -> None:
        """Bytes received per request: a body cut off at the size cap is cancelled without saying why."""
        request.meta["m5data_bytes"] = request.meta.get("m5data_bytes", 0) + len(data)

    # ------------------------------------------------------------------ requests
    def request(self, url: str, *, dont_filter: bool = False, sitemap: bool = False) -> scrapy.Request | None:
        if "@" in url:  # a link's user:pass is neither sent nor stored (m5data/storage/redact.py)
            url = strip_userinfo(url)
        if not in_scope(url, self.scope):
            self.crawler.stats.inc_value("m5data/offsite_links")
            return None
        if self.takedowns and (taken := covering(url, self.takedowns)) is not None:
            self.taken_down[url] = taken
            return None
        try:
            if (canonical := canonicalize_url(url)) in self.done_urls:
                self.crawler.stats.inc_value("m5data/skipped_done")
                self.stored_skipped.add(canonical)
                self.crawler.stats.set_value("m5data/stored_skipped", len(self.stored_skipped))
                return None
            meta = {"download_maxsize": max(SITEMAP_MAX_BYTES, self.max_page_bytes)} if sitemap else {}
            headers = None
            if (known := self.validators.get(canonical)) is not None:
                # a conditional GET: its 304 reaches parse() (HttpErrorMiddleware lets it through, and
                # neither RetryMiddleware nor RedirectMiddleware acts on a 304)
                headers = conditional_headers(known[1], known[2])
                meta.update(handle_httpstatus_list=[304], m5data_validated=known[0])
            return scrapy.Request(url, callback=self.parse, errback=self.on_error, dont_filter=dont_filter,
                                  meta=meta or None, headers=headers)
        except ValueError:  # a malformed href (bad IPv6 literal, bad port): skip the link, keep the page
            self.crawler.stats.inc_value("m5data/bad_links")
            return None

    async def start(self):
        for url in self.start_urls:
            sitemap = urlsplit(url).path.lower().endswith((".xml", ".xml.gz"))
            if (req := self.request(url, dont_filter=True, sitemap=sitemap)) is not None:
                yield req

    # ------------------------------------------------------------------ responses
    def parse(self, response):
        """Items and requests of one response; a start URL that yields neither gets a
        ``no product found: <why>`` row (and counts towards an empty crawl)."""
        if response.status == 304 and (pid := response.meta.get("m5data_validated")):
            if found := page_optout(response, None, self.crawler.settings.getdict("M5DATA_OPTOUT")):  # said on a 304 too
                self.crawler.stats.inc_value("m5data/optouts/page")
                yield OptedOut(link_of(response), pid, found)
                return
            self.crawler.stats.inc_value("m5data/not_modified")
            self.crawler.stats.inc_value("m5data/product_pages")
            yield NotModified(link_of(response), pid)  # the stored product is current: nothing to read
            return
        start = response.meta.get("depth", 0) == 0
        done_before = self.crawler.stats.get_value("m5data/skipped_done", 0)
        why = ["the page is not a product page and links no in-scope page"]
        fruitful = recorded = False
        for out in self._parse(response, why):
            if isinstance(out, scrapy.Request):
                fruitful = True
            elif isinstance(out, ProductItem):
                fruitful = fruitful or bool(out.title or out.images or out.price is not None)
                recorded = True
                self.crawler.stats.inc_value("m5data/product_pages")
            elif isinstance(out, (PageError, OptedOut)):
                recorded = True
                fruitful = fruitful or isinstance(out, OptedOut)  # a product page, whose owner opted out
            yield out
        if start and not fruitful and why[0] is not None and self.crawler.stats.get_value("m5data/skipped_done", 0) == done_before:
            self._empty_start(response.meta.get("redirect_urls", [response.url])[0])
            if not recorded:
                adapter = self.choose(response.url)
                yield PageError(response.url, adapter.platform or host_platform(response.url),
                                f"no product found: {why[0]}", response.status)

    def _empty_start(self, url: str) -> None:
        self.empty_starts.add(url)
        self.crawler.stats.set_value("m5data/start_urls_empty", len(self.empty_starts))

    def _parse(self, response, why: list[str]):
        if response.body[:2] == b"\x1f\x8b":  # a gzipped sitemap (sitemap.xml.gz)
            from scrapy.utils.gz import gunzip

            why[0] = "the gzipped sitemap lists no in-scope URL"
            try:
                yield from self._sitemap(response, gunzip(response.body, max_size=SITEMAP_MAX_BYTES))
            except Exception as exc:
                yield PageError(response.url, None, f"bad sitemap: {type(exc).__name__}: {exc}", response.status)
            return
        if not isinstance(response, TextResponse):
            response = as_text_response(response)
            if response is None:
                self.crawler.stats.inc_value("m5data/non_text_pages")
                why[0] = "the response is not text (no page or payload to read)"
                return
        if self._is_sitemap(response.body):
            why[0] = "the sitemap lists no in-scope URL"
            yield from self._sitemap(response, response.body)
            return
        if urlsplit(response.url).path.endswith("/robots.txt"):
            why[0] = "robots.txt names no sitemap"
            for line in response.text.splitlines():
                if line.lower().startswith("sitemap:"):
                    if (req := self.request(response.urljoin(line.split(":", 1)[1].strip()), sitemap=True)) is not None:
                        yield req
            return
        adapter = self.choose(response.url, response)
        page = None
        item = None
        failed = False
        try:
            if is_html(response):
                page = read_page(response.text, response.url)
            if adapter.is_product_page(response, page):
                item = adapter.product(response, page)
                item.validators = validators_of(response, link_of(response))
                item.license = page_license(page, response.url)
        except Exception as exc:  # a page must never stop the crawl
            log.warning("cannot parse %s: %s: %s", response.url, type(exc).__name__, exc)
            failed = True
            yield PageError(response.url, adapter.platform or host_platform(response.url),
                            f"parse error: {type(exc).__name__}: {str(exc)[:200]}", response.status)
        if item is not None and (found := page_optout(response, page, self.crawler.settings.getdict("M5DATA_OPTOUT"))):
            self.crawler.stats.inc_value("m5data/optouts/page")
            # nothing of it stored, its links followed; its id as the pipeline would store it (normalised)
            yield OptedOut(link_of(response), item.normalised().product_id, found)
            item, failed = None, True
        if self.render and not failed and not response.meta.get("m5data_rendered") and needs_render(response, page, item):
            self.crawler.stats.inc_value("m5data/render_requests")
            # straight to the engine: the same page again, not a link hop (DepthMiddleware would count
            # it one level deeper and drop it at the depth limit)
            meta = {**response.meta, **render_meta(self.render_timeout), "m5data_fallback": item}
            self.crawler.engine.crawl(response.request.replace(dont_filter=True, meta=meta))
            why[0] = None  # decided by the rendered page
            return
        if item is not None:
            yield item
        elif not failed and (dropped := self._dropped(response, page, adapter)) is not None:
            yield dropped
            if dropped.kind in WALLS:  # a login or captcha page's links lead nowhere the crawl wants
                return
        try:
            links = list(adapter.links(response, page))
        except Exception as exc:
            log.warning("cannot read links of %s: %s", response.url, exc)
            links = []
        for url in links:
            if (req := self.request(url)) is not None:
                yield req
        if item is None and response.meta.get("depth", 0) == 0:  # only a start URL's reason is ever written
            why[0] = no_product_reason(response, page, adapter, rendered=bool(response.meta.get("m5data_rendered")))

    def _dropped(self, response, page, adapter) -> PageError | None:
        """The row of a followed page that gave no product (see :mod:`.walls`): a login redirect or
        captcha page (any page), a link followed as a product (not a start URL: those have their own
        ``no product found`` row), or a page whose structured data could not be read."""
        link = link_of(response)
        reason = login_redirect(link, response.url) or captcha(response, page)
        if reason is None and response.meta.get("depth", 0) > 0:
            if self.choose(link).is_product_url(link):
                reason = not_a_product(response, page, adapter, link)
            elif page is not None and page.problems:
                reason = "; ".join(dict.fromkeys(page.problems))
        if reason is None:
            return None
        return PageError(link, adapter.platform or host_platform(link), reason[:1000], response.status)

    @staticmethod
    def _is_sitemap(body: bytes) -> bool:
        head = body[:4096].lstrip()
        return bool(_SITEMAP.search(head)) and not head[:300].lower().startswith((b"<!doctype html", b"<html"))

    def _sitemap(self, response, body: bytes):
        from scrapy.utils.sitemap import Sitemap

        try:
            sitemap = Sitemap(body)
        except Exception as exc:
            yield PageError(response.url, None, f"bad sitemap: {type(exc).__name__}: {exc}", response.status)
            return
        for entry in sitemap:
            loc = entry.get("loc")
            if loc and (req := self.request(response.urljoin(loc.strip()), sitemap=sitemap.type == "sitemapindex")) is not None:
                yield req

    def on_error(self, failure):
        """Errback: a failed request's row (:mod:`.failures`)."""
        yield from failure_items(self, failure)


class CharsetMiddleware:
    """Downloader middleware: re-decode a page whose declared charset does not fit its bytes."""

    def __init__(self, crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response, spider=None):
        if not isinstance(response, TextResponse) or not response.body or response.body.isascii():
            return response  # every ASCII-compatible charset reads ASCII bytes alike
        declared = declared_encoding(response.headers.get("Content-Type", b"").decode("latin-1"), response.body)
        encoding = detect_encoding(response.body, declared)
        current = response.encoding
        import codecs

        try:
            same = codecs.lookup(encoding).name == codecs.lookup(current).name
        except LookupError:
            same = False
        if same:
            return response
        self.crawler.stats.inc_value("m5data/charset_redetected")
        log.info("charset of %s: declared %s, decoded as %s", response.url, declared, encoding)
        return response.replace(encoding=encoding)


class ProgressReporter:
    """Extension: one JSON line of counts on stdout every second, for the parent's progress bar."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.loop = None
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def opened(self, spider=None):
        from twisted.internet import task

        self.loop = task.LoopingCall(self.report)
        self.loop.start(1.0, now=True)

    def closed(self, spider=None, reason=None):
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.report()

    def report(self):
        stats = self.crawler.stats
        line = {"pages": stats.get_value("response_received_count", 0),
                "products": stats.get_value("m5data/products_stored", 0),
                "errors": stats.get_value("m5data/error_rows", 0)}
        print(json.dumps({"progress": line}), flush=True)

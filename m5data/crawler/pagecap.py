"""``crawl.max_pages``, exact: at most N requests for pages reach the network.

Scrapy's ``CLOSESPIDER_PAGECOUNT`` counts responses and then closes the spider, while the requests
already sent run on: ``--max-pages 40`` fetched 49 pages. :class:`PageCapMiddleware`, a downloader
middleware placed last (950: after robots.txt (100), the retry middleware (550), the politeness
gate (560) and decompression (590)), counts each request as it goes to the download handler and
refuses every one past the cap (:class:`PageCapReached`, an ``IgnoreRequest``: no ``crawl_errors``
row, counted as ``m5data/page_cap/refused``); at the cap it closes the spider
(``closespider_pagecount``), so the requests still queued are dropped, not refused one by one.

What counts, one each: a page request (a start URL, a listing, a sitemap, a product page), its
retries and its redirect hops, and robots.txt's own request: the pages the summary's ``in`` counts,
which so never exceeds N. ``tdmrep.json`` (the TDMRep rules, ``crawl.optout``) is not a page and is
not counted, as ``in`` leaves it out.
"""

from __future__ import annotations

from scrapy.exceptions import IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.httpobj import urlparse_cached

from ..optout import TDMREP_PATH

SENT = "m5data/page_cap/sent"  # crawler stats: page requests sent while a cap is set
REFUSED = "m5data/page_cap/refused"  # crawler stats: requests refused at the cap
REASON = "closespider_pagecount"  # the finish reason of a crawl that reached its cap (Scrapy's own name)


class PageCapReached(IgnoreRequest):
    """A request not sent: the crawl reached ``crawl.max_pages``."""


class PageCapMiddleware:
    """Downloader middleware: at most ``M5DATA_MAX_PAGES`` page requests sent (0: no cap)."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.cap = crawler.settings.getint("M5DATA_MAX_PAGES", 0)
        self.sent = 0
        self.closing = False

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_request(self, request, spider=None) -> None:
        if self.cap <= 0 or _not_a_page(request):
            return
        if self.sent >= self.cap:
            self.crawler.stats.inc_value(REFUSED)
            self._close()
            raise PageCapReached(f"crawl.max_pages = {self.cap} reached")
        self.sent += 1
        self.crawler.stats.set_value(SENT, self.sent)
        if self.sent >= self.cap:
            self._close()

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        from scrapy.utils.defer import deferred_from_coro

        deferred_from_coro(self.crawler.engine.close_spider_async(reason=REASON))


def _not_a_page(request) -> bool:
    """True for the TDMRep rules' own request (``tdmrep.json``), which the summary does not count."""
    return request.callback is NO_CALLBACK and urlparse_cached(request).path == TDMREP_PATH

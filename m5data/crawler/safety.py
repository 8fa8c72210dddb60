"""Crawl safety: scope by host and port, and the download stage's address policy on every request.

Two rules, checked by :class:`SafetyMiddleware` (a Scrapy downloader middleware) on every request
the crawler sends: start URLs, links, sitemap entries, robots.txt, and each hop of a redirect
(Scrapy's ``RedirectMiddleware`` hands a redirect back to the engine as a new request, which
passes through every downloader middleware again, this one included):

* **scope**: a request must be on the host and port of a start URL (or a sub-domain of that
  host); the default ports 80 and 443 count as one, so ``http://shop`` -> ``https://shop`` stays
  in scope. The spider already drops off-scope links (:func:`in_scope`); here a redirect that
  leaves the scope is refused (Scrapy's own ``OffsiteMiddleware`` looks at host names only and
  lets start requests redirect anywhere);
* **addresses**: unless ``crawl.allow_private`` is set, a host written as, or resolving to, a
  loopback, private, link-local, multicast, reserved or unspecified address is refused
  (:func:`m5data.download.addresses.is_public`, the download stage's rule). Host names are
  resolved through the reactor's resolver, whose cache the connection then uses, so the address
  checked is the one connected to.

A refused request raises :class:`RefusedRequest`; the spider's errback turns it into a
``crawl_errors`` row (``refused: ...``) and the crawl goes on.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..download.addresses import is_public

DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedRequest(Exception):
    """A crawl request refused by the safety policy; the message says why."""


def origin(url: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) URL, the port made explicit; None for other URLs or bad ports."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return host, port or DEFAULT_PORTS[scheme]


def crawl_scope(start_urls: list[str]) -> frozenset[tuple[str, int]]:
    """The origins a crawl from ``start_urls`` may request."""
    return frozenset(o for o in map(origin, start_urls) if o is not None)


def in_scope(url: str, scope: frozenset[tuple[str, int]] | set[tuple[str, int]]) -> bool:
    """http(s) on the host (or a sub-domain) and port of one of ``scope``; ports 80 and 443 are one."""
    here = origin(url)
    if here is None:
        return False
    host, port = here
    defaults = set(DEFAULT_PORTS.values())
    return any((host == d or host.endswith("." + d)) and (port == p or (port in defaults and p in defaults))
               for d, p in scope)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


class SafetyMiddleware:
    """Downloader middleware: refuse requests outside the scope or to non-public addresses."""

    def __init__(self, crawler, allow_private: bool):
        self.crawler = crawler
        self.allow_private = allow_private

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, crawler.settings.getbool("M5DATA_ALLOW_PRIVATE"))

    async def process_request(self, request, spider=None):
        url = request.url
        here = origin(url)
        if here is None:
            raise RefusedRequest(f"only http(s) URLs with a host are crawled: {url}")
        spider = spider or getattr(self.crawler, "spider", None)
        scope = getattr(spider, "scope", None)
        if scope and not in_scope(url, scope):
            came = (request.meta.get("redirect_urls") or ["?"])[0]
            self.crawler.stats.inc_value("m5data/refused/offsite")
            raise RefusedRequest(f"off-site redirect from {came} to {url} (the crawl's scope is the host and "
                                 "port of its start URLs; add the target as a start URL to crawl it)")
        if self.allow_private:
            return None
        host = here[0]
        address = _literal(host)
        if address is None:
            address = await self._resolve(host)
            if address is None:
                return None  # not resolvable: the download fails with Scrapy's own DNS error
        if not is_public(address):
            self.crawler.stats.inc_value("m5data/refused/private")
            self.crawler.stats.inc_value(f"m5data/refused/private_host/{host}")  # named by the crawl's error line
            named = f"host {host} resolves to" if address != host.strip("[]") else "address"
            raise RefusedRequest(f"{named} {address}, which is not public (loopback, private, link-local or "
                                 f"reserved); set crawl.allow_private to crawl it: {url}")
        return None

    async def _resolve(self, host: str) -> str | None:
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet import reactor

        try:
            return await maybe_deferred_to_future(reactor.resolve(host))
        except Exception:  # noqa: BLE001  DNS errors and timeouts: the fetch reports them itself
            return None

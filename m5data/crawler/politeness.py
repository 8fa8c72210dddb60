"""What the crawl honours of a shop's requests to slow down: ``Retry-After`` and ``Crawl-delay``.

Scrapy's ``RetryMiddleware`` asks a throttled page again at once (a 429 with ``Retry-After: 4``
was asked three times within 0.3 s) and Scrapy reads no ``Crawl-delay`` (four pages went within
51 ms); shops ban crawlers that do this. :class:`PolitenessMiddleware`, a downloader middleware:

* **Retry-After**: a ``429`` or ``503`` answer's ``Retry-After`` (delta-seconds or an HTTP date,
  capped at ``crawl.max_retry_after``) closes the gate of the whole host (``host:port``), not only
  of that URL, until then. While the host throttles, its requests go one per pause: the waiting
  ones follow as soon as an answer that is not 429/503 arrives. Requests wait at the gate in
  :meth:`~PolitenessMiddleware.process_request` (560: after robots.txt (100) and the retry
  middleware (550), so Scrapy's retry of the URL waits too);
* **Crawl-delay**: robots.txt's ``Crawl-delay`` for our user agent (read when Scrapy's
  ``RobotsTxtMiddleware`` has parsed the file, so only with ``crawl.obey_robots``), capped at
  ``crawl.max_crawl_delay``, or ``crawl.crawl_delay`` instead when set, becomes the delay of the
  host's Scrapy download slot, without jitter and out of AutoThrottle's hands: the slot spaces the
  requests when they are sent (a gate before the slot could not: the slot's own delay would shift
  one request and shorten the next gap), robots.txt's own request counted.

What was honoured is counted per host in the crawl's stats (``m5data/throttle/<host>/<what>``,
read back by :func:`throttle_by_host`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from ..download.retry_after import retry_after_seconds
from .safety import origin

log = logging.getLogger(__name__)

THROTTLE_STATUS = frozenset({429, 503})  # the answers whose Retry-After pauses the host (RFC 9110 10.2.3)
STATS_PREFIX = "m5data/throttle/"
POLL = 0.25  # seconds: a waiting request looks at its host's gate again at least this often


def crawl_delay_for(asked: float | None, cs) -> float:
    """Seconds between two requests to a host whose robots.txt asks ``asked`` (None: nothing).

    ``crawl.crawl_delay`` >= 0 replaces what robots.txt asks (0 ignores it; not capped: it is the
    operator's choice); otherwise robots.txt's value, capped at ``crawl.max_crawl_delay``.
    """
    if asked is None or not math.isfinite(asked) or asked <= 0:
        return 0.0
    if cs.crawl_delay >= 0:
        return float(cs.crawl_delay)
    return min(float(asked), float(cs.max_crawl_delay))


def host_key(url: str) -> str:
    """``host:port`` of a URL (the port made explicit), the key of its gate and of its stats."""
    here = origin(url)
    if here is None:
        return ""
    host, port = here
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def throttle_by_host(stats: dict) -> dict[str, dict[str, float]]:
    """``{host: {what: n}}`` from a crawl's Scrapy stats (the ``m5data/throttle/...`` keys)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in stats.items():
        if key.startswith(STATS_PREFIX):
            host, _, what = key.removeprefix(STATS_PREFIX).rpartition("/")
            number = float(value)  # counts, or seconds for the keys ending in _s
            out.setdefault(host, {})[what] = round(number, 3) if what.endswith("_s") else int(number)
    return out


@dataclass
class _Gate:
    """When the next request to one host may go, and the Crawl-delay its slot gets."""

    closed_until: float = 0.0  # monotonic time: no request before it (Retry-After)
    pause: float = 0.0  # while the host throttles: seconds between two requests (its longest pause)
    last: float = -math.inf  # monotonic time the last request passed
    crawl_delay: float = 0.0  # seconds between two requests, kept by the download slot

    def opens_at(self) -> float:
        return max(self.closed_until, self.last + self.pause)


class PolitenessMiddleware:
    """Downloader middleware: hold each request until its host's gate opens (see the module)."""

    def __init__(self, crawler, *, max_retry_after: float, crawl_delay: float, max_crawl_delay: float):
        self.crawler = crawler
        self.stats = crawler.stats
        self.max_retry_after = max_retry_after
        self.policy = _Policy(crawl_delay, max_crawl_delay)
        self.user_agent = crawler.settings.get("ROBOTSTXT_USER_AGENT") or crawler.settings.get("USER_AGENT") or ""
        self.gates: dict[str, _Gate] = {}  # one per host in the crawl's scope: bounded by the start URLs

    @classmethod
    def from_crawler(cls, crawler):
        from scrapy import signals  # here: the parent process imports this module for throttle_by_host

        opts = crawler.settings.getdict("M5DATA_POLITENESS")
        mw = cls(crawler, max_retry_after=float(opts.get("max_retry_after", 60.0)),
                 crawl_delay=float(opts.get("crawl_delay", -1.0)), max_crawl_delay=float(opts.get("max_crawl_delay", 30.0)))
        crawler.signals.connect(mw.robots_parsed, signal=signals.robots_parsed)
        return mw

    def gate(self, key: str) -> _Gate:
        return self.gates.setdefault(key, _Gate())

    def _count(self, key: str, what: str, n: float = 1) -> None:
        self.stats.inc_value(f"{STATS_PREFIX}{key}/{what}", n)

    # ------------------------------------------------------------------ requests
    async def process_request(self, request, spider=None):
        key = host_key(request.url)
        if not key:
            return None
        gate = self.gate(key)
        if gate.crawl_delay > 0:
            self._space(request, gate.crawl_delay)
        while (wait := gate.opens_at() - time.monotonic()) > 0:
            await _sleep(min(wait, POLL))  # short naps: a lifted or extended pause is seen at once
        gate.last = time.monotonic()
        return None

    def _space(self, request, delay: float) -> None:
        """Have the download slot of ``request``'s host send at most one request per ``delay`` s.

        The slot measures from when each request is sent. Its jitter (+-50% by default) would
        shorten gaps below the Crawl-delay, and AutoThrottle would lower the delay again on
        the next fast answer, so the slot gets no jitter and AutoThrottle leaves this host's
        requests alone; a slot made later (Scrapy drops idle ones) starts from DOWNLOAD_SLOTS.
        """
        downloader = self.crawler.engine.downloader
        key = downloader.get_slot_key(request)
        settings = downloader.per_slot_settings.setdefault(key, {})
        settings["delay"] = max(float(settings.get("delay", 0.0)), delay)
        settings["jitter"] = 0.0
        slot = downloader.slots.get(key)
        if slot is not None:
            slot.delay = max(slot.delay, delay)
            slot.jitter = 0.0
        request.meta["autothrottle_dont_adjust_delay"] = True

    # ------------------------------------------------------------------ answers
    def process_response(self, request, response, spider=None):
        key = host_key(request.url)
        if key:
            if response.status in THROTTLE_STATUS:
                self._throttled(key, request, response)
            else:
                self.gate(key).pause = 0.0  # the host answers again: back to its normal pace
        return response

    def _throttled(self, key: str, request, response) -> None:
        self._count(key, "throttled")
        value = response.headers.get(b"Retry-After")
        asked = retry_after_seconds(value)
        if asked is None:
            return
        wait = min(asked, self.max_retry_after)
        if asked > self.max_retry_after:
            self._count(key, "retry_after_capped")
        gate = self.gate(key)
        gate.closed_until = max(gate.closed_until, time.monotonic() + wait)
        gate.pause = max(gate.pause, wait)
        self._count(key, "retry_after_s", wait)
        log.info("%s answered %d with Retry-After %r: no request to %s for %.1f s%s", request.url, response.status,
                 value.decode("latin-1") if isinstance(value, bytes) else value, key, wait,
                 f" (capped by crawl.max_retry_after from {asked:.0f} s)" if asked > self.max_retry_after else "")

    # ------------------------------------------------------------------ robots.txt
    def robots_parsed(self, robotparser, request, **kwargs) -> None:
        """Take the Crawl-delay of the robots.txt Scrapy just parsed for ``request``'s origin."""
        key = host_key(request.url)
        read = getattr(robotparser, "crawl_delay", None)
        if not key or read is None:
            return
        try:
            asked = read(self.user_agent)
        except Exception as exc:  # noqa: BLE001  an unreadable Crawl-delay is no delay, never a failed crawl
            log.warning("cannot read the Crawl-delay of %s's robots.txt: %s", key, exc)
            return
        delay = self.policy.delay(asked)
        if delay <= 0:
            return
        self.gate(key).crawl_delay = delay
        self._space(request, delay)
        self.stats.set_value(f"{STATS_PREFIX}{key}/crawl_delay_s", delay)
        if asked is not None and asked != delay:
            self.stats.set_value(f"{STATS_PREFIX}{key}/crawl_delay_asked_s", float(asked))
        log.info("robots.txt of %s asks Crawl-delay %s: %.1f s between requests", key, asked, delay)


@dataclass
class _Policy:
    """The ``crawl.crawl_delay`` / ``crawl.max_crawl_delay`` pair, for :func:`crawl_delay_for`."""

    crawl_delay: float
    max_crawl_delay: float

    def delay(self, asked: float | None) -> float:
        return crawl_delay_for(asked, self)


async def _sleep(seconds: float) -> None:
    """Wait without blocking the reactor (whichever reactor Scrapy runs)."""
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet import reactor, task

    await maybe_deferred_to_future(task.deferLater(reactor, seconds, lambda: None))

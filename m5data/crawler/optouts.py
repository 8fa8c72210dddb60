"""The crawl's side of owners' opt-outs (m5data/optout.py): a product page that states one is not stored.

:class:`TdmRepMiddleware` fetches each host's ``/.well-known/tdmrep.json`` once per run, before the
first page of that host, and hands its rules to the spider in the request's meta; the spider asks
:func:`page_optout` of every product page, and yields an :class:`OptedOut` item instead of the
product when the page opts out (its links are still followed: an opt-out is not a ``nofollow``).
A link to a product page that robots.txt disallows (Scrapy's ``RobotsTxtMiddleware`` drops it) is
an :class:`OptedOut` item too (:func:`robots_refusal`), without a product id: the page was never read.
An opt-out sent on a redirect hop (a 301 whose X-Robots-Tag says ``noai``) is the page's:
:class:`RedirectOptOutMiddleware` reads each hop's headers before Scrapy's redirect middleware follows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from ..optout import TDMREP_PATH, OptOut, agent_token, robots_optout, tdm_optout, tdmrep_rules

log = logging.getLogger(__name__)
RULES_META = "m5data_tdmrep"  # request meta: the rules of the request's host (a list, possibly empty)
HOP_META = "m5data_hop_optout"  # request meta: the OptOut a redirect hop on the way to it stated
FETCHED = "m5data/tdmrep/fetched"  # crawler stats: tdmrep.json responses (not pages: crawl.py takes them off)
ROBOTS = "m5data/optouts/robots.txt"  # crawler stats: product links robots.txt disallowed (in m5data/optouts/page too)
# the reason Scrapy's RobotsTxtMiddleware gives the IgnoreRequest of a disallowed request (no type of its own)
ROBOTS_FORBIDDEN = "Forbidden by robots.txt"


@dataclass
class OptedOut:
    """A product page that opts out: the link followed to it, its product, what it stated."""

    url: str
    product_id: str | None  # None: a page robots.txt disallowed, never read
    optout: OptOut


def robots_refusal(failure) -> OptOut | None:
    """The opt-out of a request robots.txt disallowed (``failure``: its errback's), else None."""
    if failure.check(IgnoreRequest) and str(failure.value) == ROBOTS_FORBIDDEN:
        return OptOut("robots.txt", "Disallow")
    return None


def optout_settings(cs, user_agent: str) -> dict:
    """The Scrapy settings of the ``[crawl]`` section's opt-out keys (the agent: ``http.user_agent``'s token)."""
    return {"M5DATA_OPTOUT": {"agent": agent_token(user_agent),
                              "directives": [d.strip().lower() for d in cs.optout_directives.split(",") if d.strip()],
                              "tdmrep": cs.tdmrep}}


def robots_metas(page, agent: str) -> list[str]:
    """The page's robots meta tags as X-Robots-Tag values: ``<meta name="robots" content>`` as it is,
    ``<meta name="<agent>" content>`` scoped to ``agent`` (a name in any case)."""
    if page is None or page.tree is None:
        return []
    values = []
    for meta in page.tree.xpath("//meta[@name and @content]"):
        name = (meta.get("name") or "").strip().lower()
        if name in ("robots", agent):
            values.append(meta.get("content") if name == "robots" else f"{agent}: {meta.get('content')}")
    return values


def page_optout(response, page, config: dict) -> OptOut | None:
    """The opt-out a product page states (its X-Robots-Tag, its robots meta tags, its tdm-reservation
    header or meta, its host's tdmrep.json), or None. ``page``: the parsed page (its meta), None for a
    body not read."""
    if not config:  # a crawl whose settings have no M5DATA_OPTOUT (built without crawl.build_settings)
        return None
    if hop := response.meta.get(HOP_META):  # a redirect on the way here said it
        return hop
    values = [v.decode("latin-1") for v in response.headers.getlist("X-Robots-Tag")]
    if found := robots_optout(values, config["agent"], config["directives"]):
        return found
    if found := robots_optout(robots_metas(page, config["agent"]), config["agent"], config["directives"]):
        return OptOut("robots-meta", found.directive)
    if not config["tdmrep"]:
        return None
    meta = policy = None
    if page is not None and page.tree is not None:
        meta, policy = (next(iter(page.tree.xpath(f'//meta[translate(@name, "TDMRESVAIONPLCY", "tdmresvaionplcy")="{name}"]'
                                                  "/@content")), None) for name in ("tdm-reservation", "tdm-policy"))
    url = urlparse_cached(response)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return tdm_optout(response.headers.get("tdm-reservation"), meta, response.meta.get(RULES_META), path,
                      policy or response.headers.get("tdm-policy"))


class RedirectOptOutMiddleware:
    """Downloader middleware (610: its ``process_response`` runs before Scrapy's ``RedirectMiddleware``,
    600, turns a 3xx into the next request): the opt-out a redirect hop states (its X-Robots-Tag, its
    ``tdm-reservation`` header, its host's tdmrep.json for its path) goes on in the request's meta,
    which the redirect copies, so the page it leads to is opted out (:func:`page_optout`)."""

    def __init__(self, crawler):
        self.config = crawler.settings.getdict("M5DATA_OPTOUT") or {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_response(self, request, response, spider=None):
        if 300 <= response.status < 400 and b"Location" in response.headers and not request.meta.get(HOP_META):
            if found := page_optout(response.replace(request=request), None, self.config):  # tied: its meta
                request.meta[HOP_META] = found
        return response


class TdmRepMiddleware:
    """Downloader middleware: each host's ``/.well-known/tdmrep.json``, fetched once per run before its
    first page (as Scrapy's robots.txt middleware does), its rules put in every request's meta. A host
    without the file (404, an error, not a JSON array of rules) has no rules."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.enabled = bool((crawler.settings.getdict("M5DATA_OPTOUT") or {}).get("tdmrep"))
        self.rules: dict[str, list | Deferred] = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_request(self, request, spider=None) -> None:
        if not self.enabled or request.meta.get(RULES_META) is not None or not request.url.startswith("http"):
            return
        if request.meta.get("dont_obey_robotstxt"):  # robots.txt itself: the rules' request waits for it
            return
        request.meta[RULES_META] = await self._rules(request)

    async def _rules(self, request) -> list:
        url = urlparse_cached(request)
        if url.netloc not in self.rules:
            self.rules[url.netloc] = waiting = Deferred()
            rules_url = f"{url.scheme}://{url.netloc}{TDMREP_PATH}"
            found: list = []
            try:
                response = await self.crawler.engine.download_async(Request(
                    rules_url, priority=1000, callback=NO_CALLBACK, meta={RULES_META: [], "dont_retry": True}))
                self.crawler.stats.inc_value(FETCHED)
                if response.status == 200:
                    found = tdmrep_rules(response.body)
            except Exception as exc:  # noqa: BLE001  no readable rules: none for the host
                log.info("no TDMRep rules from %s: %s: %s", rules_url, type(exc).__name__, exc)
            self.rules[url.netloc] = found
            waiting.callback(found)
        rules = self.rules[url.netloc]
        return await maybe_deferred_to_future(rules) if isinstance(rules, Deferred) else rules

"""A request that failed (an errback's ``failure``) -> its row: a :class:`PageError` naming why, an
:class:`OptedOut` for a product page that robots.txt refuses, nothing for a page the page cap held
back, or the partly read product whose rendering failed."""

from __future__ import annotations

import traceback

from scrapy.exceptions import IgnoreRequest
from scrapy.spidermiddlewares.httperror import HttpError

from .items import PageError, ProductItem, host_platform
from .optouts import ROBOTS, OptedOut, robots_refusal
from .pagecap import PageCapReached
from .safety import RefusedRequest
from .walls import link_of, login_redirect, too_large


def failure_items(spider, failure):
    """The items of ``spider``'s (a :class:`~.spider.ProductSpider`) failed request ``failure``."""
    request = failure.request
    platform = spider.choose(request.url).platform or host_platform(request.url)
    if isinstance(fallback := request.meta.get("m5data_fallback"), ProductItem):
        # rendering a partly read product failed: keep what the plain fetch gave, say why it is partial
        fallback.problems.append(f"render failed: {type(failure.value).__name__}: {str(failure.value)[:160]}")
        spider.crawler.stats.inc_value("m5data/product_pages")  # the plain fetch's page, which deferred its item
        yield fallback
        return
    if failure.check(PageCapReached):  # not sent: crawl.max_pages was reached (pagecap.py)
        return
    if request.meta.get("depth", 0) == 0:  # a start URL that could not be fetched yields nothing
        spider._empty_start(request.meta.get("redirect_urls", [request.url])[0])
    link = link_of(request)
    # a body over crawl.max_page_bytes, or a redirect to a login page (refused off-site, disallowed by
    # robots.txt, or answering an HTTP error): the row names the link followed
    if reason := too_large(failure, spider.max_page_bytes) or login_redirect(link, request.url):
        for exc in (failure.value, failure.value.__cause__):
            # the frames of Scrapy's gunzip hold the inflated body (up to the cap), those of the
            # middleware the response, in a reference cycle: freed now, not at the next garbage
            # collection (64 such pages: 1.3 GiB RSS, instead of 0.3)
            if exc is not None and exc.__traceback__ is not None:
                traceback.clear_frames(exc.__traceback__)
        yield PageError(link, spider.choose(link).platform or host_platform(link), reason)
        return
    if failure.check(RefusedRequest):  # the safety policy (off-site redirect, private address)
        yield PageError(request.url, platform, f"refused: {failure.value}")
        return
    if failure.check(IgnoreRequest) and not failure.check(HttpError):
        spider.crawler.stats.inc_value("m5data/ignored_requests")  # robots.txt or off-site: policy, not failure
        if (found := robots_refusal(failure)) and spider.choose(request.url).is_product_url(request.url):
            spider.crawler.stats.inc_value("m5data/optouts/page")  # an owner's refusal of a product page
            spider.crawler.stats.inc_value(ROBOTS)
            yield OptedOut(request.url, None, found)
        if request.meta.get("depth", 0) == 0:
            yield PageError(request.url, platform, f"no product found: the start URL was not fetched "
                                                   f"({type(failure.value).__name__}: {str(failure.value)[:120] or 'ignored'})")
        return
    if failure.check(HttpError):
        status = failure.value.response.status
        yield PageError(request.url, platform, f"http {status}", status)
        return
    yield PageError(request.url, platform, f"download error: {type(failure.value).__name__}: {str(failure.value)[:200]}")

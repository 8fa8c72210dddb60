"""The session's Scrapy downloader middlewares (:mod:`.session` has the rules; Scrapy is imported here only)."""

from __future__ import annotations

from scrapy.downloadermiddlewares.cookies import CookiesMiddleware

from .session import SECRET_HEADERS, headers_for, load_cookies


class SessionCookiesMiddleware(CookiesMiddleware):
    """Scrapy's cookie middleware, its jar filled from ``crawl.cookies_file`` (``M5DATA_COOKIES_FILE``)
    first: the jar's own rules (domain, path, secure) send each cookie only where it belongs."""

    @classmethod
    def from_crawler(cls, crawler):
        middleware = super().from_crawler(crawler)
        path = crawler.settings.get("M5DATA_COOKIES_FILE")
        if path:
            cookies = load_cookies(path)
            for cookie in cookies:
                middleware.jars[None].set_cookie(cookie)
            crawler.stats.set_value("m5data/session_cookies", len(cookies))
        return middleware


class SessionMiddleware:
    """Downloader middleware: each request gets the ``crawl.headers`` of its host, and loses every
    configured header name of other hosts (a redirect to another in-scope host copies headers)."""

    def __init__(self, crawler, table: dict[str, dict[str, str]]):
        self.crawler = crawler
        self.table = table
        self.names = {name.lower() for names in table.values() for name in names}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, SECRET_HEADERS)

    def process_request(self, request, spider=None):
        if not self.table:
            return None
        mine = headers_for(self.table, request.url)
        for name in list(request.headers.keys()):
            text = name.decode("latin-1").lower()
            if text in self.names and text not in {k.lower() for k in mine}:
                del request.headers[name]
        for name, value in mine.items():
            request.headers[name] = value
        return None

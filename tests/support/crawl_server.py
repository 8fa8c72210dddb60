"""A small threaded HTTP server for crawl tests: fixed routes on 127.0.0.1, a log of requested paths."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Page:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (Retry-After, Location, Content-Encoding, ...)
    extra_headers: tuple = ()  # (name, value) pairs sent besides Content-Type and Content-Length


class SiteServer:
    """Serves ``routes`` (path -> Page | str | bytes, or a function of the path's hit number, 1 for
    the first request, and the request's headers, returning one) on 127.0.0.1; 404 for anything else.

    ``requests`` lists every requested path (with query) in order, ``arrivals`` the same requests as
    ``(time.monotonic(), path, headers)``; ``delay`` slows each response; ``headers`` lists each
    request's ``(path, headers)``; ``gate(path, headers)`` may answer a request with its own Page
    instead (a login redirect, a 403) by returning one.
    """

    def __init__(self, routes: dict[str, Page | str | bytes | Callable[[int, dict[str, str]], Page]], delay: float = 0.0,
                 gate=None, host: str = "127.0.0.1"):
        self.routes = {p: self._page(v) for p, v in routes.items()}
        self.delay = delay
        self.gate = gate
        self.host = host
        self.requests: list[str] = []
        self.arrivals: list[tuple[float, str, dict[str, str]]] = []
        self._hits: Counter = Counter()
        self.headers: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                with server._lock:
                    server.requests.append(self.path)
                    headers = dict(self.headers.items())
                    server.arrivals.append((time.monotonic(), self.path, headers))
                    server.headers.append((self.path, headers))
                    server._hits[self.path] += 1
                    hit = server._hits[self.path]
                if server.delay:
                    time.sleep(server.delay)
                page = (server.gate(self.path, self.headers) if server.gate else None) or server.routes.get(self.path) \
                    or Page(b"<html><body>not found</body></html>", status=404)
                if callable(page):
                    page = server._page(page(hit, headers))
                try:
                    self.send_response(page.status)
                    for name, value in page.extra_headers:
                        self.send_header(name, value)
                    self.send_header("Content-Type", page.content_type)
                    for name, value in page.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(page.body)))
                    self.end_headers()
                    self.wfile.write(page.body)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-response
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def add(self, path: str, value: Page | str | bytes | Callable[[int, dict[str, str]], Page]) -> None:
        self.routes[path] = self._page(value)

    @staticmethod
    def _page(value) -> Page:
        if isinstance(value, Page) or callable(value):
            return value
        return Page(value.encode("utf-8") if isinstance(value, str) else value)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def jsonld_shop(server: SiteServer, n_products: int = 30, per_page: int = 10, prefix: str = "") -> list[str]:
    """Add a small schema.org shop to ``server``: paginated listings, JSON-LD product pages, robots.txt.

    Listing pages also link a robots-disallowed cart and an off-site page (``localhost``), which a
    crawl must never fetch. Returns the source ids (schema.org ``sku``) of the products, in order.
    """
    import json

    skus = [f"SKU-{i:04d}" for i in range(n_products)]
    pages = max(1, -(-n_products // per_page))
    server.add("/robots.txt", Page(b"User-agent: *\nDisallow: /cart\nDisallow: /private/\n", "text/plain"))
    for page in range(1, pages + 1):
        chunk = skus[(page - 1) * per_page: page * per_page]
        links = "".join(f'<li><a href="{prefix}/p/{sku}.html?ref=list{page}">{sku}</a></li>' for sku in chunk)
        nxt = f'<a rel="next" href="{prefix}/list/{page + 1}.html">next</a>' if page < pages else ""
        server.add(f"{prefix}/list/{page}.html",
                   f'<html><body><a href="/cart?add=1">cart</a> <a href="http://localhost:{server.port}/offsite.html">ad</a>'
                   f"<ul>{links}</ul>{nxt}</body></html>")
    for i, sku in enumerate(skus):
        ld = {"@context": "https://schema.org", "@type": "Product", "sku": sku, "name": f"Produkt Nr. {i} &amp; mehr",
              "image": [f"https://cdn.example.invalid/{sku}/{k}.jpg" for k in range(1 + i % 3)],
              "offers": {"@type": "Offer", "price": f"{10 + i}.50", "priceCurrency": "EUR"},
              "additionalProperty": [{"@type": "PropertyValue", "name": "Farbe:", "value": ["rot", "blau"][i % 2]},
                                     {"@type": "PropertyValue", "name": "Gewicht", "value": str(i), "unitText": "kg"}]}
        crumbs = {"@context": "https://schema.org", "@type": "BreadcrumbList", "itemListElement": [
            {"@type": "ListItem", "position": 1, "name": "Start", "item": "/"},
            {"@type": "ListItem", "position": 2, "name": f"Kategorie {i % 4}", "item": "/list/1.html"}]}
        server.add(f"{prefix}/p/{sku}.html?ref=list{i // per_page + 1}",
                   f'<html><head><script type="application/ld+json">{json.dumps(ld)}</script>'
                   f'<script type="application/ld+json">{json.dumps(crumbs)}</script></head>'
                   f'<body><h1>{sku}</h1><a href="{prefix}/list/1.html">back</a></body></html>')
    return skus


def product_pages(server: SiteServer, skus: list[str]):
    """``(path, i, page)`` of each product page of a :func:`jsonld_shop`: ``i`` its index in ``skus``."""
    for path, page in list(server.routes.items()):
        if path.startswith("/p/"):
            yield path, skus.index(path.split("/p/")[1].split(".")[0]), page


def crawl_shop(store, server: SiteServer, skus: list[str]):
    """Crawl a :func:`jsonld_shop` from its first listing into ``store`` (serving it meanwhile): the
    crawl's stats and each product id's index in ``skus``."""
    from m5data.config import load
    from m5data.crawler.crawl import run as crawl

    with server:
        stats = crawl(store, load(overrides={"crawl.allow_private": True}, environ={}),
                      start_urls=[server.url + "/list/1.html"])
    return stats, {f"127.0.0.1:{sku}": i for i, sku in enumerate(skus)}

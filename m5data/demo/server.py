"""Serve a generated demo shop over HTTP on 127.0.0.1 with aiohttp.

Files stream from ``<out>/site`` through ``web.FileResponse`` (Content-Length, ETag,
Last-Modified, range requests). ``<out>/serve.json`` adds the faults: URLs that answer 500 once
and then succeed, URLs that answer after ``slow_seconds``, product pages sent without a charset.
The disallowed cart/login/search paths answer 200, so only the request log tells whether a
crawler obeyed robots.txt.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from pathlib import Path

from aiohttp import web

from ..threaded_app import ThreadedApp
from .site import BASE, listing_file, listing_url

HOST = "127.0.0.1"
TRAPS = ("/cart", "/login", "/shopa/cart", "/shopa/login", "/shopa/search", "/shopb/cart",
         "/shopb/login", "/shopb/search")
CONTENT_TYPES = {".html": "text/html", ".jpg": "image/jpeg", ".png": "image/png",
                 ".gif": "image/gif", ".mp4": "video/mp4", ".xml": "application/xml; charset=utf-8",
                 ".txt": "text/plain; charset=utf-8", ".json": "application/json"}


class ShopServer:
    """The request handling of one served shop: files, faults and the request log.

    Args:
        shop_dir: a folder written by ``generate`` (holding ``site/`` and ``serve.json``).
        slow_seconds: how long a "slow" URL waits before answering.
        log_requests: keep ``requests``, the (method, path_qs, status) log (off for the CLI's
            long-running server, whose log would only grow).
    """

    def __init__(self, shop_dir: str | Path, slow_seconds: float = 2.0, log_requests: bool = True):
        self.out_dir = Path(shop_dir).resolve()
        self.site_dir = self.out_dir / "site"
        if not (self.site_dir / "robots.txt").exists():
            raise FileNotFoundError(f"{self.out_dir} holds no generated demo shop (site/robots.txt)")
        config_path = self.out_dir / "serve.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        self.transient = frozenset(config.get("transient_500", []))
        self.slow = frozenset(config.get("slow", []))
        self.no_charset = frozenset(config.get("no_charset", []))
        self.charset = config.get("charset", {"shopa": "utf-8", "shopb": "gbk"})
        self.headers: dict[str, dict[str, str]] = config.get("headers", {})  # opt-outs (demo/optouts.py)
        self.later: dict[str, dict[str, str]] = config.get("later", {})  # opt-outs once told (demo/cases.py)
        self.later_on = False
        self.slow_seconds = slow_seconds
        self.log_requests = log_requests
        self.requests: list[tuple[str, str, int]] = []
        self._failed_once: set[str] = set()

    def clear_requests(self) -> None:
        """Forget the request log."""
        self.requests.clear()

    def reset_faults(self) -> None:
        """Re-arm the answer-500-once URLs."""
        self._failed_once.clear()

    def opt_out_later(self) -> None:
        """From now on the ``later`` pages answer their opt-out headers (a product that opts out after
        it was stored: ``serve.json`` ``later``, demo/cases.py)."""
        self.later_on = True

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._on_prepare)
        return app

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        # Logged when the status is final (FileResponse decides 200/206/304/416 only here).
        response.headers["Server"] = "m5data-demo-shop"
        if self.log_requests:
            self.requests.append((request.method, request.path_qs, response.status))

    def _resolve(self, request: web.Request) -> tuple[str, Path | None]:
        """The fault key (canonical URL) and the file behind a request, if any."""
        path = request.path
        if path == "/shopb/list.html":
            cat, page = request.query.get("cat", ""), request.query.get("page", "1")
            if not cat.replace(",", "").isdigit() or not page.isdigit() or int(page) < 1:
                return path, None
            return listing_url("shopb", cat, int(page)), self.site_dir / listing_file("shopb", cat, int(page))
        if ".." in path.split("/"):
            return path, None
        target = self.site_dir / path.lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        return path, target

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        if request.path.startswith(TRAPS):
            return web.Response(text="<html><body><h1>请登录</h1></body></html>",
                                content_type="text/html", charset="utf-8")
        key, target = self._resolve(request)
        if key in self.transient and key not in self._failed_once:
            self._failed_once.add(key)
            raise web.HTTPInternalServerError(text="500 Internal Server Error (transient)")
        if key in self.slow:
            await asyncio.sleep(self.slow_seconds)
        if target is None or not target.is_file():
            raise web.HTTPNotFound(text="404 Not Found")
        suffix = target.suffix.lower()
        if target.name in ("robots.txt", "sitemap.xml"):
            base = f"{request.scheme}://{request.host}"
            body = target.read_text(encoding="utf-8").replace(BASE, base).encode("utf-8")
            response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPES[suffix]})
            response.etag = hashlib.sha1(body).hexdigest()[:16]
            return response
        content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
        if suffix == ".html" and key not in self.no_charset:
            platform = request.path.split("/")[1]
            content_type += f"; charset={self.charset.get(platform, 'utf-8')}"
        return web.FileResponse(target, headers={"Content-Type": content_type, "Cache-Control": "max-age=300",
                                                 **self.headers.get(key, {}),
                                                 **(self.later.get(key, {}) if self.later_on else {})})


def serve(shop_dir: str | Path, port: int = 8000, slow_seconds: float = 2.0) -> None:
    """Serve a shop on 127.0.0.1:``port`` until interrupted (the ``serve`` CLI command)."""
    server = ShopServer(shop_dir, slow_seconds, log_requests=False)
    web.run_app(server.app(), host=HOST, port=port, access_log=None,
                print=lambda _: print(f"demo shop on http://{HOST}:{port}/ (Ctrl-C stops)"))


class RunningShop(ThreadedApp):
    """A shop served from a background thread; also a context manager that stops it.

    Attributes: ``url`` (base URL, no trailing slash), ``port``, ``out_dir``, ``site_dir``,
    ``truth_dir``, ``truth`` (loaded lazily), ``server`` (the ShopServer), ``requests`` (list of
    (method, path_qs, status), in the order the responses started).
    """

    def __init__(self, shop_dir: str | Path, port: int = 0, slow_seconds: float = 2.0):
        self.server = ShopServer(shop_dir, slow_seconds)
        self.out_dir, self.site_dir = self.server.out_dir, self.server.site_dir
        self.truth_dir = self.out_dir / "truth"
        super().__init__(self.server.app, HOST, port, "demo shop server")

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return self.server.requests

    @functools.cached_property
    def truth(self):
        """The shop's ground truth (``m5data.demo.truth.Truth``), loaded on first use."""
        from .truth import load_truth

        return load_truth(self.out_dir)

    def clear_requests(self) -> None:
        self.server.clear_requests()

    def reset_faults(self) -> None:
        self.server.reset_faults()

    def opt_out_later(self) -> None:
        self.server.opt_out_later()


def serve_in_thread(shop_dir: str | Path, port: int = 0, slow_seconds: float = 2.0) -> RunningShop:
    """Start serving ``shop_dir`` on 127.0.0.1 (port 0: a free one); ``with`` it to stop it."""
    return RunningShop(shop_dir, port, slow_seconds)

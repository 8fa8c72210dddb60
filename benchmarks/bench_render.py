"""Crawl --render: what rendering costs per page, against the same pages crawled without a browser.

    python benchmarks/bench_render.py [--pages 20]

Serves N product pages of the demo shop (60 products, the test suite's cached shop) twice on a
local server: as they are, and as JavaScript-only shells (the script writes the page, as in
tests/crawler/test_crawl_render.py). Crawls the plain pages without rendering (baseline), then the
shells with ``crawl.render`` on, in the same invocation, from an index page linking them. Prints
wall and CPU seconds (the crawl subprocess and its children: the Playwright driver and
Chromium), the extra seconds per rendered page, the ratio, and products stored.
"""

from __future__ import annotations

import argparse
import base64
import http.server
import resource
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the demo shop fixtures


def shell(html: bytes) -> bytes:
    b64 = base64.b64encode(html).decode()
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>loading</title></head><body><div id=\"app\"></div>"
            f"<script>(function(){{var r=atob(\"{b64}\"),b=new Uint8Array(r.length);for(var i=0;i<r.length;i++)b[i]=r.charCodeAt(i);"
            "document.open();document.write(new TextDecoder('utf-8').decode(b));document.close();})();</script></body></html>").encode()


def serve(routes: dict[str, bytes]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            body = body if body is not None else b"not found"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def crawl(url: str, render: bool) -> tuple[float, float, int]:
    from m5data.config import load
    from m5data.crawler.crawl import run
    from m5data.storage import Store

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "store")
        start = time.perf_counter()
        stats = run(store, load(overrides={"crawl.render": render, "crawl.max_depth": 1, "crawl.render_timeout": 60.0,
                                          "crawl.allow_private": True},  # the shop is on 127.0.0.1
                                environ={}), start_urls=[url])
        wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, stats.n_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=ROOT / ".pytest_cache" / "d" / "m5data-demo-shop")
    args = parser.parse_args()
    from support.demo_fixtures import DEMO_SHOP_CONFIG, SLOW_SECONDS, cached_shop

    from m5data.demo.server import serve_in_thread

    args.cache.mkdir(parents=True, exist_ok=True)
    shop_dir = cached_shop(args.cache, **DEMO_SHOP_CONFIG)
    with serve_in_thread(shop_dir, slow_seconds=SLOW_SECONDS) as shop:
        picked = [p for p in shop.truth.products if p["platform"] == "shopa" and p["page_fault"] == "none"
                  and p["http_fault"] in (None, "none") and p["reachable"]][: args.pages]
        pages = {p["url"]: urllib.request.urlopen(shop.url + p["url"], timeout=30).read() for p in picked}
    results = {}
    for name, render in (("plain", False), ("render", True)):
        routes = {path: (shell(body) if render else body) for path, body in pages.items()}
        routes["/"] = ("<html><body>" + "".join(f'<a href="{p}">{i}</a>' for i, p in enumerate(pages)) + "</body></html>").encode()
        httpd = serve(routes)
        try:
            results[name] = crawl(f"http://127.0.0.1:{httpd.server_address[1]}/", render)
        finally:
            httpd.shutdown()
        wall, cpu, n = results[name]
        print(f"{name:6s}: {len(pages)} product pages, wall {wall:.2f} s, CPU {cpu:.2f} s, products stored {n}", flush=True)
    (pw, pc, _), (rw, rc, _) = results["plain"], results["render"]
    n = len(pages)
    print(f"render costs {(rw - pw) / n:.2f} s wall and {(rc - pc) / n:.2f} s CPU more per rendered page "
          f"(ratio wall {rw / pw:.2f}, CPU {rc / pc:.2f}); Chromium start-up included once")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

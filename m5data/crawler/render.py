"""Pages that need a browser, responses that are not HTML, and why a page gave no product.

Rendering (``crawl.render`` / ``--render``) is opt-in and per page: every page is first fetched
plainly; a page is fetched again through scrapy-playwright driving Debian's Chromium
(``/usr/bin/chromium``, never a downloaded browser) only when :func:`needs_render` says its
product data is filled in by scripts. Images, media and fonts are not loaded in the browser
(:func:`abort_request`); the page has ``crawl.render_timeout`` seconds.
"""

from __future__ import annotations

import os
import re

CHROMIUM = os.environ.get("M5DATA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
_BLOCKED = {"image", "media", "font"}
_TEXT_PAYLOAD = re.compile(rb"^\s*(?:[\[{]|(?:var|let|const|window)\b|[\w$.]+\s*(?:=|\())")


def playwright_settings(timeout: float) -> dict:
    """Scrapy settings that route requests marked ``playwright`` through headless Chromium
    (the others keep Scrapy's own HTTP handler)."""
    return {
        "DOWNLOAD_HANDLERS": {"http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
                              "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"},
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS,
                                      "timeout": 120_000},  # starting Chromium on a busy machine: not the page's budget
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": int(timeout * 1000),
        "PLAYWRIGHT_ABORT_REQUEST": "m5data.crawler.render.abort_request",
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4,
    }


def abort_request(request) -> bool:
    """scrapy-playwright hook: skip images, video/audio and fonts (the crawl stores their URLs only)."""
    return request.resource_type in _BLOCKED


def render_meta(timeout: float) -> dict:
    """Request meta of a page fetched again through the browser."""
    return {"playwright": True, "m5data_rendered": True,
            "playwright_page_goto_kwargs": {"wait_until": "networkidle", "timeout": int(timeout * 1000)}}


def check_browser() -> str | None:
    """Why rendering cannot work here (no Chromium at ``CHROMIUM``), or None."""
    if not os.path.isfile(CHROMIUM) or not os.access(CHROMIUM, os.X_OK):
        return f"--render needs Chromium at {CHROMIUM} (apt-get install -y chromium fonts-noto-cjk)"
    try:
        import scrapy_playwright  # noqa: F401
    except ImportError:
        return "--render needs the scrapy-playwright package"
    return None


def as_text_response(response):
    """A non-text response (``application/octet-stream``, no content type) whose body is a JSON or
    JavaScript payload, as a TextResponse; None for binary bodies."""
    from scrapy.http import TextResponse

    body = response.body[:4096]
    if not body or b"\x00" in body or not _TEXT_PAYLOAD.match(body):
        return None
    from .charset import detect_encoding

    return TextResponse(response.url, status=response.status, headers=response.headers, body=response.body,
                        encoding=detect_encoding(response.body, None), request=response.request)


def script_driven(page) -> bool:
    """Whether an HTML page looks like a shell its scripts fill in: scripts, and little visible
    text or no links."""
    if page is None or page.tree is None:
        return False
    tree = page.tree
    if not tree.xpath("//script"):
        return False
    text = "".join(tree.xpath("//body//text()[not(ancestor::script) and not(ancestor::style) and not(ancestor::noscript)]"))
    return len(" ".join(text.split())) < 500 or not tree.xpath("//a[@href]")


def needs_render(response, page, item) -> bool:
    """A page worth rendering: HTML that its scripts fill in and that gave no product (or a
    product without title, price or image)."""
    if page is None:
        return False
    if item is not None:
        return not (item.title and item.price is not None and item.images) and bool(page.tree is not None and page.tree.xpath("//script"))
    return script_driven(page)


def no_product_reason(response, page, adapter, rendered: bool = False) -> str:
    """Why a response that gave no product gave none (the text after ``no product found:``)."""
    name = adapter.name
    if page is None:
        return f"the JSON/JavaScript response holds no item the {name} adapter reads"
    if page.tree is None:
        return "the page is not readable HTML"
    what = "no schema.org Product or og:type product" if name == "generic" else f"not a {name} product page"
    reason = f"{what}, and no in-scope link to follow"
    if rendered:
        return reason + " (after rendering)"
    if script_driven(page):
        reason += "; its scripts may fill the product in: crawl with --render"
    return reason

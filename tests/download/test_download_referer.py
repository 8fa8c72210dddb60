"""Downloads send the product page as ``Referer`` (issue 35, defect 13).

Shop CDNs often refuse hotlinking: an image is served only to a request that comes from the
shop's pages. The image server here (127.0.0.1) answers 403 unless the ``Referer`` is the page of
the image's product, as such a CDN would; the product's page URL is in the ``products`` table.
"""

import pytest
from support.crawl_server import Page, SiteServer
from support.media_server import jpeg_bytes, media_rows

from m5data.config import load
from m5data.download.referer import referer_for
from m5data.download.run import run

JPEG = jpeg_bytes(64, 48, seed=3)
PAGES = {"shop:1": "http://shop.test/p/1.html?ref=list1", "shop:2": "http://shop.test/p/2.html"}


def referer(headers: dict) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get("referer")


@pytest.fixture
def cdn():
    """Images /img/<product>/<n>.jpg, served only to a request whose Referer is that product's page."""
    def guarded(product_id: str):
        def answer(hit: int, headers: dict) -> Page:
            if referer(headers) == PAGES[product_id]:
                return Page(JPEG, "image/jpeg")
            return Page(b"hotlinking is not allowed\n", "text/plain", 403)
        return answer
    server = SiteServer({f"/img/{pid.replace(':', '-')}/{n}.jpg": guarded(pid) for pid in PAGES for n in range(2)})
    with server:
        yield server


def fill(store, cdn) -> None:
    store.write("products", [{"product_id": pid, "platform": "shop", "source_id": pid.split(":")[1], "url": url}
                             for pid, url in PAGES.items()])
    for pid in PAGES:
        store.write("media", media_rows([cdn.url + f"/img/{pid.replace(':', '-')}/{n}.jpg" for n in range(2)],
                                        product_id=pid))
    # a media row with no product row (a URL list registered by `m5data download --source`): no Referer
    store.write("media", media_rows([cdn.url + "/img/orphan.jpg"], product_id="list:1"))


def settings(**overrides):
    return load(overrides={"download.allow_private": True, "download.retries": 0, **overrides}, environ={})


def test_images_behind_hotlink_protection_are_stored(store, cdn):
    fill(store, cdn)
    stats = run(store, settings())
    status = {r["url"].rsplit("/img/", 1)[1]: (r["status"], r["http_status"]) for r in store.read("media").to_pylist()}
    # before the fix: every image failed with HTTP 403 (no Referer sent)
    assert status == {"shop-1/0.jpg": ("ok", 200), "shop-1/1.jpg": ("ok", 200), "shop-2/0.jpg": ("ok", 200),
                      "shop-2/1.jpg": ("ok", 200), "orphan.jpg": ("failed", 404)}
    assert stats.n_out == 4
    sent = {path: referer(headers) for _, path, headers in cdn.arrivals}
    assert sent["/img/shop-1/0.jpg"] == PAGES["shop:1"] and sent["/img/orphan.jpg"] is None
    media_columns = set(store.read("media").column_names)
    assert "page_url" not in media_columns and not any(c.startswith("m5data") for c in media_columns)


def test_referer_can_be_turned_off(store, cdn):
    fill(store, cdn)
    stats = run(store, settings(**{"download.send_referer": False}))
    assert stats.n_out == 0 and stats.failures == {"failed/http_403": 4, "failed/http_404": 1}
    assert all(referer(headers) is None for _, _, headers in cdn.arrivals)


def test_referer_as_a_browser_sends_it():
    assert referer_for("http://shop.test/p/1.html?a=1#reviews", "http://cdn.test/1.jpg") == "http://shop.test/p/1.html?a=1"
    assert referer_for("https://user:pw@shop.test/p/1", "https://cdn.test/1.jpg") == "https://shop.test/p/1"
    assert referer_for("https://shop.test/p/1", "http://cdn.test/1.jpg") is None  # no https -> http downgrade
    for page in (None, "", "javascript:alert(1)", "file:///etc/passwd", "http://"):
        assert referer_for(page, "http://cdn.test/1.jpg") is None

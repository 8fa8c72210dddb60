"""A refresh crawl asks the shop what changed: stored ETag / Last-Modified sent back, a 304 is an
unchanged product that writes nothing, a 200 with the stored content too (m5data/crawler/revalidate.py)."""

import hashlib

import pytest
from support.crawl_server import Page, SiteServer, jsonld_shop
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.crawler.crawl import run
from m5data.storage import StageStats, Store
from m5data.storage.doctor import run as doctor

LOOPBACK = {"crawl.allow_private": True}  # the test servers are on 127.0.0.1
N = 12
MODIFIED = "Tue, 03 Nov 2026 10:00:00 GMT"
DATA_TABLES = ("products", "specs", "media", "crawl_errors", "page_validators")


class Shop:
    """A schema.org shop whose product pages send validators (``mode``): ``honour`` answers a
    matching If-None-Match (else If-Modified-Since) with 304, ``date`` the same with Last-Modified
    only, ``ignore`` always sends 200 with the validators, ``none`` sends no validators. ``edit(i)`` changes product i's page (a new ETag)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.salt = b""  # a new salt: every page gets a new ETag, its content unchanged (a re-deployed shop)
        self.server = SiteServer({})
        self.skus = jsonld_shop(self.server, n_products=N, per_page=5)
        self.pages = {path: page for path, page in self.server.routes.items() if path.startswith("/p/")}
        for path in self.pages:
            self.server.add(path, self._route(path))

    def etag(self, path: str) -> str:
        digest = hashlib.sha1(self.salt + self.pages[path].body).hexdigest()[:12]
        return f'W/"{digest}"' if self.path_index(path) % 2 else f'"{digest}"'  # weak ones sent as they are

    def path_index(self, path: str) -> int:
        return sorted(self.pages).index(path)

    def _route(self, path: str):
        def answer(hit: int, headers: dict[str, str]) -> Page:
            page = self.pages[path]
            if self.mode == "none":
                return page
            etag = self.etag(path)
            sent = {"Last-Modified": MODIFIED} if self.mode == "date" else {"ETag": etag, "Last-Modified": MODIFIED}
            asked = headers.get("If-None-Match")
            fresh = asked == etag if asked is not None else headers.get("If-Modified-Since") == MODIFIED
            if self.mode in ("honour", "date") and fresh:
                return Page(b"", status=304, headers=sent)
            return Page(page.body, page.content_type, headers=sent)
        return answer

    def edit(self, i: int) -> str:
        path = sorted(self.pages)[i]
        old = self.pages[path]
        self.pages[path] = Page(old.body.replace(b"Produkt Nr.", b"Neues Produkt Nr."), old.content_type)
        return path

    def product_requests(self) -> list[tuple[str, dict[str, str]]]:
        return [(p, h) for p, h in self.server.headers if p.startswith("/p/")]


@pytest.fixture
def shop(request):
    shop = Shop(request.param)
    with shop.server:
        yield shop


def crawl(store, shop, refresh=False, **overrides):
    shop.server.headers.clear()
    return run(store, load(overrides={**LOOPBACK, **overrides}, environ={}),
               start_urls=[shop.server.url + "/list/1.html"], refresh=refresh)


def parts(store) -> dict[str, list[str]]:
    return {name: [p.name for p in store.parts(name)] for name in DATA_TABLES}


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_refresh_sends_validators_and_304_writes_nothing(store, shop):
    first = crawl(store, shop)
    assert first.n_out == N and first.details["changes"] == {"new": N, "changed": 0, "unchanged": 0}
    kept = {r["url"]: r for r in store.read("page_validators").to_pylist()}
    products = {r["product_id"]: r["url"] for r in store.read("products").to_pylist()}
    assert len(kept) == N and {r["product_id"] for r in kept.values()} == set(products)
    for url, row in kept.items():
        path = url.removeprefix(shop.server.url)
        assert (row["etag"], row["last_modified"]) == (shop.etag(path), MODIFIED)
    before = parts(store)

    again = crawl(store, shop, refresh=True)
    sent = shop.product_requests()
    assert len(sent) == N
    for path, headers in sent:
        assert headers.get("If-None-Match") == shop.etag(path)  # W/"..." as is
        assert headers.get("If-Modified-Since") == MODIFIED
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": N}
    assert again.details["not_modified"] == N and again.n_out == 0 and again.n_failed == 0
    assert parts(store) == before  # not one row of any product's tables
    (row,) = store.read("runs", where=f"run_id = '{again.run_id}'").to_pylist()
    assert (row["status"], row["n_out"]) == ("ok", 0)


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_changed_page_is_stored_again_and_counted_changed(store, shop):
    crawl(store, shop)
    path = shop.edit(3)
    again = crawl(store, shop, refresh=True)
    assert again.details["changes"] == {"new": 0, "changed": 1, "unchanged": N - 1}
    assert again.n_out == 1 and again.details["not_modified"] == N - 1
    url = shop.server.url + path
    (product,) = store.read("products", where=f"url = '{url}'").to_pylist()
    assert product["title"].startswith("Neues Produkt") and product["run_id"] == again.run_id
    (kept,) = store.read("page_validators", where=f"url = '{url}'").to_pylist()
    assert kept["etag"] == shop.etag(path) and kept["run_id"] == again.run_id
    third = crawl(store, shop, refresh=True)  # the new ETag was kept: now a 304
    assert third.details["changes"] == {"new": 0, "changed": 0, "unchanged": N}


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_new_etag_same_content_is_unchanged_and_keeps_the_new_etag(store, shop):
    crawl(store, shop)
    before = parts(store)
    shop.salt = b"v2"
    again = crawl(store, shop, refresh=True)
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": N}
    assert again.details["not_modified"] == 0 and again.n_out == 0
    after = parts(store)
    assert {t: after[t] for t in DATA_TABLES if t != "page_validators"} == \
        {t: before[t] for t in DATA_TABLES if t != "page_validators"}
    assert len(after["page_validators"]) == len(before["page_validators"]) + 1  # one write: the new ETags
    kept = {r["url"].removeprefix(shop.server.url): r["etag"] for r in store.read("page_validators").to_pylist()}
    assert kept == {path: shop.etag(path) for path in shop.pages}
    third = crawl(store, shop, refresh=True)
    assert third.details["not_modified"] == N


@pytest.mark.parametrize("shop", ["date"], indirect=True)
def test_last_modified_alone_is_sent_as_if_modified_since(store, shop):
    crawl(store, shop)
    assert store.read("page_validators", where="etag IS NULL AND last_modified IS NOT NULL").num_rows == N
    again = crawl(store, shop, refresh=True)
    sent = [h for _, h in shop.product_requests()]
    assert len(sent) == N and all(h.get("If-Modified-Since") == MODIFIED and "If-None-Match" not in h for h in sent)
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": N} and again.details["not_modified"] == N


@pytest.mark.parametrize("shop", ["ignore"], indirect=True)
def test_server_ignoring_validators_gives_unchanged(store, shop):
    crawl(store, shop)
    before = parts(store)
    again = crawl(store, shop, refresh=True)
    assert all(h.get("If-None-Match") == shop.etag(p) for p, h in shop.product_requests())
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": N}
    assert again.details["not_modified"] == 0 and again.n_out == 0
    assert parts(store) == before


@pytest.mark.parametrize("shop", ["none"], indirect=True)
def test_server_without_validators_works_as_before(store, shop):
    first = crawl(store, shop)
    assert first.n_out == N and store.count("page_validators") == 0
    before = parts(store)
    path = shop.edit(0)
    again = crawl(store, shop, refresh=True)
    requests = shop.product_requests()
    assert len(requests) == N and not any("If-None-Match" in h or "If-Modified-Since" in h for _, h in requests)
    assert again.details["changes"] == {"new": 0, "changed": 1, "unchanged": N - 1}
    (product,) = store.read("products", where=f"url = '{shop.server.url + path}'").to_pylist()
    assert product["title"].startswith("Neues Produkt")
    assert parts(store)["page_validators"] == before["page_validators"] == []


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_revalidate_off_sends_plain_gets(store, shop):
    crawl(store, shop)
    again = crawl(store, shop, refresh=True, **{"crawl.revalidate": False})
    assert not any("If-None-Match" in h for _, h in shop.product_requests())
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": N}
    assert again.details["not_modified"] == 0


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_refresh_restores_products_whose_spec_rows_were_quarantined(store, shop):
    """doctor --repair moves a damaged part aside; crawl --refresh brings its rows back: a product
    whose rows are not whole is neither asked conditionally nor taken as unchanged."""
    crawl(store, shop)
    want = store.read("specs").sort_by([("product_id", "ascending"), ("position", "ascending")]).to_pylist()
    (part,) = store.parts("specs")
    part.write_bytes(part.read_bytes()[:100])
    assert doctor(store, repair=True).ok and store.count("specs") == 0
    again = crawl(store, shop, refresh=True)
    assert not any("If-None-Match" in h for _, h in shop.product_requests())
    assert again.details["changes"] == {"new": 0, "changed": N, "unchanged": 0}
    assert store.read("specs").sort_by([("product_id", "ascending"), ("position", "ascending")]).to_pylist() == want


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_cli_prints_the_changes(store, shop):
    crawl(store, shop)
    shop.edit(5)
    result = CliRunner().invoke(app, ["--store", str(store.root), "--set", "crawl.allow_private=true", "crawl",
                                      "--start-url", shop.server.url + "/list/1.html", "--refresh"])
    assert result.exit_code == 0, result.output
    assert f"new 0, changed 1, unchanged {N - 1}" in result.output


def test_flow_summary_note_says_the_changes():
    from m5data.flows.executor import _merge, stage_entry

    stats = StageStats("crawl", n_in=40, n_out=4)
    stats.details["changes"] = {"new": 3, "changed": 1, "unchanged": 36}
    entry = stage_entry("crawl", "ok", stats=stats)
    assert entry["message"] == "new 3, changed 1, unchanged 36"
    merged = _merge("crawl", [entry, stage_entry("crawl", "ok", stats=stats)])
    assert merged["message"] == "new 6, changed 2, unchanged 72"
    assert stage_entry("align", "ok", stats=StageStats("align"))["message"] == ""


def test_demo_shop_answers_conditional_requests_and_refresh_counts_unchanged(demo_shop, tmp_path):
    """The demo shop's pages send ETag and Last-Modified (aiohttp's FileResponse) and answer 304."""
    store = Store.init(tmp_path / "store")
    settings = load(overrides=LOOPBACK, environ={})
    demo_shop.reset_faults()
    first = run(store, settings, start_urls=[demo_shop.url + "/"])
    n = store.count("products")
    assert n > 0 and first.details["changes"]["new"] == n
    assert store.count("page_validators") == n
    assert store.read("page_validators", where="etag IS NULL OR last_modified IS NULL").num_rows == 0
    before = parts(store)
    demo_shop.clear_requests()
    demo_shop.reset_faults()
    again = run(store, settings, start_urls=[demo_shop.url + "/"], refresh=True)
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": n}
    assert again.details["not_modified"] == n == sum(1 for _, _, status in demo_shop.requests if status == 304)
    assert parts(store) == {**before, "crawl_errors": parts(store)["crawl_errors"]}


@pytest.mark.parametrize("shop", ["honour"], indirect=True)
def test_flow_refresh_reports_the_changes(shop, prefect_harness, tmp_path):
    """``flows.refresh``: the pipeline flow's crawl entry and its artifact say what changed."""
    from m5data.flows.pipeline import pipeline_flow, summary_markdown

    store_path = str(tmp_path / "store")
    start, overrides = [shop.server.url + "/list/1.html"], {"crawl.allow_private": True}
    first = pipeline_flow(store_path, start, stages=["crawl"], overrides=overrides)
    assert first["crawl"]["message"] == f"new {N}, changed 0, unchanged 0"
    shop.edit(2)
    again = pipeline_flow(store_path, start, stages=["crawl"], refresh=True, overrides=overrides)
    assert again["crawl"]["status"] == "ok" and again["crawl"]["n_out"] == 1
    assert again["crawl"]["message"] == f"new 0, changed 1, unchanged {N - 1}"
    assert f"new 0, changed 1, unchanged {N - 1} |" in summary_markdown(store_path, again, None)


@pytest.mark.parametrize("shop", ["none"], indirect=True)
def test_recrawl_on_another_port_says_what_it_fetched(store, shop):
    """The same shop served on another port, crawled again (a resume): its product pages are fetched (their
    URLs are not the stored ones) and counted as already stored under another URL, so that the counts
    add up to the product pages fetched and the summary says why (issue 75, item 12)."""
    from support.crawl_server import SiteServer

    first = crawl(store, shop)
    assert first.details["changes"] == {"new": N, "changed": 0, "unchanged": 0}
    assert sum(first.details["changes"].values()) == first.details["pages"]["product"] == N
    before = parts(store)
    moved = SiteServer(dict(shop.server.routes))
    with moved:
        assert moved.url != shop.server.url
        again = run(store, load(overrides=LOOPBACK, environ={}), start_urls=[moved.url + "/list/1.html"])
        res = CliRunner().invoke(app, ["--store", str(store.root), "--set", "crawl.allow_private=true", "crawl",
                                       "--start-url", moved.url + "/list/1.html"])
    assert again.details["changes"] == {"new": 0, "changed": 0, "unchanged": 0, "already stored under another URL": N}
    assert sum(again.details["changes"].values()) == again.details["pages"]["product"] == N
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.replace("│", " ").split())  # the table's cells, wrapped lines joined
    assert f"already stored under another URL {N}" in text and "under another URL (the same shop on another" in text
    assert parts(store) == before  # nothing stored again

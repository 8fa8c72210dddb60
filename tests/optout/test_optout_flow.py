"""An opt-out a refresh crawl finds between two scheduled runs (issue 76, 1): as after a takedown, the splits
stage writes a new split version without the products and the run's export writes a new release folder
without them; the old folder is never resumed (``m5data export`` into it refuses, naming them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from support.crawl_server import Page, SiteServer, jsonld_shop
from support.export_helpers import folder_files, samples_of, version_ids

from m5data.config import load
from m5data.crawler.crawl import run as crawl
from m5data.export.samples import safe_key
from m5data.storage import Store

LOOPBACK = {"crawl.allow_private": True}
N = 12
# how product page i answers a refresh once it opts out: a 304 or a 200 stating it in a header or the TDMRep meta
OPT_OUTS = {
    0: (304, {"X-Robots-Tag": "noai"}, b""),
    1: (304, {"tdm-reservation": "1"}, b""),
    2: (200, {}, b'<meta name="tdm-reservation" content="1">'),
    3: (200, {"X-Robots-Tag": "noai"}, b""),
}


class OptingShop:
    """A schema.org shop whose product pages send an ETag and answer a matching If-None-Match with 304;
    after :meth:`opt_out` the first four answer as :data:`OPT_OUTS` says."""

    def __init__(self):
        self.server = SiteServer({})
        jsonld_shop(self.server, n_products=N, per_page=N)
        self.pages = {path: page for path, page in self.server.routes.items() if path.startswith("/p/")}
        self.opted = False
        for i, path in enumerate(sorted(self.pages)):
            self.server.add(path, self._route(i, path))

    def _route(self, i: int, path: str):
        def answer(hit: int, headers: dict[str, str]) -> Page:
            body = self.pages[path].body
            etag = f'"{hashlib.sha1(body).hexdigest()[:12]}"'
            if self.opted and i in OPT_OUTS:
                status, extra, meta = OPT_OUTS[i]
                if status == 304:
                    return Page(b"", status=304, headers={"ETag": etag, **extra})
                return Page(body.replace(b"<head>", b"<head>" + meta), headers=extra)
            if headers.get("If-None-Match") == etag:
                return Page(b"", status=304, headers={"ETag": etag})
            return Page(body, headers={"ETag": etag})
        return answer

    def crawl(self, store: Store, refresh: bool = False):
        stats = crawl(store, load(overrides={"store.path": str(store.root), **LOOPBACK}, environ={}),
                      start_urls=[self.server.url + "/list/1.html"], refresh=refresh)
        if not refresh:  # each category path labelled (what align writes)
            paths = {(r["platform"], tuple(r["category_path"])) for r in store.read("products").to_pylist()}
            store.write("label_map", [{"platform": platform, "raw_path": " > ".join(path), "class_id": 1 + k % 2,
                                       "sub_class_id": 1 + k, "subsub_class_id": 0, "method": "own"}
                                      for k, (platform, path) in enumerate(sorted(paths))])
        return stats


def _run(store: Store):
    """The stages splits and export, as a scheduled run of the pipeline flow runs them."""
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    overrides = {"export.shard_size": 4, "export.workers": 1}
    settings = load(None, {"store.path": str(store.root), **overrides}, environ={})
    return run_pipeline(check_plan(settings, stages="splits,export"), settings, overrides)


def test_a_scheduled_run_after_a_refresh_finds_optouts_exports_a_new_version_without_them(store, prefect_harness,
                                                                                          tmp_path):
    from support.cli_inprocess import invoke

    shop = OptingShop()
    with shop.server:
        shop.crawl(store)
        first = _run(store)
        assert first.ok, first.results
        v1, old = first.results["splits"]["details"]["version"], Path(first.results["export"]["details"]["out"])
        before = folder_files(old)
        ids = version_ids(store, v1)
        assert len(ids) == N and len(samples_of(old)) == N
        shop.opted = True
        shop.crawl(store, refresh=True)
    optouts = {r["product_id"] for r in store.read("optouts").to_pylist() if r["scope"] == "page"}
    gone = {pid for pid in ids if any(pid.endswith(f"SKU-{i:04d}") for i in OPT_OUTS)}
    assert len(gone) == len(OPT_OUTS) and optouts == gone  # each form found by the refresh

    second = _run(store)
    assert second.ok, (second.message, second.results)
    v2 = second.results["splits"]["details"]["version"]
    assert v2 != v1 and version_ids(store, v2) == ids - gone  # a new version, without them
    assert version_ids(store, v1) == ids  # the old one as it was
    new = Path(second.results["export"]["details"]["out"])
    assert new != old and second.results["export"]["details"]["version"] == v2
    keys = {key for _, key in samples_of(new)}
    assert keys == {safe_key(p) for p in ids - gone}
    assert folder_files(old) == before  # the old release folder is untouched

    def m5(*args):
        res = invoke("--store", str(store.root), *args)
        return res.returncode, " ".join((res.stdout + res.stderr).split())

    code, text = m5("sql", "--format", "csv", "SELECT product_id FROM products")
    assert code == 0 and not any(p in text for p in gone) and all(p in text for p in ids - gone), text
    # the old version into its old folder: refused in one line naming them, never "already finished"
    code, text = m5("export", "--shard-size", "4", "--workers", "1", "--version", v1, "--out", str(old))
    assert code == 1 and "already finished" not in text, text
    assert all(p in text for p in gone) and "opted out since" in text and "m5data build-splits" in text, text
    assert folder_files(old) == before


def test_build_splits_after_a_refresh_finds_optouts(store, tmp_path):
    """``build-splits`` (no --version) writes the next version without the opted-out products, saying why."""
    from support.cli_inprocess import invoke

    def m5(*args):
        res = invoke("--store", str(store.root), *args)
        return res.returncode, " ".join((res.stdout + res.stderr).split())

    shop = OptingShop()
    with shop.server:
        shop.crawl(store)
        assert m5("build-splits")[0] == 0
        ids = version_ids(store, "v1")
        shop.opted = True
        shop.crawl(store, refresh=True)
    gone = {pid for pid in ids if any(pid.endswith(f"SKU-{i:04d}") for i in OPT_OUTS)}
    code, text = m5("build-splits")
    assert code == 0 and f"version 'v1' holds {len(gone)} product(s) opted out since" in text, text
    assert "built 'v2' without them" in text, text
    assert version_ids(store, "v2") == ids - gone

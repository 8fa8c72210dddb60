"""Resume: ``m5data crawl`` whose Scrapy subprocess is SIGKILLed mid-run, started again on the same
store, ends with exactly the products of an uninterrupted crawl, each stored once - counted in the
Parquet parts themselves, not only in the deduplicated view."""

import os
import signal
import subprocess
import sys
import time

import duckdb
import psutil
from support.crawl_server import SiteServer, jsonld_shop

from m5data.config import load
from m5data.crawler.crawl import run
from m5data.storage import Store

N_PRODUCTS = 60


def crawl_cli(store_path, start_url) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "m5data.cli", "--store", str(store_path), "--set", "crawl.batch_rows=5",
           "--set", "crawl.allow_private=true", "--set", "crawl.concurrency=1", "--set", "crawl.per_domain=1", "crawl", "--start-url", start_url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def raw_rows(store, table: str, key: str) -> dict[str, int]:
    """Rows per key over every Parquet part of a table (what the view's dedup would hide)."""
    glob = f"{store.table_dir(table)}/*.parquet"
    return dict(duckdb.sql(f"SELECT {key}, count(*) FROM read_parquet('{glob}') GROUP BY 1").fetchall())


def view(store, sql: str) -> list[tuple]:
    con = store.connect()
    try:
        return sorted(con.sql(sql).fetchall())
    finally:
        con.close()


def test_sigkill_mid_crawl_then_resume_matches_uninterrupted(tmp_path):
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=N_PRODUCTS, per_page=10)
    for path, page in server.routes.items():  # product pages send an ETag: page_validators rows
        if path.startswith("/p/"):
            page.headers["ETag"] = f'"{path.split("/")[2].split(".")[0]}"'
    with server:
        start = server.url + "/list/1.html"
        reference = Store.init(tmp_path / "reference")
        run(reference, load(overrides={"crawl.allow_private": True}, environ={}), start_urls=[start])

        store = Store.init(tmp_path / "store")
        server.delay = 0.1  # slow enough to kill the crawl part-way
        cli = crawl_cli(store.root, start)
        deadline = time.monotonic() + 90
        while len(store.parts("products")) < 2 and cli.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        scrapy = [p for p in psutil.Process(cli.pid).children() if "m5data.crawler.child" in " ".join(p.cmdline())]
        assert len(scrapy) == 1, "the crawl ended before it could be killed"
        os.kill(scrapy[0].pid, signal.SIGKILL)
        output = cli.communicate(timeout=60)[0]
        assert cli.returncode == 1 and "killed by signal 9" in output
        stored_before = set(raw_rows(store, "products", "product_id"))
        assert 10 <= len(stored_before) < N_PRODUCTS
        last = store.read("runs").to_pylist()[-1]
        assert (last["stage"], last["status"]) == ("crawl", "interrupted")

        server.delay = 0.0
        server.requests.clear()
        again = crawl_cli(store.root, start)
        output = again.communicate(timeout=120)[0]
        assert again.returncode == 0, output

    expected = {f"127.0.0.1:{sku}" for sku in skus}
    assert set(raw_rows(reference, "products", "product_id")) == expected
    per_product = raw_rows(store, "products", "product_id")
    assert set(per_product) == expected
    assert set(per_product.values()) == {1}, "a product row was stored twice"
    assert set(raw_rows(store, "media", "media_id").values()) == {1}
    assert view(store, "SELECT product_id, position, property, value FROM specs") == \
        view(reference, "SELECT product_id, position, property, value FROM specs")
    assert view(store, "SELECT media_id, url, role, position, status FROM media") == \
        view(reference, "SELECT media_id, url, role, position, status FROM media")
    validators = "SELECT url, product_id, etag, last_modified FROM page_validators"
    assert len(view(store, validators)) == N_PRODUCTS and view(store, validators) == view(reference, validators)
    # the resumed run did not fetch again the product pages stored before the kill
    refetched = [p for p in server.requests if p.startswith("/p/") and f"127.0.0.1:{p[3:].split('.html')[0]}" in stored_before]
    assert refetched == []

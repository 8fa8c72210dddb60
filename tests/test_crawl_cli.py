"""``m5data crawl`` and the Prefect crawl task: arguments, failures, limits, re-runs, two crawls in one process."""

import socket

import pytest
from crawl_server import SiteServer, jsonld_shop
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.storage import Store

runner = CliRunner()
LOOPBACK = {"crawl.allow_private": True}  # the test servers are on 127.0.0.1


@pytest.fixture(scope="module")
def shop():
    server = SiteServer({})
    skus = jsonld_shop(server, n_products=25, per_page=10)
    with server:
        yield server, skus


def invoke(store, *args):
    return runner.invoke(app, ["--store", str(store.root), "--set", "crawl.allow_private=true", "crawl", *args])


def test_bad_arguments_are_refused_before_any_work(store):
    result = invoke(store, "--start-url", "ftp://example.org/list")
    assert result.exit_code == 2 and "absolute http(s) URL" in result.output
    result = invoke(store, "--start-url", "http://127.0.0.1:1/", "--site", "ebay")
    assert result.exit_code == 2 and "unknown site 'ebay'" in result.output
    assert store.count("runs") == 0


def test_crawl_that_fetches_nothing_fails_and_is_recorded(store):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = invoke(store, "--start-url", f"http://127.0.0.1:{port}/list.html")
    assert result.exit_code == 1 and "no page could be fetched" in result.output
    run_row = store.read("runs").to_pylist()[0]
    assert (run_row["stage"], run_row["status"], run_row["n_in"]) == ("crawl", "failed", 0)
    reasons = [r["reason"] for r in store.read("crawl_errors").to_pylist()]
    assert len(reasons) == 1 and reasons[0].startswith("download error")


def test_cli_crawl_limits_and_summary(store, shop):
    server, skus = shop
    result = invoke(store, "--start-url", server.url + "/list/1.html", "--max-pages", "6", "--concurrency", "1",
                    "--per-domain", "1")
    assert result.exit_code == 0, result.output
    assert "crawl run" in result.output and "out" in result.output
    run_row = store.read("runs").to_pylist()[0]
    assert run_row["status"] == "ok" and 0 < run_row["n_out"] < len(skus)
    assert run_row["n_in"] <= 6 + 1  # closespider_pagecount lets the request in flight finish


def test_rerun_resumes_and_refresh_refetches(store, shop):
    server, skus = shop
    settings = load(overrides=LOOPBACK, environ={})
    start = [server.url + "/list/1.html"]
    first = run(store, settings, start_urls=start)
    assert first.n_out == len(skus)
    server.requests.clear()
    again = run(store, settings, start_urls=start)
    assert again.n_out == 0 and not [p for p in server.requests if p.startswith("/p/")]
    assert store.count("products") == len(skus)
    downloaded = store.read("media", where="role = 'main'").to_pylist()[:3]
    store.write("media", [{**m, "status": "ok", "blob": "blobs/x"} for m in downloaded])  # as the download stage would
    server.requests.clear()
    refreshed = run(store, settings, start_urls=start, refresh=True)
    # every page fetched again; the same content is an unchanged product, not written again
    assert len([p for p in server.requests if p.startswith("/p/")]) == len(skus)
    assert refreshed.n_out == 0 and refreshed.details["changes"] == {"new": 0, "changed": 0, "unchanged": len(skus)}
    assert store.count("products") == len(skus)
    ids = ", ".join(f"'{m['media_id']}'" for m in downloaded)
    assert {m["status"] for m in store.read("media", where=f"media_id IN ({ids})").to_pylist()} == {"ok"}


def test_store_that_cannot_be_written_fails_the_crawl(tmp_path, shop):
    server, _ = shop
    store = Store.init(tmp_path / "store")
    specs = store.table_dir("specs")
    specs.rmdir()
    specs.symlink_to("/proc/self")  # a folder where no file can be created, even by root
    with pytest.raises(CrawlFailed, match="store writes failed"):
        run(store, load(overrides=LOOPBACK, environ={}), start_urls=[server.url + "/list/1.html"])
    specs.unlink()
    specs.mkdir()
    assert store.read("runs").to_pylist()[0]["status"] == "failed"
    assert store.count("products") == 0  # specs are written before their products: nothing half-stored


def test_prefect_task_runs_two_crawls_in_one_process(tmp_path, shop, prefect_harness):
    from m5data.flows.executor import stage_flow

    server, skus = shop
    first = stage_flow("crawl", str(tmp_path / "a"), overrides=LOOPBACK,
                       options={"start_urls": [server.url + "/list/1.html"]})
    second = stage_flow("crawl", str(tmp_path / "b"), overrides={"crawl.max_depth": 1, **LOOPBACK},
                        options={"start_urls": [server.url + "/list/2.html"]})
    assert first.status == second.status == "ok"
    assert first.n_out == len(skus)
    assert second.n_out == 10  # page 2's products; max_depth 1 stops at page 3's link
    assert Store.open(tmp_path / "b").count("products") == 10

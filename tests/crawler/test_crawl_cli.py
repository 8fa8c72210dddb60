"""``m5data crawl`` and the Prefect crawl task: arguments, failures, limits, re-runs, two crawls in one process."""

import re
import socket

import pytest
from support.crawl_server import SiteServer, jsonld_shop
from typer.testing import CliRunner

from m5data.cli import app
from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, CrawlNotStored, run
from m5data.flows.retry import is_transient
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
    assert run_row["n_in"] <= 6  # exact: no request past the cap is sent (pagecap.py)


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
    with pytest.raises(CrawlFailed, match="store writes failed") as failed:
        run(store, load(overrides=LOOPBACK, environ={}), start_urls=[server.url + "/list/1.html"])
    assert isinstance(failed.value, CrawlNotStored) and not is_transient(failed.value)  # the flow does not retry it
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


def _error_line(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("error:"))


def test_a_refused_loopback_crawl_says_why_and_how_to_allow_it(store, shop):
    server, _ = shop
    result = runner.invoke(app, ["--store", str(store.root), "crawl", "--start-url", server.url + "/list/1.html"])
    assert result.exit_code == 1
    line = _error_line(result.output)
    assert "127.0.0.1" in line and "loopback" in line, line
    assert "--allow-private" in line and "crawl.allow_private" in line, line
    assert "crawl.log" not in line, line  # the log does not hold the reason: crawl_errors does
    assert store.read("crawl_errors").to_pylist()[0]["reason"].startswith("refused: address 127.0.0.1")


def _summary_row(output: str, name: str) -> str:
    return next(re.sub(r"\s+", " ", line.split("│")[2]).strip() for line in output.splitlines()
                if line.count("│") >= 3 and line.split("│")[1].strip() == name)


def test_a_recrawl_says_what_it_fetched_and_what_it_skipped(store, shop):
    server, skus = shop
    first = invoke(store, "--start-url", server.url + "/list/1.html")
    assert first.exit_code == 0, first.output
    again = invoke(store, "--start-url", server.url + "/list/1.html")
    assert again.exit_code == 0, again.output
    fetched = store.read("runs", where="status = 'ok'").sort_by([("started_at", "descending")]).to_pylist()[0]["n_in"]
    pages = re.fullmatch(r"([\d,]+): ([\d,]+) product pages, ([\d,]+) listings and other", _summary_row(again.output, "pages fetched"))
    assert pages, again.output
    total, product, other = (int(n.replace(",", "")) for n in pages.groups())
    assert (total, product) == (fetched, 0) and product + other == total
    assert _summary_row(again.output, "not fetched") == f"{len(skus)} product pages already stored (--refresh fetches them)"
    refreshed = invoke(store, "--start-url", server.url + "/list/1.html", "--refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert _summary_row(refreshed.output, "pages fetched").split(": ")[1].startswith(f"{len(skus)} product pages")
    assert _summary_row(refreshed.output, "changes") == f"new 0, changed 0, unchanged {len(skus)}"


@pytest.mark.parametrize("to", ["group", "parent"])
def test_ctrl_c_stops_the_crawl_says_so_and_a_rerun_resumes(tmp_path, demo_shop, to):
    """Ctrl-C in a terminal reaches the whole foreground process group ("group"): the crawl stops
    gracefully once (Scrapy forces a stop when it gets two signals); a SIGINT sent to the m5data
    process alone ("parent") stops the Scrapy subprocess too."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store = Store.init(tmp_path / "store")
    cmd = [sys.executable, "-m", "m5data", "--store", str(store.root), "--set", "crawl.allow_private=true",
           "--set", "crawl.batch_rows=2", "crawl", "--start-url", demo_shop.url + "/"]
    slow = ["--concurrency", "1", "--per-domain", "1", "--delay", "0.2"]
    # SIGINT as a terminal leaves it: a pytest-xdist worker ignores SIGINT, and a child inherits that
    proc = subprocess.Popen(cmd + slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while store.count("products") < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        (os.killpg if to == "group" else os.kill)(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert "crawl interrupted; nothing stored was lost; run the same command again to resume" in err, err
    assert "Traceback" not in err and "shutdown" not in err
    run_row = store.read("runs").to_pylist()[0]
    assert run_row["status"] == "interrupted" and 0 < store.count("products") < len(demo_shop.truth.products)
    log = (store.local_root() / "logs" / "crawl" / run_row["run_id"] / "crawl.log").read_text()
    assert "shutting down gracefully" in log and "forcing unclean shutdown" not in log
    if to == "parent":
        return
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert store.count("products") == len(demo_shop.truth.products)

"""`m5data download`: --retry-failed, the failure-rate exit code, the watchdog, URL lists, Prefect."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.media_server import MediaServer, jpeg_bytes, media_rows
from typer.testing import CliRunner

from m5data.cli import app
from m5data.download.sources import url_product_id
from m5data.storage.media_ids import media_id

runner = CliRunner()
JPEG = jpeg_bytes(320, 240, seed=3)
FAST = ["--set", "download.allow_private=true", "--set", "download.backoff=0.01"]


@pytest.fixture(scope="module")
def server():
    with MediaServer({"a.jpg": JPEG, "b.jpg": jpeg_bytes(100, 80, seed=4)}) as srv:
        yield srv


def m5(store, *args, extra=()):
    return runner.invoke(app, ["--store", str(store.root), *FAST, *extra, "download", "--no-progress", *args])


def rows_by_url(store):
    return {r["url"]: r for r in store.read("media").to_pylist()}


def test_retry_failed_refetches_only_failed_urls(server, store):
    server.clear()
    ok, flaky, dead = server.url("/f/a.jpg"), server.url("/flaky/1/b.jpg"), server.url("/status/404/x")
    store.write("media", media_rows([ok, flaky, dead]))
    result = m5(store, "--max-failure-rate", "1", extra=["--set", "download.retries=0"])
    assert result.exit_code == 0, result.output
    rows = rows_by_url(store)
    assert [rows[u]["status"] for u in (ok, flaky, dead)] == ["ok", "failed", "failed"]
    assert "failed" in result.output and "http_500" in result.output  # the statuses table

    late = server.url("/f/b.jpg")
    store.write("media", media_rows([late], product_id="test:2"))  # pending: not for --retry-failed
    server.clear()
    result = m5(store, "--retry-failed", "--max-failure-rate", "1")
    assert result.exit_code == 0, result.output
    assert set(server.requests) == {"/flaky/1/b.jpg", "/status/404/x"}  # never the ok or the pending URL
    rows = rows_by_url(store)
    assert rows[flaky]["status"] == "ok" and rows[flaky]["attempts"] == 3  # 1 + (500 again, then ok): over both runs
    assert rows[dead]["status"] == "failed" and rows[late]["status"] == "pending"
    assert rows[ok]["attempts"] == 1


def test_exit_code_is_non_zero_past_the_failure_rate(server, store):
    store.write("media", media_rows([server.url("/f/a.jpg")] + [server.url(f"/status/404/{i}") for i in range(3)]))
    result = m5(store, "--max-failure-rate", "0.5")
    assert result.exit_code == 1
    assert "failure rate 75.0% is above download.max_failure_rate 50.0%" in result.output
    assert store.read("runs").to_pylist()[-1]["status"] == "failed"
    store.write("media", [dict(r, status="pending", attempts=0) for r in store.read("media").to_pylist()])
    assert m5(store, "--max-failure-rate", "0.9").exit_code == 0


def test_watchdog_ends_a_stalled_run_and_records_the_stuck_urls(server, store):
    hang = [server.url(f"/hang/{i}") for i in range(2)]
    ok = server.url("/f/a.jpg")
    store.write("media", media_rows(hang + [ok]))
    result = m5(store, "--stall-timeout", "1", extra=["--set", "download.request_deadline=600",
                                                        "--set", "download.read_timeout=600"])
    assert result.exit_code == 3, result.output
    assert "stalled" in result.output and all(u in result.output for u in hang)
    rows = rows_by_url(store)
    assert rows[ok]["status"] == "ok"
    for url in hang:
        assert rows[url]["status"] == "failed" and rows[url]["error"].startswith("stalled")
    run_row = store.read("runs").to_pylist()[-1]
    assert run_row["status"] == "interrupted" and json.loads(run_row["failures"]) == {"failed/stalled": 2}


def test_url_lists_become_media_rows(server, store, tmp_path):
    a, b = server.url("/f/a.jpg"), server.url("/f/b.jpg")
    txt = tmp_path / "urls.txt"
    txt.write_text(f"# a comment\n{a}\n\n{b}\n{a}\n")
    result = m5(store, str(txt))
    assert result.exit_code == 0, result.output
    rows = rows_by_url(store)
    assert set(rows) == {a, b}
    assert rows[a]["product_id"] == url_product_id(a) and rows[a]["media_id"] == media_id(url_product_id(a), "image", a)
    assert rows[a]["status"] == "ok" and rows[b]["status"] == "ok"

    table = pa.table({"link": [a, server.url("/status/404/p")], "sku": ["shop:1", "shop:2"], "kind": ["image", "image"]})
    pq.write_table(table, tmp_path / "list.parquet")
    server.clear()
    result = m5(store, str(tmp_path / "list.parquet"), "--url-col", "link", "--product-col", "sku",
                "--max-failure-rate", "1")
    assert result.exit_code == 0, result.output
    by_id = {r["media_id"]: r for r in store.read("media").to_pylist()}
    assert by_id[media_id("shop:1", "image", a)]["status"] == "ok"
    assert by_id[media_id("shop:2", "image", server.url("/status/404/p"))]["status"] == "failed"
    assert sorted(server.requests) == ["/f/a.jpg", "/status/404/p"]  # only this list's URLs

    csv = tmp_path / "list.csv"
    csv.write_text(f"url,kind\n{b},video\n")
    server.clear()
    assert m5(store, str(csv), "--max-failure-rate", "1").exit_code == 0
    row = store.read("media", where="kind = 'video'").to_pylist()[0]
    assert row["status"] == "not_media" and "expected video, body is image/jpeg" in row["error"]

    server.clear()  # a list run again: everything is done, nothing is fetched
    assert m5(store, str(txt)).exit_code == 0 and server.requests == []
    bad = m5(store, str(tmp_path / "list.parquet"))
    assert bad.exit_code == 1 and "no column 'url'" in bad.output


def test_progress_bar_and_summary(server, store):
    store.write("media", media_rows([server.url("/f/a.jpg")]))
    result = runner.invoke(app, ["--store", str(store.root), *FAST, "download"])
    assert result.exit_code == 0, result.output
    assert "download run" in result.output and "media statuses" in result.output


def test_prefect_task_runs_the_stage(prefect_harness, server, store):
    from m5data.flows.executor import stage_flow

    store.write("media", media_rows([server.url("/f/a.jpg"), server.url("/f/b.jpg")]))
    stats = stage_flow("download", str(store.root), overrides={"download.allow_private": True})
    assert stats.stage == "download" and stats.n_out == 2 and stats.details["statuses"] == {"ok": 2}


def test_refresh_rechecks_the_stored_files_and_fetches_nothing_pending(server, store):
    """``download --refresh`` reaches the run (the stage passes it on): each stored file is asked again
    (recheck.py), a pending one is not fetched, and the run is a download run with its refresh counts."""
    ok, late = server.url("/f/a.jpg"), server.url("/f/b.jpg")
    store.write("media", media_rows([ok]))
    assert m5(store).exit_code == 0
    store.write("media", media_rows([late], product_id="test:2"))  # pending: not for a refresh
    server.clear()
    result = m5(store, "--refresh")
    assert result.exit_code == 0, result.output
    assert {p for p in server.requests if p.startswith("/f/")} == {"/f/a.jpg"}
    rows = rows_by_url(store)
    assert rows[ok]["status"] == "ok" and rows[late]["status"] == "pending"
    runs = sorted(store.read("runs", where="stage = 'download'").to_pylist(), key=lambda r: r["started_at"])
    assert len(runs) == 2 and json.loads(runs[-1]["config"])["job"]["refresh"] == {"checked": 1, "opted_out": 0}


def test_a_flow_retry_fetches_what_was_left_pending_then_the_failures_two_runs_under_one_lock(server, store,
                                                                                               stage_locks_taken, monkeypatch):
    """A flow's retry (attempt 2): what a stalled first attempt left pending, in the run the contract opened,
    then the failures, in a second run under the same lock (stage.py): two ``runs`` rows, one lock taken; a
    second run that raises gets its own failed row."""
    from m5data import stages
    from m5data.config import load
    from m5data.stages import RunContext

    pending, failed = server.url("/f/a.jpg"), server.url("/f/b.jpg")
    store.write("media", media_rows([pending]) + [dict(r, status="failed") for r in media_rows([failed], product_id="test:2")])
    settings = load(None, {"store.path": str(store.root), "download.allow_private": True}, environ={})
    stats = stages.call("download", RunContext(settings, attempt=2))
    assert stage_locks_taken == ["download"]
    runs = sorted(store.read("runs", where="stage = 'download'").to_pylist(), key=lambda r: r["started_at"])
    assert [(r["status"], r["n_in"], r["n_out"]) for r in runs] == [("ok", 1, 1), ("ok", 1, 1)]
    assert stats.run_id == runs[1]["run_id"] != runs[0]["run_id"]
    assert {r["status"] for r in rows_by_url(store).values()} == {"ok"}

    import m5data.download.run as job

    calls, real_retry = [], job.StoreRetry

    def second_fails(*args, **kwargs):  # the second run's work raises: that run gets its failed row
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the second run failed")
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(job, "StoreRetry", second_fails)
    with pytest.raises(RuntimeError, match="the second run failed"):
        stages.call("download", RunContext(settings, attempt=2))
    runs = sorted(store.read("runs", where="stage = 'download'").to_pylist(), key=lambda r: r["started_at"])
    assert [r["status"] for r in runs] == ["ok", "ok", "ok", "failed"]
    assert "RuntimeError: the second run failed" in runs[-1]["failures"]

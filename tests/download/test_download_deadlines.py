"""Bounded runs: statuses are flushed on a timer, every URL has one total deadline and a minimum rate."""

import subprocess
import sys
import time

import pytest
from support.media_server import MediaServer, jpeg_bytes, media_rows

from m5data.config import ConfigError, load
from m5data.download.run import DownloadError, run, run_bound

JPEG = jpeg_bytes(320, 240, seed=3)


@pytest.fixture(scope="module")
def server():
    with MediaServer({"a.jpg": JPEG, "b.jpg": jpeg_bytes(320, 240, seed=4)}) as srv:
        yield srv


def settings(tmp_path, **overrides):
    values = {"download.allow_private": True, "download.backoff": 0.01, "download.connect_timeout": 5,
              "download.read_timeout": 5, "download.request_deadline": 20}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load(overrides=values, environ={}, cwd=tmp_path)


def by_url(store):
    return {r["url"]: r for r in store.read("media").to_pylist()}


def test_a_finished_status_is_stored_while_another_url_hangs(server, store):
    """Defect 4: the fast URL's status reaches the store on the flush timer, not when the next URL ends."""
    hang, fast = server.url("/hang/flush"), server.url("/f/a.jpg")
    store.write("media", media_rows([hang, fast]))
    cmd = [sys.executable, "-m", "m5data.cli", "--store", str(store.root), "--set", "download.allow_private=true",
           "--set", "download.request_deadline=600", "--set", "download.read_timeout=600",
           "--set", "download.url_deadline=600", "--set", "download.min_rate=0",
           "download", "--no-progress", "--stall-timeout", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        stored = None
        for _ in range(300):  # poll the store from outside while the run goes on (at most ~60 s)
            time.sleep(0.2)
            rows = by_url(store)
            if rows[fast]["status"] == "ok":
                stored = rows
                break
            assert proc.poll() is None, proc.stdout.read().decode()
        assert stored is not None, "the finished URL's status was not flushed while another URL hung"
        assert server.hits("/hang/flush") == 1 and proc.poll() is None  # the hung URL is still in flight
        assert stored[hang]["status"] == "pending"
    finally:
        proc.kill()
        proc.wait()
    rows = by_url(store)  # the kill lost nothing that had finished
    assert rows[fast]["status"] == "ok" and store.blobs.path(rows[fast]["blob"]).is_file()


def test_slow_loris_fails_on_the_minimum_rate(server, store, tmp_path):
    """Defect 5: 1 byte every 200 ms counts as progress for the watchdog, but not as a transfer."""
    loris, fast = server.url("/loris/200/a.jpg"), server.url("/f/b.jpg")
    store.write("media", media_rows([loris, fast]))
    stats = run(store, settings(tmp_path, download__min_rate=1000, download__rate_window=1.0,
                                download__retries=1, download__url_deadline=60))
    rows = by_url(store)
    assert rows[fast]["status"] == "ok"
    row = rows[loris]
    assert row["status"] == "failed" and row["attempts"] == 2  # too slow is retried, within the deadline
    assert "slower than 1,000 B/s" in row["error"] and "after 2 attempts" in row["error"]
    assert stats.failures == {"failed/too_slow": 1}


def test_one_deadline_per_url_across_all_retries(server, store, tmp_path):
    """Defect 5: with many retries allowed, the URL's total deadline ends it, not the retry count."""
    loris = server.url("/loris/300/a.jpg")
    store.write("media", media_rows([loris]))
    server.clear()
    run(store, settings(tmp_path, download__min_rate=0, download__retries=50, download__request_deadline=0.6,
                        download__url_deadline=2.0))
    row = by_url(store)[loris]
    assert row["status"] == "failed" and "2 s URL deadline" in row["error"]
    assert 1 <= row["attempts"] < 51 and server.hits("/loris/300/a.jpg") == row["attempts"]


def test_run_bound_is_computed_from_the_settings(tmp_path):
    s = settings(tmp_path, download__url_deadline=100, download__concurrency=8, download__per_host=4)
    assert run_bound(s.download, 10) == 3 * 100  # ceil(10 URLs / min(per_host, concurrency)) x url_deadline
    assert run_bound(s.download, 4) == 100 and run_bound(s.download, 0) == 0


@pytest.mark.parametrize("key, value", [("url_deadline", 0), ("url_deadline", float("inf")), ("min_rate", -1),
                                        ("rate_window", 0), ("rate_window", float("nan"))])
def test_bad_deadline_settings_are_refused(store, tmp_path, key, value):
    with pytest.raises((DownloadError, ConfigError), match=key):
        run(store, settings(tmp_path, **{f"download__{key}": value}))

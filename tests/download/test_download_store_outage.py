"""`m5data download` on a store on S3 whose endpoint goes away (moto behind a relay that is taken down):
a store error is never a media item's failure. A short outage is waited out; a long one ends the run
with one line naming the store, the items still pending, and a plain re-run fetches them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto")

from support.media_server import MediaServer, jpeg_bytes, media_rows  # noqa: E402
from support.s3_server import Endpoint  # noqa: E402

from m5data.storage import Store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N = 5


@pytest.fixture
def endpoint(aws, monkeypatch):
    """The store's endpoint is a relay in front of moto; botocore makes one attempt a request, so an
    outage shows at once (its own retries would hide a short one)."""
    with Endpoint(aws["url"]) as ep:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", ep.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        yield ep


@pytest.fixture
def server():
    with MediaServer({f"{i}.jpg": jpeg_bytes(64 + i, 48, seed=i) for i in range(N)}) as srv:
        yield srv


def start(url: str, *settings: str) -> subprocess.Popen:
    sets = [a for s in ("download.allow_private=true", *settings) for a in ("--set", s)]
    return subprocess.Popen([sys.executable, "-m", "m5data", "--store", url, *sets, "download", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(check, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def media(url: str) -> dict[str, dict]:
    return {r["url"]: r for r in Store.open(url).read("media").to_pylist()}


def held_run_with_outage(url: str, endpoint: Endpoint, server: MediaServer, outage: float | None,
                         *settings: str) -> subprocess.CompletedProcess:
    """A download run whose N bodies all arrive while the endpoint is down; it comes back after
    ``outage`` seconds (None: once the run has ended; 0: no outage)."""
    proc = start(url, *settings)
    wait_for(lambda: sum(server.hits(f"/held/{i}.jpg") for i in range(N)) == N)  # all in flight
    if outage != 0:
        endpoint.down()
    server.release()
    if outage is not None:
        time.sleep(outage)
        endpoint.up()
    out, err = proc.communicate(timeout=180)
    endpoint.up()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_short_store_outage_is_waited_out_and_every_image_ends_ok_with_its_size(s3_url, endpoint, server):
    Store.init(s3_url).write("media", media_rows([server.url(f"/held/{i}.jpg") for i in range(N)]))
    res = held_run_with_outage(s3_url, endpoint, server, 4.0, "download.store_retry_seconds=60")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = media(s3_url)
    assert {r["status"] for r in rows.values()} == {"ok"}, [(r["status"], r["error"]) for r in rows.values()]
    assert all(r["width"] == 64 + i and r["height"] == 48 for i, r in enumerate(rows[server.url(f"/held/{i}.jpg")]
                                                                               for i in range(N)))
    assert "waited for it and were tried again" in " ".join(res.stdout.split())  # the outage was met, and waited out
    assert "Task exception was never retrieved" not in res.stderr


def test_a_long_store_outage_ends_the_run_with_one_line_and_leaves_the_items_pending(s3_url, endpoint, server):
    Store.init(s3_url).write("media", media_rows([server.url(f"/held/{i}.jpg") for i in range(N)]))
    res = held_run_with_outage(s3_url, endpoint, server, None, "download.store_retry_seconds=2")
    assert res.returncode != 0
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and s3_url in errors[0] and endpoint.url in errors[0], lines
    assert "Traceback" not in res.stderr and "never retrieved" not in res.stderr, res.stderr
    rows = media(s3_url)  # the endpoint is back
    assert {r["status"] for r in rows.values()} == {"pending"}, [(r["status"], r["error"]) for r in rows.values()]

    server.clear()
    res = held_run_with_outage(s3_url, endpoint, server, 0.0)  # a plain re-run fetches them
    assert res.returncode == 0, res.stdout + res.stderr
    rows = media(s3_url)
    assert {r["status"] for r in rows.values()} == {"ok"} and all(r["width"] for r in rows.values())


def test_a_store_down_when_the_run_starts_ends_it_with_one_line_and_the_items_stay_pending(s3_url, endpoint, server):
    Store.init(s3_url).write("media", media_rows([server.url(f"/{i}.jpg") for i in range(N)]))
    endpoint.down()
    try:
        proc = start(s3_url, "download.store_retry_seconds=2")
        out, err = proc.communicate(timeout=180)
    finally:
        endpoint.up()
    assert proc.returncode != 0
    lines = [line for line in (out + err).splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert len(errors) == 1 and s3_url in errors[0], lines
    assert "Traceback" not in err and "never retrieved" not in err, err
    assert sum(server.hits(f"/{i}.jpg") for i in range(N)) == 0  # nothing was fetched for a store it cannot write
    assert {r["status"] for r in media(s3_url).values()} == {"pending"}

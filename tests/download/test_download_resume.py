"""Resume: SIGKILL the download subprocess at random points, restart, then check the store.

Every blob must match its own sha256, every reachable URL must end ``ok`` and be written ``ok``
exactly once over all the table's parts, and unreachable ones must end ``failed``.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow.compute as pc
import pyarrow.parquet as pq
from support.media_server import MediaServer, jpeg_bytes, media_rows

N_IMAGES = 60


def _start(store, server_args):
    cmd = [sys.executable, "-m", "m5data.cli", "--store", str(store.root),
           "--set", "download.allow_private=true", "--set", "download.backoff=0.01",
           "--set", "download.max_failure_rate=0.5", "download", "--no-progress",
           "--concurrency", "4", "--per-host", "4", *server_args]
    # own session: the kill reaches the re-encoding workers this process spawned too
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_sigkill_at_random_points_then_resume(store):
    rng = random.Random(20261121)
    files = {f"img{i}.jpg": jpeg_bytes(480, 360, seed=i) for i in range(N_IMAGES)}
    with MediaServer(files) as server:
        good = [server.url(f"/slow/500/img{i}.jpg") for i in range(N_IMAGES - 10)]
        good += [server.url(f"/flaky/1/img{i}.jpg") for i in range(N_IMAGES - 10, N_IMAGES)]
        dead = [server.url(f"/status/404/{i}") for i in range(5)]
        store.write("media", media_rows(good + dead))
        kills = 0
        # Kill points: random times after a run's first request, or after its first status flush
        # (events, not wall-clock times from the start: start-up time varies with the load).
        rounds = [("request", rng.uniform(0.1, 1.5)), ("flush", rng.uniform(0.0, 1.0)),
                  ("request", rng.uniform(0.1, 1.5))]
        rng.shuffle(rounds)
        for trigger, delay in rounds:
            seen, parts = len(server.requests), len(store.parts("media"))
            proc = _start(store, ["--image-max-side", "128", "--workers", "1"])
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if (len(server.requests) > seen) if trigger == "request" else (len(store.parts("media")) > parts):
                    break
                time.sleep(0.02)
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
        done_before = len(store.read("media", where="status = 'ok'"))
        assert 0 < done_before < len(good), "the killed runs should have made some, not all, progress"
        final = _start(store, ["--image-max-side", "128", "--workers", "1"])
        out, _ = final.communicate(timeout=300)
        assert final.returncode == 0, out.decode()
    assert kills >= 2, "the runs finished before they could be killed: make the server slower"

    # every blob verifies, and the blobs are exactly those the ok rows point to
    blobs = set(store.blobs.iter_paths())
    assert all(store.blobs.verify(b) for b in blobs)
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    assert all(rows[u]["status"] == "ok" for u in good)
    assert all(rows[u]["status"] == "failed" and rows[u]["http_status"] == 404 for u in dead)
    assert {rows[u]["blob"] for u in good} == blobs
    assert len(blobs) == N_IMAGES  # distinct images, stored once each

    # over all parts (every write of every run, killed ones included), each URL was written ok once
    parts = pq.ParquetDataset([str(p) for p in store.parts("media")]).read(columns=["media_id", "status"])
    oks = Counter(parts.filter(pc.equal(parts["status"], "ok"))["media_id"].to_pylist())
    assert set(oks.values()) == {1} and len(oks) == len(good)

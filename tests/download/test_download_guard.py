"""download.pool = mixed: a run after a download that decoded in threads and never ended (killed here, as a
decoder crash would end it) re-encodes every image in processes; the run after that goes back to threads."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from support.media_server import MediaServer, jpeg_bytes, media_rows

from m5data import config as cfg
from m5data.download.run import run as download


def _settings(store, **extra):
    return cfg.load(None, {"store.path": str(store.root), "download.allow_private": True,
                           "download.image_max_side": 128, "download.workers": 1, **extra}, environ={})


def test_a_run_after_a_killed_threaded_run_isolates_every_image_then_threads_come_back(store):
    files = {f"img{i}.jpg": jpeg_bytes(320, 240, seed=i) for i in range(12)}
    with MediaServer(files) as server:
        store.write("media", media_rows([server.url(f"/slow/400/img{i}.jpg") for i in range(12)]))
        proc = subprocess.Popen([sys.executable, "-m", "m5data.cli", "--store", str(store.root), "--set",
                                 "download.allow_private=true", "download", "--no-progress", "--image-max-side", "128",
                                 "--concurrency", "2", "--per-host", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                start_new_session=True)
        mark = store.local_root() / "logs" / "download" / "threads-all.json"
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline and not mark.exists():
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert json.loads(mark.read_text())["state"] == "running"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

        isolated = download(store, _settings(store))
        assert isolated.details["pool"]["kind"] == "process"
        assert f"PID {proc.pid}" in isolated.details["pool"]["why"]
        assert json.loads(mark.read_text())["state"] == "ended"
        assert {r["status"] for r in store.read("media").to_pylist()} == {"ok"}

        store.write("media", media_rows([server.url(f"/f/img{i}.jpg") for i in range(3)]))
        threaded = download(store, _settings(store))
        assert "pool" not in threaded.details and threaded.n_out == 3
        assert json.loads(mark.read_text())["state"] == "ended"


def _last_run(store) -> dict:
    return max(store.read("runs").to_pylist(), key=lambda r: r["started_at"])


@pytest.mark.parametrize("mark", ["[]", "null", '"running"', "3", "{half"])
def test_a_mark_that_is_not_an_object_isolates_one_run_and_says_so(store, mark):
    """A mark holding valid JSON that is not an object (or no JSON at all) is damaged: the run after it
    isolates its decoders, records why in its runs row and prints it, and mends the mark (issue 75,
    item 5: every later download failed with a traceback until the file was removed)."""
    from typer.testing import CliRunner

    from m5data.cli import app

    path = store.local_root() / "logs" / "download" / "threads-all.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(mark)
    with MediaServer({f"img{i}.jpg": jpeg_bytes(160, 120, seed=i) for i in range(3)}) as server:
        store.write("media", media_rows([server.url(f"/f/img{i}.jpg") for i in range(2)]))
        result = CliRunner().invoke(app, ["--store", str(store.root), "--set", "download.allow_private=true",
                                          "download", "--no-progress", "--image-max-side", "128", "--workers", "1"])
        assert result.exit_code == 0, result.output
        output = " ".join(result.output.split())
        assert "note:" in output and "threads-all.json" in output and "in processes" in output, result.output
        pool = json.loads(_last_run(store)["config"])["job"]["pool"]
        assert pool["kind"] == "process" and "threads-all.json" in pool["why"]
        assert {r["status"] for r in store.read("media").to_pylist()} == {"ok"}
        assert json.loads(path.read_text())["state"] == "ended"

        store.write("media", media_rows([server.url("/f/img2.jpg")]))
        threaded = download(store, _settings(store))
        assert "pool" not in threaded.details and threaded.n_out == 1
        assert "pool" not in json.loads(_last_run(store)["config"])["job"]

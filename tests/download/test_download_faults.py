"""The download stage against a local server with fault routes: every fault ends in its status."""

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from support.media_server import MediaServer, jpeg_bytes, media_rows

from m5data.config import load
from m5data.download.run import run

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "media"
JPEG = jpeg_bytes(640, 480, seed=1)


def settings(tmp_path, **overrides):
    """Settings for tests: loopback allowed (the server is on 127.0.0.1), fast backoff."""
    values = {"download.allow_private": True, "download.backoff": 0.01, "download.retries": 2,
              "download.connect_timeout": 5, "download.read_timeout": 5, "download.request_deadline": 20}
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return load(overrides=values, environ={}, cwd=tmp_path)


def _real(name: str) -> bytes:
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} not present (shared/ must sit beside the checkout)")
    return path.read_bytes()


@pytest.fixture(scope="module")
def server():
    files = {"a.jpg": JPEG, "html.jpg": b"<!doctype html><html><body>not found</body></html>",
             "empty.jpg": b"", "truncated.jpg": _real("broken/truncated_jpeg.jpg"),
             "clip.mp4": _real("video/chaplin.mp4"), "clip.webm": _real("video/big_buck_bunny_432_433.webm"),
             "big.jpg": JPEG + b"\0" * 200_000, "headless.jpg": b"\xff\xd8\xff" + b"\x00not a header" * 100}
    with MediaServer(files) as srv:
        yield srv


# path -> (status, reason, http_status)
FAULTS = {
    "/f/a.jpg": ("ok", None, 200),
    "/chunked/a.jpg": ("ok", None, 200),
    "/status/404/a": ("failed", "http_404", 404),
    "/status/410/a": ("failed", "http_410", 410),
    "/status/403/a": ("failed", "http_403", 403),
    "/f/html.jpg": ("not_media", "not_media", 200),
    "/f/empty.jpg": ("not_media", "empty", 200),
    "/f/clip.webm": ("not_media", "mismatch", 200),  # an image row whose body is a video
    "/truncated/a.jpg": ("failed", "truncated", None),
    "/flaky/1/a.jpg": ("ok", None, 200),
    "/flaky/2/a.jpg": ("ok", None, 200),
    "/flaky/9/a.jpg": ("failed", "http_500", 500),
    "/status/503/a": ("failed", "http_503", 503),
    "/ratelimit/1/a.jpg": ("ok", None, 200),
    "/slow/300/a.jpg": ("ok", None, 200),
    "/redirect/2/a.jpg": ("ok", None, 200),
    "/redirect/4/a.jpg": ("failed", "redirects", None),
    "/f/big.jpg": ("too_large", "too_large", 200),
    "/chunked/big.jpg": ("too_large", "too_large", 200),
}


def _by_path(store, srv):
    return {row["url"].removeprefix(srv.url("")): row for row in store.read("media").to_pylist()}


@pytest.fixture(scope="module")
def faulted(server, tmp_path_factory):
    """One download run over every fault route (images), plus two videos."""
    from m5data.storage import Store

    tmp = tmp_path_factory.mktemp("faults")
    store = Store.init(tmp / "store")
    server.clear()
    store.write("media", media_rows([server.url(p) for p in FAULTS]) +
                media_rows([server.url("/slow/1/clip.mp4"), server.url("/chunked/clip.webm")], kind="video"))
    s = settings(tmp, download__max_redirects=3, download__max_image_bytes=150_000)
    stats = run(store, s)
    return store, stats, _by_path(store, server)


@pytest.mark.parametrize("path", list(FAULTS))
def test_each_fault_ends_in_its_status(faulted, path):
    _, _, rows = faulted
    status, reason, http_status = FAULTS[path]
    row = rows[path]
    assert row["status"] == status, row
    assert row["http_status"] == http_status
    if status == "ok":
        assert row["error"] is None and row["blob"].startswith("blobs/") and row["mime"] == "image/jpeg"
        assert (row["width"], row["height"]) == (640, 480) and row["bytes"] == len(JPEG)
        assert row["sha256"] == hashlib.sha256(JPEG).hexdigest()
        final = json.loads(row["meta"])["download"]["final_url"] if row["meta"] else None
        assert final == (row["url"].split("/redirect/")[0] + "/f/a.jpg" if "/redirect/" in path else None)
    else:
        assert row["blob"] is None and ERROR_TEXT[reason] in row["error"], row


ERROR_TEXT = {"http_404": "HTTP 404", "http_410": "HTTP 410", "http_403": "HTTP 403", "http_500": "HTTP 500",
              "http_503": "HTTP 503", "not_media": "no known image format", "mismatch": "expected image, body is video/webm",
              "empty": "empty body", "truncated": "cut short", "redirects": "more than 3 redirects",
              "too_large": "limit of 150,000 bytes"}


def test_transient_errors_are_retried_a_bounded_number_of_times(faulted, server):
    _, stats, rows = faulted
    retries = 2
    assert rows["/flaky/1/a.jpg"]["attempts"] == 2 and server.hits("/flaky/1/a.jpg") == 2
    assert rows["/flaky/2/a.jpg"]["attempts"] == 3
    # never forever: 1 + retries requests, then a final failure that says so
    assert server.hits("/flaky/9/a.jpg") == 1 + retries and server.hits("/status/503/a") == 1 + retries
    assert "after 3 attempts" in rows["/status/503/a"]["error"]
    assert server.hits("/truncated/a.jpg") == 1 + retries
    # Retry-After honoured: a second request came, and it succeeded
    assert server.hits("/ratelimit/1/a.jpg") == 2 and rows["/ratelimit/1/a.jpg"]["status"] == "ok"
    # 404/410/403 are final at once
    for path in ("/status/404/a", "/status/410/a", "/status/403/a"):
        assert server.hits(path) == 1 and rows[path]["attempts"] == 1


def test_videos_are_sniffed_and_stored_with_their_extension(faulted):
    store, _, rows = faulted
    mp4, webm = rows["/slow/1/clip.mp4"], rows["/chunked/clip.webm"]
    assert (mp4["status"], mp4["mime"], Path(mp4["blob"]).suffix) == ("ok", "video/mp4", ".mp4")
    assert (webm["status"], webm["mime"], Path(webm["blob"]).suffix) == ("ok", "video/webm", ".webm")
    assert store.blobs.path(mp4["blob"]).read_bytes() == _real("video/chaplin.mp4")


def test_run_is_counted_and_recorded(faulted):
    store, stats, rows = faulted
    assert stats.n_in == len(rows) and stats.selected == len(rows)
    assert stats.n_out == sum(r["status"] == "ok" for r in rows.values())
    assert stats.failures["failed/http_404"] == 1 and stats.failures["not_media/empty"] == 1
    assert stats.statuses["too_large"] == 2
    run_row = store.read("runs").to_pylist()[-1]
    assert run_row["stage"] == "download" and run_row["n_in"] == stats.n_in and run_row["n_out"] == stats.n_out
    assert json.loads(run_row["failures"]) == dict(stats.failures)
    # the failure rate (12 of 21) is over the default threshold of 0.2
    assert run_row["status"] == "failed" and stats.failure_rate > 0.2


def test_every_blob_matches_its_sha256_and_names_come_from_content(faulted):
    store, _, rows = faulted
    blobs = list(store.blobs.iter_paths())
    assert blobs and all(store.blobs.verify(b) for b in blobs)
    assert {r["blob"] for r in rows.values() if r["blob"]} == set(blobs)
    assert not any("a.jpg" in b or "clip" in b for b in blobs)


def test_a_second_run_fetches_nothing(faulted, server):
    store, _, _ = faulted
    server.clear()
    stats = run(store, settings(store.local_root().parent))
    assert stats.selected == 0 and server.requests == []


@pytest.mark.parametrize("pool", ["process", "thread", "mixed"])
def test_reencoding_resizes_orients_and_marks_undecodable_images_corrupt(server, store, tmp_path, pool):
    oriented = _oriented_jpeg()
    server.files["oriented.jpg"] = oriented
    paths = ["/f/a.jpg", "/f/truncated.jpg", "/f/oriented.jpg"]
    store.write("media", media_rows([server.url(p) for p in paths]))
    stats = run(store, settings(tmp_path, download__image_max_side=256, download__workers=1, download__jpeg_quality=80,
                                download__pool=pool))
    rows = _by_path(store, server)
    a, bad, rot = rows["/f/a.jpg"], rows["/f/truncated.jpg"], rows["/f/oriented.jpg"]
    assert (a["status"], a["width"], a["height"], a["mime"]) == ("ok", 256, 192, "image/jpeg")
    meta = json.loads(a["meta"])["download"]["reencoded"]
    assert (meta["width"], meta["height"], meta["bytes"], meta["mime"]) == (640, 480, len(JPEG), "image/jpeg")
    with Image.open(store.blobs.path(a["blob"])) as im:
        assert im.size == (256, 192) and im.format == "JPEG"
    assert bad["status"] == "corrupt" and "does not decode" in bad["error"] and bad["blob"] is None
    # stored 300x200 with orientation 6 (rotate 90 cw to display): displayed portrait 200x300
    assert (rot["status"], rot["width"], rot["height"]) == ("ok", 171, 256)
    with Image.open(store.blobs.path(rot["blob"])) as im:
        assert im.getexif().get(0x0112, 1) == 1
        assert im.getpixel((im.width // 2, 5))[0] > 200  # the red top band of the displayed image
    assert stats.statuses == {"ok": 2, "corrupt": 1}


def _oriented_jpeg() -> bytes:
    """300x200 stored pixels, red on the left: with EXIF orientation 6 the red edge is at the top."""
    import io

    im = Image.new("RGB", (300, 200), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 40, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_without_reencoding_a_truncated_jpeg_is_stored_as_is(server, store, tmp_path):
    store.write("media", media_rows([server.url("/f/truncated.jpg")]))
    run(store, settings(tmp_path))
    row = store.read("media").to_pylist()[0]
    assert row["status"] == "ok" and row["mime"] == "image/jpeg"  # extract marks it corrupt later
    assert store.blobs.path(row["blob"]).read_bytes() == _real("broken/truncated_jpeg.jpg")


def test_without_reencoding_an_image_whose_header_does_not_parse_is_corrupt_never_ok_without_a_size(
        server, store, tmp_path):
    store.write("media", media_rows([server.url("/f/headless.jpg"), server.url("/f/truncated.jpg")]))
    run(store, settings(tmp_path, download__max_failure_rate=1))
    rows = {r["url"].rsplit("/", 1)[1]: r for r in store.read("media").to_pylist()}
    bad = rows["headless.jpg"]
    assert (bad["status"], bad["blob"], bad["mime"]) == ("corrupt", None, "image/jpeg"), bad
    assert bad["error"].startswith("image/jpeg header does not parse: UnidentifiedImageError")
    good = rows["truncated.jpg"]  # its header is whole: stored as served, with its size
    assert good["status"] == "ok" and good["width"] > 0 and good["height"] > 0
    assert list(store.blobs.iter_paths()) == [good["blob"]]


def test_every_request_has_a_deadline(server, store, tmp_path):
    """A server that stalls before answering hits the read timeout; one that drips bytes slowly
    (each read in time) hits the whole-request deadline. Both are retried once, then fail."""
    stalled, dripping = server.url("/slow/10000/a.jpg"), server.url("/drip/150/a.jpg")
    store.write("media", media_rows([stalled, dripping]))
    server.clear()
    stats = run(store, settings(tmp_path, download__retries=1, download__read_timeout=0.5,
                                download__request_deadline=1.0))
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    assert rows[stalled]["status"] == "failed" and "read timeout (0.5 s)" in rows[stalled]["error"]
    assert rows[dripping]["status"] == "failed" and "1 s request deadline" in rows[dripping]["error"]
    assert server.hits("/slow/10000/a.jpg") == 2 and server.hits("/drip/150/a.jpg") == 2
    assert stats.failures["failed/timeout"] == 2 and not list(store.blobs.iter_paths())


def test_blobs_are_synced_before_their_status_rows_are_written(server, store, tmp_path, monkeypatch):
    """Blobs are written without an fsync each; every media part that records a blob is written
    after a sync of the blob area, so an ``ok`` row never points at a blob a power cut could tear."""
    from m5data.storage.blobs import BlobStore
    from m5data.storage.store import Store

    events = []
    real_sync, real_write = BlobStore.sync, Store.write

    def sync(self):
        events.append(("sync", None))
        real_sync(self)

    def write(self, table, rows, *args, **kwargs):
        if table == "media":
            events.append(("write", sum(bool(r.get("blob")) for r in rows)))
        return real_write(self, table, rows, *args, **kwargs)

    monkeypatch.setattr(BlobStore, "sync", sync)
    monkeypatch.setattr(Store, "write", write)
    urls = [server.url(f"/f/a.jpg?copy={i}") for i in range(30)] + [server.url("/status/404/x")]
    store.write("media", media_rows(urls))
    events.clear()
    stats = run(store, settings(tmp_path))
    assert stats.statuses == {"ok": 30, "failed": 1}
    assert sum(blobs for kind, blobs in events if kind == "write") == 30
    synced = False  # a sync since the last media write
    for kind, blobs in events:
        if kind == "sync":
            synced = True
        else:
            assert synced or not blobs, events
            synced = False


def test_a_killed_reencode_worker_costs_no_image(server, store, tmp_path):
    """A re-encoding process that dies (OOM killer, a decoder crash) breaks its pool; the images
    in flight are re-encoded again and the run goes on with a new pool."""
    import os
    import signal

    import psutil

    class KillOneWorker:
        killed: list[int] = []

        def start(self, total):
            pass

        def update(self, done, ok, failed, nbytes):
            if done >= 5 and not self.killed:
                workers = [p for p in psutil.Process().children(recursive=True)
                           if "spawn_main" in " ".join(p.cmdline())]
                assert workers, "no re-encoding process found"
                os.kill(workers[0].pid, signal.SIGKILL)
                self.killed.append(workers[0].pid)

    urls = [server.url(f"/slow/100/a.jpg?copy={i}") for i in range(60)]
    store.write("media", media_rows(urls))
    sink = KillOneWorker()
    stats = run(store, settings(tmp_path, download__image_max_side=128, download__workers=2,
                                download__pool="process"), progress=sink)
    assert sink.killed
    assert stats.statuses == {"ok": 60}, stats.failures
    assert stats.pool_restarts == 1


def _reencode_workers() -> list:
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def test_the_mixed_pool_reencodes_jpegs_in_threads_and_the_rest_in_processes():
    """pool = "mixed": a JPEG the fast path takes never starts a process (no start-up, no hand-off);
    any other image is decoded in a spawned process, isolated from the downloader."""
    import asyncio
    import io

    from m5data.download.resize import ImagePool

    png = io.BytesIO()
    Image.new("RGBA", (300, 200), (0, 128, 0, 128)).save(png, "PNG")

    async def main():
        pool = ImagePool(1, 128, 90, "mixed")
        try:
            jpeg = await pool.reencode(JPEG)
            assert (jpeg.width, jpeg.height, jpeg.orig_mode) == (128, 96, "RGB")
            assert _reencode_workers() == [], "a JPEG started a re-encoding process"
            flat = await pool.reencode(png.getvalue())
            assert (flat.width, flat.height, flat.orig_mode) == (128, 85, "RGBA")
            assert len(_reencode_workers()) == 1, "the PNG was not decoded in a process"
        finally:
            pool.close(kill=True)

    asyncio.run(main())


def test_an_image_that_kills_every_process_it_meets_is_marked_corrupt_alone():
    """When the quarantine process dies too, the image is the culprit: ImageDecodeError, no hang."""
    import asyncio
    import os
    import signal
    import threading

    import psutil

    from m5data.download.resize import ImageDecodeError, ImagePool

    stop = threading.Event()

    def kill_every_worker():  # what a decoder crash does to each process that decodes the image
        me = psutil.Process()
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    if "spawn_main" in " ".join(p.cmdline()):
                        os.kill(p.pid, signal.SIGKILL)
                except (psutil.Error, ProcessLookupError):
                    pass
            stop.wait(0.005)

    async def main():
        pool = ImagePool(1, 128, 90, "process")
        try:
            with pytest.raises(ImageDecodeError, match="died on this image"):
                await asyncio.wait_for(pool.reencode(JPEG), 60)
            assert pool.restarts == 1
        finally:
            pool.close(kill=True)

    killer = threading.Thread(target=kill_every_worker, daemon=True)
    killer.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        killer.join(5)

"""URL safety: only http(s); loopback/private/link-local refused unless download.allow_private."""

import asyncio

import pytest
from support.media_server import MediaServer, jpeg_bytes, media_rows

from m5data.config import load
from m5data.download.run import run
from m5data.download.safety import GuardedResolver, UnsafeURL, check_url, is_public


def settings(tmp_path, allow_private: bool):
    return load(overrides={"download.allow_private": allow_private, "download.retries": 0}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True), ("93.184.216.34", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.9", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("100.64.0.1", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1%eth0", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("not-an-ip", False),
])
def test_is_public(address, public):
    assert is_public(address) is public


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "data:image/png;base64,AAAA",
                                 "gopher://example.com/", "//example.com/a.jpg", "http:///a.jpg", "javascript:alert(1)"])
def test_only_http_and_https_are_fetched(url):
    for allow in (False, True):
        with pytest.raises(UnsafeURL):
            check_url(url, allow_private=allow)


def test_ip_literals_are_checked_before_connecting():
    for url in ("http://127.0.0.1:8000/a.jpg", "http://[::1]/a.jpg", "http://169.254.169.254/latest/meta-data",
                "https://10.0.0.5/x.png"):
        with pytest.raises(UnsafeURL, match="not public"):
            check_url(url, allow_private=False)
        assert check_url(url, allow_private=True).host
    assert check_url("https://8.8.8.8/a.jpg", allow_private=False).host == "8.8.8.8"


def test_resolver_drops_non_public_addresses():
    async def resolve(allow):
        resolver = GuardedResolver(allow)
        try:
            return await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()

    with pytest.raises(UnsafeURL, match="non-public"):
        asyncio.run(resolve(False))
    assert {r["host"] for r in asyncio.run(resolve(True))} & {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def server():
    with MediaServer({"a.jpg": jpeg_bytes(64, 48)}) as srv:
        yield srv


def test_loopback_is_refused_by_default_and_allowed_with_the_switch(server, store, tmp_path):
    by_ip = server.url("/f/a.jpg")
    by_name = f"http://localhost:{server.port}/f/a.jpg"  # a host name: refused after resolution
    redirect_to_file = server.url("/redirect-to?to=file:///etc/passwd")
    store.write("media", media_rows([by_ip, by_name, "file:///etc/passwd"]))
    server.clear()
    stats = run(store, settings(tmp_path, allow_private=False))
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    assert server.requests == []  # nothing reached the server
    assert stats.n_out == 0 and stats.failures["failed/unsafe_url"] == 3
    assert "not public" in rows[by_ip]["error"] and "non-public" in rows[by_name]["error"]
    assert "scheme 'file' refused" in rows["file:///etc/passwd"]["error"]

    # with the switch, the loopback URLs are fetched; file:// and a redirect to it stay refused
    store.write("media", [dict(r, status="pending") for r in rows.values()] + media_rows([redirect_to_file]))
    stats = run(store, settings(tmp_path, allow_private=True))
    rows = {r["url"]: r for r in store.read("media").to_pylist()}
    assert rows[by_ip]["status"] == "ok"
    assert rows[by_name]["status"] == "ok" or "::1" in str(rows[by_name]["error"])  # localhost may try ::1 first
    assert rows["file:///etc/passwd"]["status"] == "failed"
    assert rows[redirect_to_file]["status"] == "failed" and "scheme 'file' refused" in rows[redirect_to_file]["error"]
    assert server.hits("/redirect-to") == 1


def test_file_names_never_come_from_urls(server, store, tmp_path):
    server.files["../../escape.jpg"] = server.files["..%2F..%2Fescape.jpg"] = server.files["a.jpg"]
    store.write("media", media_rows([server.url("/f/..%2F..%2Fescape.jpg")]))
    run(store, settings(tmp_path, allow_private=True))
    row = store.read("media").to_pylist()[0]
    assert row["status"] == "ok" and row["blob"] == f"blobs/{row['sha256'][:2]}/{row['sha256']}.jpg"
    assert not list(tmp_path.rglob("*escape*"))


# The download stage in its own process, so that its peak RSS is the stage's alone: the process's own
# high-water mark (VmHWM, which starts afresh at exec) and that of the re-encoding workers it waited
# for (RUSAGE_CHILDREN). Not os.wait4 from here: the kernel carries the pre-exec high-water mark of
# the forking process into the child's rusage, so the test worker's own size (1.3 GB late in the
# suite) would be counted. argv: store, overrides (JSON).
_MEASURED = """
import json, resource, sys
from pathlib import Path
from m5data.config import load
from m5data.download.run import run
from m5data.storage import Store
stats = run(Store(sys.argv[1]), load(overrides=json.loads(sys.argv[2]), environ={}, cwd=Path(sys.argv[1])))
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"statuses": stats.statuses, "peak_kib": max(hwm, kids)}))
"""


def _measured_download(store_root, overrides: dict) -> tuple[dict, int]:
    """Run the stage in a child process: (its stats' statuses, its peak RSS in bytes)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                         os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _MEASURED, str(store_root), json.dumps(overrides)],
                          capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result["statuses"], result["peak_kib"] * 1024


@pytest.mark.parametrize("image_max_side", [512, 0])  # the re-encode path (small bodies read at once), streaming
def test_a_gzip_bomb_is_refused_while_it_inflates(tmp_path, image_max_side):
    """Eight 1 MB gzip-encoded image bodies that inflate to 1 GiB each: every one is refused at the
    image limit, counted in inflated bytes, and the stage never holds one whole (issue 35: 5.9 GB
    peak with image_max_side=512, where a body under 1 MiB of Content-Length was read in one call)."""
    from support.media_server import gzip_bomb

    from m5data.storage import Store

    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 1_100_000
    store = Store.init(tmp_path / "store")
    with MediaServer({"bomb.jpg": bomb}) as srv:
        store.write("media", media_rows([srv.url(f"/gzip/bomb.jpg?copy={i}") for i in range(8)]))
        statuses, peak = _measured_download(store.root, {
            "download.allow_private": True, "download.retries": 0, "download.image_max_side": image_max_side,
            "download.workers": 1})
    rows = store.read("media").to_pylist()
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:,.0f} MiB; {statuses}; {rows[0]['error']}"
    assert statuses == {"too_large": 8}
    assert all("limit of 20,000,000 bytes" in r["error"] for r in rows), rows[0]["error"]
    assert not list(store.blobs.iter_paths())

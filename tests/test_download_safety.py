"""URL safety: only http(s); loopback/private/link-local refused unless download.allow_private."""

import asyncio

import pytest

from m5data.config import load
from m5data.crawler.download.run import run
from m5data.crawler.download.safety import GuardedResolver, UnsafeURL, check_url, is_public
from m5data.crawler.download.testing import MediaServer, jpeg_bytes, media_rows


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

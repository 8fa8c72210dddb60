"""A writer paused at any commit point, past its lease, lands nothing (issue 75, item 2), on both stores.

A child runs an align-like stage (``_WRITER``: a group rewrite of taxonomy and label_map, an append,
a staged review file, a kept folder with a pushed marker, a changed file and a removed one, a file
put) and is paused at its k-th commit point, for every k: on object storage by a real HTTP proxy in
front of moto's server (:class:`HoldingProxy`) that holds that request and every later one of the
child (its lease renewals too), as a frozen VM would; on a folder store by a hook in the child that
blocks at its k-th rename or unlink in the store. While it is paused past its lease a second run of
the stage takes over and finishes; then the first resumes.

- Object storage: nothing the first run sends after the pause lands: no log entry (table or lease), no
  file upload, no delete but of its own parts that no entry names; it exits with LeaseLost, and
  every table and file equals the second run's alone.
- Folder store: the fcntl lock is still the paused child's: the second run is refused (naming its
  PID), and the first finishes with its own result.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from m5data.storage import Store, StoreBusy

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2.5  # seconds: the paused run's lease runs out while it is held
S3_POINTS = 12  # the writer's commit points on object storage (test_the_writer_has_these_commit_points)
FOLDER_POINTS = 20  # and on a folder store (renames into place, deletes)

_WRITER = textwrap.dedent("""
    import contextlib, os, sys, time
    from m5data.storage import Store, StoreBusy
    root, lease, label = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    cid = {"init": 0, "stale": 1, "fresh": 2}[label]
    if os.environ.get("PAUSE_AT"):  # folder store: block at the k-th rename or unlink in the store
        at, seen = int(os.environ["PAUSE_AT"]), [0]
        def hooked(fn):
            def call(src, *args, **kwargs):
                rel = os.path.relpath(os.path.abspath(src), root)  # a rename into place, or a delete of a file
                if "dir_fd" not in kwargs and not rel.startswith(("..", "locks")) and (
                        fn is not os_unlink or not os.path.basename(rel).startswith(".tmp-")):
                    seen[0] += 1
                    if seen[0] == at:
                        print("paused", flush=True)
                        sys.stdin.readline()
                return fn(src, *args, **kwargs)
            return call
        os_unlink = os.unlink
        os.replace, os.rename, os.unlink = hooked(os.replace), hooked(os.rename), hooked(os.unlink)
    store = Store.open(root, lease_seconds=lease)
    with contextlib.ExitStack() as held:
        for _ in range(100):  # the second run waits for the paused run's lease to run out
            try:
                held.enter_context(store.stage_lock("align"))
                break
            except StoreBusy:
                time.sleep(0.1)
        store.replace_tables({"taxonomy": [{"level": 1, "label_id": 1, "name": label}],
                              "label_map": [{"platform": "a", "raw_path": "x", "class_id": cid}]})
        store.write("page_validators", [{"url": "x", "product_id": label}])
        with store.staged("derived/align") as folder:
            (folder / "review.csv").write_text(label)
        with store.kept("derived/pools") as kept:
            (kept.path / "marker.txt").write_text(label)
            kept.push(kept.path / "marker.txt")
            (kept.path / "state.json").write_text(label)
            (kept.path / "old.txt").unlink(missing_ok=True)
        store.write_bytes("derived/matcher/model.json", label.encode())
    print("wrote", seen[0] if os.environ.get("PAUSE_AT") else "", flush=True)
""")


class HoldingProxy:
    """An HTTP proxy in front of an S3 endpoint that records every request and its answer, and from the
    k-th *commit point* on (a PUT of a log entry or a file, a DELETE, a batch delete: ``hold_at``) holds
    that request and every later one until ``release()``."""

    COMMIT = re.compile(r"/(tables/[^/]+/_log/|derived/)")

    def __init__(self, target: str):
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.seen: list[dict] = []
        self.arrived: list = []
        self.points = 0
        self.hold_at: int | None = None
        self.holding = threading.Event()  # the k-th commit point arrived (the writer is paused)
        self.released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy.relay(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def is_point(self, method: str, path: str) -> bool:
        return (method == "PUT" and bool(self.COMMIT.search(path)) or method == "DELETE"
                or method == "POST" and "delete" in path.split("?", 1)[-1])

    def relay(self, handler) -> None:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(handler.rfile.readline().split(b";")[0], 16):
                body += handler.rfile.read(size)
                handler.rfile.readline()
            handler.rfile.readline()
        else:
            body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.arrived.append((handler.command, handler.path, dict(handler.headers)))
            point = self.is_point(handler.command, handler.path)
            self.points += point
            if point and self.points == self.hold_at:
                self.holding.set()
            after = self.holding.is_set()
        if after:
            self.released.wait()
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("transfer-encoding", "connection")}
        if body or handler.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.target, timeout=60)
        conn.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        with self._lock:
            self.seen.append({"method": handler.command, "path": handler.path, "status": resp.status,
                              "body": body if handler.command == "POST" else b"", "after": after})
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()


def _run(root: str, label: str, env: dict | None = None, lease: float = LEASE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _WRITER, root, str(lease), label], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=180)


def _start(root: str, label: str, env: dict, lease: float = LEASE) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, root, str(lease), label], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def _seed(root: str) -> Store:
    Store.init(root)
    done = _run(root, "init", lease=60.0)
    assert done.returncode == 0, done.stderr[-3000:]
    store = Store.open(root)
    store.write_bytes("derived/pools/old.txt", b"init")
    return store


def _result(store) -> dict:
    return {"taxonomy": [r["name"] for r in store.read("taxonomy").to_pylist()],
            "label_map": [r["class_id"] for r in store.read("label_map").to_pylist()],
            "page_validators": [r["product_id"] for r in store.read("page_validators").to_pylist()],
            **{rel: store.read_bytes(rel) for rel in ("derived/align/review.csv", "derived/pools/marker.txt",
                                                      "derived/pools/state.json", "derived/pools/old.txt",
                                                      "derived/matcher/model.json")}}


FRESH = {"taxonomy": ["fresh"], "label_map": [2], "page_validators": ["fresh"], "derived/align/review.csv": b"fresh",
         "derived/pools/marker.txt": b"fresh", "derived/pools/state.json": b"fresh", "derived/pools/old.txt": None,
         "derived/matcher/model.json": b"fresh"}


STALE = {**FRESH, "taxonomy": ["stale"], "label_map": [1], "page_validators": ["stale"],
         **{k: b"stale" for k, v in FRESH.items() if v == b"fresh"}}


def _named_parts(s3, prefix: str, pid: int) -> tuple[set[str], set[str]]:
    """The parts any log entry of the store names, and those that an entry of process ``pid`` removed
    (dead from that entry on: a part's name is never used again). boto3, not the store's code."""
    client, names, removed = s3["client"], set(), set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"], Prefix=prefix + "/tables/"):
        for obj in page.get("Contents", []):
            if "/_log/" in obj["Key"]:
                entry = json.loads(client.get_object(Bucket=s3["bucket"], Key=obj["Key"])["Body"].read())
                changes = [entry, *(entry.get("group") or {}).get("tables", {}).values()]
                for change in changes:
                    names |= set(change.get("add", [])) | set(change.get("remove", []))
                    removed |= set(change.get("remove", [])) if entry.get("pid") == pid else set()
    return names, removed


def test_the_writer_has_these_commit_points(s3_url, aws, tmp_path):
    """The paused-writer test below holds each of these (update the counts when the writer changes)."""
    pytest.importorskip("moto")
    _seed(s3_url)
    proxy = HoldingProxy(aws["url"])
    try:
        done = _run(s3_url, "fresh", {"AWS_ENDPOINT_URL_S3": proxy.url})
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr[-3000:]
    assert proxy.points == S3_POINTS, "\n".join(f"{r['method']} {r['path'].split('/', 2)[-1]}" for r in proxy.seen
                                                if proxy.is_point(r["method"], r["path"]))
    root = str(tmp_path / "store")
    _seed(root)
    done = _run(root, "fresh", {"PAUSE_AT": "1000000"})
    assert done.returncode == 0 and done.stdout.split() == ["wrote", str(FOLDER_POINTS)], done.stdout + done.stderr[-3000:]


@pytest.mark.parametrize("point", range(1, S3_POINTS + 1))
def test_a_writer_paused_at_a_commit_point_past_its_lease_lands_nothing_on_s3(s3_url, aws, point):
    pytest.importorskip("moto")
    store = _seed(s3_url)
    proxy = HoldingProxy(aws["url"])
    proxy.hold_at = point
    try:
        proc = _start(s3_url, "stale", {"AWS_ENDPOINT_URL_S3": proxy.url})
        assert proxy.holding.wait(60), proc.communicate(timeout=60)
        time.sleep(LEASE + 0.5)  # its lease runs out while it is held
        fresh = _run(s3_url, "fresh")  # the next run takes the lease over and finishes
        assert fresh.returncode == 0, fresh.stderr[-3000:]
        proxy.release()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.close()
    assert proc.returncode != 0 and "LeaseLost" in err and "wrote" not in out, err[-3000:]
    prefix = s3_url.split("/", 3)[3]
    named, removed = _named_parts(aws, prefix, proc.pid)
    allowed = lambda part: part not in named or part in removed  # noqa: E731  (its own upload, or dead by its own entry)
    for req in (r for r in proxy.seen if r["after"] and r["method"] != "GET" and r["method"] != "HEAD"):
        path, landed = req["path"].split("?")[0], 200 <= req["status"] < 300
        if req["method"] == "PUT" and "/part-" in path and "/_log/" not in path:
            continue  # its own part upload: a row of nothing until an entry names it
        if req["method"] == "PUT":
            assert not landed, f"commit point {point}: the paused run's {path} landed after its lease was taken over"
        elif req["method"] == "POST" and landed:  # a batch delete: only parts no committed state from now on reads
            deleted = {k.rsplit("/", 1)[-1] for k in re.findall(r"<Key>([^<]+)</Key>", req["body"].decode())}
            assert all(k.startswith("part-") and allowed(k) for k in deleted), \
                f"commit point {point}: the paused run deleted {sorted(deleted)}"
        elif req["method"] == "DELETE" and landed:
            assert "/part-" in path and allowed(path.rsplit("/", 1)[-1]), \
                f"commit point {point}: the paused run deleted {path}"
    assert _result(store) == FRESH, f"commit point {point}"


@pytest.mark.parametrize("point", range(1, FOLDER_POINTS + 1))
def test_a_writer_paused_at_a_commit_point_on_a_folder_store_keeps_the_next_run_out(tmp_path, point):
    root = str(tmp_path / "store")
    store = _seed(root)
    # opened before the writer starts: an open finishes a group rewrite left pending, waiting up to 30 s
    # for the lock of one in progress (the paused writer's, at some points), which is not this test's subject
    second = Store.open(root)
    proc = _start(root, "stale", {"PAUSE_AT": str(point)}, lease=0.5)
    try:
        assert proc.stdout.readline().strip() == "paused", proc.stderr.read()[-3000:]
        time.sleep(1.0)  # longer than its lease (0.5 s): an fcntl lock does not run out
        with pytest.raises(StoreBusy, match=f"PID {proc.pid}"):
            with second.stage_lock("align"):
                pass
        out, err = proc.communicate("go\n", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.split()[0] == "wrote", err[-3000:]
    assert _result(store) == STALE  # its own result: nobody else ran

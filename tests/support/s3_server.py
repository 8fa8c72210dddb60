"""A real S3 endpoint on 127.0.0.1 for tests and benchmarks: moto's server in its own process, with
IAM authentication on (refused keys are refused), an IAM user allowed ``s3:*`` and its bucket.

moto honours S3's conditional writes (``If-None-Match: *``, ``If-Match``), which the store's commit
log relies on. Its request log (one line per request) is how tests and benchmarks count requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "m5data-test"
MOTO_MAIN = Path(__file__).with_name("moto_main.py")  # moto's server, its per-request lookups kept (see there)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(folder: Path, bucket: str = BUCKET) -> Iterator[dict]:
    """Start moto on 127.0.0.1; yields ``{"url", "client", "bucket", "log", "env"}``.

    ``env`` is the AWS environment a client needs (endpoint, key, secret, region; no profile or config
    file); ``log`` is the server's request log (:func:`requests` counts its lines).
    """
    import boto3

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    # the first 3 requests (user, policy, key) go unauthenticated; every later one is checked
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "moto.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, str(MOTO_MAIN), "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start")
                time.sleep(0.1)
        anon = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "setup",
                "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **anon)
        iam.create_user(UserName="m5data")
        iam.put_user_policy(UserName="m5data", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="m5data")["AccessKey"]
        creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **creds)
        client.create_bucket(Bucket=bucket)
        nowhere = str(folder / "no-aws-config")
        yield {"url": url, "client": client, "bucket": bucket, "log": log_path, "env": {
            "AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"], "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": nowhere, "AWS_SHARED_CREDENTIALS_FILE": nowhere}}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def requests_by_kind(log: Path, after: int = 0) -> dict[str, int]:
    """Requests the server answered after the first ``after`` (:func:`requests`), by kind: GET, LIST
    (a GET of a bucket with ``list-type``), HEAD, PUT, POST (multipart), DELETE."""
    kinds: dict[str, int] = {}
    seen = 0
    with open(log, "rb") as fh:
        for line in fh:
            if b'HTTP/1.1" ' not in line:
                continue
            seen += 1
            if seen <= after:
                continue
            method, _, path = line.split(b'"', 2)[1].partition(b" ")
            kind = method.decode(errors="replace")
            if kind == "GET" and (b"list-type" in path or b"prefix=" in path):
                kind = "LIST"
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def requests(log: Path) -> int:
    """Requests the server has answered so far (its log has one line per request)."""
    with open(log, "rb") as fh:
        return sum(1 for line in fh if b'HTTP/1.1" ' in line)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 for a test module (import this fixture and :func:`aws` into it)."""
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def aws(s3, monkeypatch):
    """This process (and the children it starts) talk to the local endpoint with the test user's key."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3["env"].items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture
def s3_url(aws, request):
    """A fresh store URL below the test bucket, named after the test."""
    return f"s3://{aws['bucket']}/{request.node.name.replace('[', '-').rstrip(']')}-{time.time_ns()}"


def keys(s3, prefix: str) -> list[str]:
    """Every object key under ``prefix``, listed with boto3 (not the store's code)."""
    out = []
    for page in s3["client"].get_paginator("list_objects_v2").paginate(Bucket=s3["bucket"], Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


class Endpoint:
    """A TCP relay in front of a server (moto) that can go down and come back on the same port: an
    endpoint outage as a client sees one (connections refused; the ones open are dropped).

    ``with Endpoint(target_url) as ep``: ``ep.url`` is the relay's address; ``ep.down()`` closes the
    listener and every relayed connection, ``ep.up()`` listens again on the same port.
    """

    def __init__(self, target: str):
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()

    def __enter__(self) -> Endpoint:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        import threading

        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, set()
        for sock in ([listener] if listener is not None else []) + list(conns):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            try:
                server = socket.create_connection(self.target, 5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    server.close()
                    return
                self._conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

"""Exports on object storage: ``--out s3://bucket/prefix`` (or any fsspec URL) for export,
check-shards and training.

Shards are still written by the layout modules into a local folder (a fresh per-shard staging
folder under ``TMPDIR``); :class:`RemoteOut` then uploads the shard's files and, last, its stats
file (the completion marker), so a marker on the remote side always means a whole shard is there.
An S3 object appears only once its PUT (or multipart upload) completes, so a shard is never
visible half-written; on stores without that guarantee a file goes to a temp key and is moved.
A re-run lists the prefix once and skips every shard whose marker is there and whose output has
the recorded size. :class:`RemoteFolder` is the reading side (check-shards, training): one
listing, sizes from it, bytes streamed with ``fs.open`` (never downloaded whole to disk).

Endpoint and credentials come from the usual AWS settings, which botocore reads itself:
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``AWS_MAX_ATTEMPTS``. A missing bucket, refused credentials or an endpoint that
does not answer is one :class:`RemoteError` line naming the URL (and the endpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError

# stores whose put is all-or-nothing (a reader never sees a partial object): no temp key + move needed
ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
# layouts whose ``finish`` reads each shard's output file back (M5Product merges the shards' records)
FINISH_READS_SHARD_FILES = {"m5product"}


class RemoteError(UserError):
    """Object storage that cannot be used (no bucket, refused credentials, no answer); one line naming the URL."""


class OutsideFolder(UserError, ValueError):
    """A path read from an index or stats file that leads outside the export folder or prefix (never read)."""


def is_remote(url) -> bool:
    """True for a URL with a scheme other than ``file://`` (``s3://bucket/prefix``, ``gs://...``, ``memory://...``)."""
    return isinstance(url, str) and "://" in url and not url.startswith("file://")


def endpoint() -> str:
    """The S3 endpoint botocore will use, as the user set it (for error messages)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "the default AWS endpoint"


def _explain(url: str, exc: BaseException) -> str:
    """One line saying why ``url`` could not be used."""
    names = {c.__name__ for c in type(exc).__mro__}
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "NoCredentialsError" in names:
        return (f"{url}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE)")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError",
                "ConnectionRefusedError", "ServerTimeoutError"} and not isinstance(exc, PermissionError):
        return f"{url}: cannot reach the storage endpoint {endpoint()} ({text})"
    if isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        bucket = url.split("://", 1)[1].split("/", 1)[0]
        return f"{url}: no such bucket {bucket!r} at {endpoint()}"
    if isinstance(exc, PermissionError):
        return (f"{url}: access refused at {endpoint()} ({text}); check the credentials "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE)")
    return f"{url}: {type(exc).__name__}: {text}"


@contextmanager
def explained(url: str):
    """Turn any storage error raised inside into a :class:`RemoteError` naming ``url``."""
    try:
        yield
    except RemoteError:
        raise
    except Exception as exc:  # fsspec backends raise their own classes: one line for all of them
        raise RemoteError(_explain(url, exc)) from exc


def inside_prefix(rel) -> str | None:
    """``rel`` (a path read from an index or stats file) as a key below the prefix, or None when it is
    absolute, a URL, or climbs out with ``..``: such a path is never read or trusted."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "://" in rel or rel.startswith("/"):
        return None
    norm = posixpath.normpath(rel)
    if norm in (".", "..") or norm.startswith("../"):
        return None
    return norm


def sibling_name(rel) -> str | None:
    """The folder name in a path ``../<name>/<file>`` (an incremental export's shard taken over from
    the previous version's folder beside it), else None."""
    if not isinstance(rel, str) or "\x00" in rel or "\\" in rel or "://" in rel:
        return None
    parts = rel.split("/")
    if len(parts) < 3 or parts[0] != ".." or any(p in ("", ".", "..") for p in parts[1:]):
        return None
    return parts[1]


class _Location:
    """A URL prefix and its filesystem (created per process: fsspec's async filesystems are not fork-safe)."""

    def __init__(self, url: str):
        from ..storage.redact import refuse_credentials

        refuse_credentials(url, "object storage URL", RemoteError)  # s3fs ignores them; the URL is stored
        self.url = url.rstrip("/")
        if self.protocol == "s3":
            from ..storage.objects import need_s3

            need_s3(self.url, RemoteError)
        self._fs = None
        self._pid = None

    def __getstate__(self):
        return {"url": self.url, "_fs": None, "_pid": None}

    @property
    def fs(self):
        if self._fs is None or self._pid != os.getpid():
            import fsspec

            from ..storage.objects import aws_session

            # S3: a session sharing the process's botocore data loader (storage.objects.aws_session); one
            # of its own parsed botocore's endpoint rules again, ~0.4 CPU-s an export and each of its workers
            extra = {"session": aws_session()} if self.protocol == "s3" else {}
            with explained(self.url):
                # a fresh instance: fsspec's cache is keyed by arguments, not by the AWS environment
                self._fs, self._root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **extra)
            self._pid = os.getpid()
        return self._fs

    @property
    def root(self) -> str:
        _ = self.fs
        return self._root.rstrip("/")

    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0]

    def key(self, rel: str) -> str:
        if rel.startswith("../"):  # a sibling folder's object (checked by the caller: sibling_name)
            return f"{posixpath.dirname(self.root)}/{rel[3:]}"
        return f"{self.root}/{rel}"

    def full_url(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def listing(self) -> dict[str, int]:
        """``{relative key: size}`` of every object below the prefix (one listing)."""
        with explained(self.url):
            found = self.fs.find(self.root, detail=True)
        out = {}
        for name, info in found.items():
            name = name.rstrip("/")
            if info.get("type", "file") == "file" and name.startswith(self.root + "/"):
                out[name[len(self.root) + 1:]] = int(info.get("size") or 0)
        return out


class RemoteOut(_Location):
    """The remote side of an export: its plan, the finished shards' markers, uploads."""

    def claim(self, plan: dict, plan_file: str) -> dict[str, int]:
        """Check the prefix holds this plan or nothing (an ``ExportError`` otherwise); returns the listing.

        Raises:
            RemoteError: the bucket or endpoint cannot be used.
        """
        from .samples import ExportError

        listing = self.listing()
        if plan_file in listing:
            with explained(self.url):
                old = json.loads(self.fs.cat_file(self.key(plan_file)))
            if old != plan:
                diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
                raise ExportError(f"{self.url} holds another export ({', '.join(diff)} differ): use an empty --out prefix")
        elif any(not posixpath.basename(k).startswith(".") for k in listing):
            raise ExportError(f"{self.url} is not empty and holds no m5data export: use an empty --out prefix")
        return listing

    def finished(self, markers: dict, listing: dict[str, int]) -> dict:
        """The stats of each finished shard: ``markers`` maps a shard id to its marker's relative key;
        a shard is finished when its marker is there and its output has the recorded size."""
        there = {sid: rel for sid, rel in markers.items() if rel in listing}
        if not there:
            return {}
        with explained(self.url):
            texts = self.fs.cat([self.key(rel) for rel in there.values()], on_error="return")
        done = {}
        for sid, rel in there.items():
            raw = texts.get(self.key(rel))
            try:
                stats = json.loads(raw) if isinstance(raw, bytes) else None
            except ValueError:
                stats = None
            target = inside_prefix(stats.get("path")) if isinstance(stats, dict) else None
            if target is not None and listing.get(target) == stats.get("size"):
                done[sid] = stats
        return done

    def put(self, local: Path, rel: str) -> None:
        """Upload one file to ``rel``; readers see all of it or nothing."""
        with explained(self.full_url(rel)):
            if self.protocol in ATOMIC_PUT:
                self.fs.put_file(str(local), self.key(rel))
            else:
                tmp = posixpath.join(posixpath.dirname(self.key(rel)), f".tmp-{os.getpid()}-{posixpath.basename(rel)}")
                self.fs.put_file(str(local), tmp)
                self.fs.mv(tmp, self.key(rel))

    def upload_folder(self, folder: Path, last: str | None = None, skip: set[str] = frozenset()) -> int:
        """Upload every file of a local folder (sorted), ``last`` (a relative path) after all others; bytes sent."""
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        files = [f for f in files if f not in skip and f != last] + ([last] if last in files else [])
        sent = 0
        for rel in files:
            self.put(folder / rel, rel)
            sent += (folder / rel).stat().st_size
        return sent

    def fetch(self, rels: list[str], folder: Path) -> None:
        """Download small files (an M5Product shard's records) into ``folder`` under the same relative paths."""
        for rel in rels:
            key = inside_prefix(rel)
            if key is None:
                continue
            with explained(self.full_url(rel)):
                data = self.fs.cat_file(self.key(key))
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(data)


class RemoteFolder(_Location):
    """The reading side: index files, sizes and streamed bytes of an export on object storage."""

    def __init__(self, url: str, siblings=()):
        super().__init__(url)
        self._listing: dict[str, int] | None = None
        self.siblings = set(siblings)  # folders beside this one whose shards its index may name

    def __getstate__(self):
        return {**super().__getstate__(), "_listing": self._listing, "siblings": self.siblings}

    def has_sibling_file(self, name: str, rel: str) -> bool:
        """True when the folder ``name`` beside this one holds ``rel`` (an export's plan)."""
        with explained(self.url):
            return bool(self.fs.exists(self.key(f"../{name}/{rel}")))

    def read_bytes(self, rel: str) -> bytes:
        with explained(self.full_url(rel)):
            return self.fs.cat_file(self.key(self._inside(rel)))

    def exists(self) -> bool:
        """True when the prefix holds anything (a missing bucket or bad credentials raise :class:`RemoteError`)."""
        if self._listing is None:
            self._listing = self.listing()
        return bool(self._listing)

    def names(self) -> dict[str, int]:
        self.exists()
        return self._listing

    def read_text(self, rel: str) -> str:
        with explained(self.full_url(rel)):
            return self.fs.cat_file(self.key(rel)).decode("utf-8")

    def _inside(self, rel) -> str:
        if sibling_name(rel) in self.siblings:
            return rel
        key = inside_prefix(rel)
        if key is None:
            raise OutsideFolder(rel)
        return key

    def size(self, rel: str) -> int | None:
        """The size of the object ``rel`` names below the prefix (or in a sibling folder); None when it is missing."""
        key = self._inside(rel)
        if key.startswith("../"):
            try:
                with explained(self.full_url(key)):
                    return int(self.fs.size(self.key(key)))
            except RemoteError as exc:
                if isinstance(exc.__cause__, FileNotFoundError):
                    return None
                raise
        return self.names().get(key)

    def open(self, rel: str, block_size: int = 8 << 20):
        """A streaming binary reader of ``rel`` (read-ahead blocks; nothing written to disk)."""
        key = self._inside(rel)
        with explained(self.full_url(key)):
            return self.fs.open(self.key(key), "rb", block_size=block_size, cache_type="readahead")

    def sha256(self, rel: str, chunk: int = 1 << 20) -> str:
        digest = hashlib.sha256()
        with self.open(rel) as fh, explained(self.full_url(rel)):
            while block := fh.read(chunk):
                digest.update(block)
        return digest.hexdigest()

    def glob(self, pattern: str) -> list[str]:
        """Relative keys directly below the prefix matching a shell pattern, sorted."""
        import fnmatch

        return sorted(k for k in self.names() if "/" not in k and fnmatch.fnmatchcase(k, pattern))

"""A store's place on object storage (``s3://bucket/prefix``): the few requests the commit log and the
tables need, with S3's conditional writes (``If-None-Match: *``, ``If-Match: <etag>``).

Endpoint and credentials come from the standard AWS environment and profiles, which botocore reads
itself (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``); a URL carrying credentials is refused, so they are never stored with a run. Any
storage error becomes one :class:`StoreError` line naming the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from datetime import datetime

from .errors import StoreError

SCHEMES = ("s3://",)


def is_store_url(path) -> bool:
    """True for a store on object storage (``s3://bucket/prefix``); a Path never is one."""
    return isinstance(path, str) and path.startswith(SCHEMES)


class NotOnObjectStorage(StoreError, AttributeError):
    """What needs a store folder, asked of a store on object storage (one line, as every StoreError)."""


class StoreURL(str):
    """A store's URL as ``settings.store_path`` holds it (a folder store's is a Path): a path operation on it
    (``/``, ``.exists()``, ``.absolute()`` ...) is a one-line StoreError, not a TypeError. A store's ``root`` is
    a :class:`~.location.Location` on both backends."""

    def __truediv__(self, other):
        raise NotOnObjectStorage(f"the store {self} is on object storage: {other!s} needs a store folder")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotOnObjectStorage(f"the store {self} is on object storage: {name}() needs a store folder")


EXTRA_S3 = "pip install 'm5data[s3]'"  # s3fs (and the aiobotocore it brings): not in the base install


def need_s3(url: str, error=StoreError) -> None:
    """Raise ``error`` in one line naming ``url`` and the extra to install when s3fs or aiobotocore is
    missing: checked before any request is made (a missing module found inside one left coroutines
    never awaited, and a bare ``No module named 's3fs'``)."""
    import importlib

    try:
        for module in ("s3fs", "aiobotocore.session"):  # s3fs first: the extra installs it, and it brings aiobotocore
            importlib.import_module(module)
    except ImportError as exc:
        name = (getattr(exc, "name", None) or "s3fs").split(".")[0]
        raise error(f"{url}: object storage needs the s3 extra ({name} is not installed): {EXTRA_S3}") from exc


@dataclass(frozen=True)
class Listed:
    rel: str  # the key below the store's prefix
    size: int
    modified: datetime  # the server's clock: when the object was written
    etag: str = ""  # what a conditional write over this object names (If-Match)


def _precondition_failed(exc: BaseException) -> bool:
    """True when S3 refused a conditional write (the object exists, or its ETag changed)."""
    if isinstance(exc, FileExistsError):
        return True
    cause = getattr(exc, "__cause__", None)
    response = getattr(cause, "response", None) or {}
    return response.get("Error", {}).get("Code") in ("PreconditionFailed", "412")


_PART_INFO: dict[str, dict] = {}  # bucket/key of a part -> its HEAD answer (a part never changes under its name)
_PART_INFO_MAX = 200_000
_FS_CLASS = []


def _filesystem_class():
    """s3fs's filesystem, remembering what a HEAD said about each part object.

    DuckDB's fsspec bridge asks for a file's size each time it binds and scans it (3-4 HEADs per part
    and query); a part is written once under a name that is never reused, so its first answer holds.
    """
    if not _FS_CLASS:
        import s3fs

        class PartsS3FileSystem(s3fs.S3FileSystem):
            async def _info(self, path, *args, **kwargs):
                key = self._strip_protocol(path)
                if "/part-" not in key:
                    return await super()._info(path, *args, **kwargs)
                if key not in _PART_INFO:
                    if len(_PART_INFO) >= _PART_INFO_MAX:
                        _PART_INFO.clear()
                    _PART_INFO[key] = await super()._info(path, *args, **kwargs)
                return dict(_PART_INFO[key])

        _FS_CLASS.append(PartsS3FileSystem)
    return _FS_CLASS[0]


def aws_environment() -> tuple:
    """The ``AWS_*`` variables of the environment, from which botocore takes endpoint, credentials and
    profile: the key of what is made from them once per process (readdb.py's S3 read databases)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


_LOADERS: dict = {}  # botocore's data loaders of this process, by AWS_DATA_PATH: each keeps the models it parsed


def aws_session():
    """A new aiobotocore session (it reads the AWS environment as it is now: credentials, endpoint,
    profile) sharing this process's botocore data loader. A session with a loader of its own parses
    botocore's endpoint rules and S3 model again: ~140 ms of CPU each store opened on S3, against ~10 ms
    with the shared one (measured creating clients, 2026-11-28)."""
    from aiobotocore.session import AioSession
    from botocore.loaders import create_loader

    session = AioSession()
    path = session.get_config_variable("data_path")
    if path not in _LOADERS:
        _LOADERS[path] = create_loader(path)
    session.register_component("data_loader", _LOADERS[path])
    return session


class ObjectStore:
    """The bucket and prefix of a store; its s3fs filesystem is made per process (not fork-safe)."""

    def __init__(self, url: str):
        from .redact import refuse_credentials

        refuse_credentials(url, "store URL", StoreError)  # s3fs ignores them; the URL is stored with every run
        need_s3(url)
        self.url = url.rstrip("/")
        self.bucket, _, self.prefix = self.url.split("://", 1)[1].partition("/")
        if not self.bucket:
            raise StoreError(f"store URL {url}: no bucket (use s3://bucket/prefix)")
        self._fs = None
        self._pid = None

    def __getstate__(self):
        return {**self.__dict__, "_fs": None, "_pid": None}

    @property
    def fs(self):
        if self._fs is None or self._pid != os.getpid():
            # a fresh instance: fsspec's cache is keyed by arguments, not by the AWS environment
            self._fs = _filesystem_class()(skip_instance_cache=True, use_listings_cache=False, session=aws_session())
            self._pid = os.getpid()
        return self._fs

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def path(self, rel: str) -> str:
        """``bucket/prefix/rel``: the path s3fs takes."""
        return f"{self.bucket}/{self.key(rel)}"

    def uri(self, rel: str) -> str:
        return f"s3://{self.path(rel)}"

    @contextlib.contextmanager
    def explained(self, rel: str = ""):
        """Any storage error inside becomes one StoreError naming the object's URL (and the endpoint)."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            where = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(f"{self.uri(rel) if rel else self.url}: {type(exc).__name__}: {text} "
                             f"(endpoint {where})") from exc

    def _sync(self, coro):
        from fsspec.asyn import sync

        return sync(self.fs.loop, lambda: coro)

    async def _get(self, rel: str, limit: int | None = None) -> tuple[bytes, str] | None:
        ranged = {} if limit is None else {"Range": f"bytes=0-{limit}"}
        try:
            resp = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key(rel), **ranged)
        except FileNotFoundError:
            return None
        except Exception as exc:
            if ranged and "InvalidRange" in str(exc):  # an empty object has no byte 0
                return await self._get(rel)
            raise
        async with resp["Body"] as body:
            return await body.read(), resp["ETag"]

    def get(self, rel: str, limit: int | None = None) -> tuple[bytes, str] | None:
        """The object's bytes and ETag in one request; None when it does not exist. With ``limit``, at
        most ``limit + 1`` bytes are read (more than ``limit``: the object is larger)."""
        with self.explained(rel):
            return self._sync(self._get(rel, limit))

    def get_many(self, rels: list[str]) -> dict[str, bytes]:
        """The bytes of several objects, fetched concurrently (one GET each); an absent one is an error."""
        found = self.get_found(rels)
        if missing := [r for r in rels if r not in found]:
            raise StoreError(f"{self.uri(missing[0])}: the object is gone")
        return found

    def get_found(self, rels: list[str]) -> dict[str, bytes]:
        """The bytes of those of ``rels`` that exist, fetched concurrently (one GET each)."""
        async def fetch():
            return await asyncio.gather(*(self._get(r) for r in rels))

        if not rels:
            return {}
        with self.explained(rels[0]):
            found = self._sync(fetch())
        return {r: f[0] for r, f in zip(rels, found) if f is not None}

    def exists(self, rel: str) -> bool:
        """One HEAD (s3fs's ``info`` would LIST the prefix too when the object is missing)."""
        with self.explained(rel):
            try:
                self._sync(self.fs._call_s3("head_object", Bucket=self.bucket, Key=self.key(rel)))
            except FileNotFoundError:
                return False
        return True

    def put(self, rel: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> str | None:
        """Write an object; returns its ETag, or None when the condition failed (it exists / it changed)."""
        cond = {"IfNoneMatch": "*"} if if_absent else {"IfMatch": if_match} if if_match else {}
        with self.explained(rel):
            try:
                resp = self._sync(self.fs._call_s3("put_object", Bucket=self.bucket, Key=self.key(rel), Body=data,
                                                   **cond))
            except Exception as exc:
                if cond and _precondition_failed(exc):
                    return None
                raise
        return resp.get("ETag") or "?"

    def listing(self, rel_prefix: str, start_after: str | None = None) -> list[Listed]:
        """Every object whose key starts with ``rel_prefix`` (after ``start_after``), in key order."""
        async def pages():
            out, token = [], None
            while True:
                args = {"Bucket": self.bucket, "Prefix": self.key(rel_prefix)}
                if token:
                    args["ContinuationToken"] = token
                elif start_after:
                    args["StartAfter"] = self.key(start_after)
                resp = await self.fs._call_s3("list_objects_v2", **args)
                out.extend(resp.get("Contents", []))
                token = resp.get("NextContinuationToken")
                if not resp.get("IsTruncated") or not token:
                    return out

        with self.explained(rel_prefix):
            found = self._sync(pages())
        cut = len(self.key(""))
        return [Listed(o["Key"][cut:], int(o["Size"]), o["LastModified"], o.get("ETag", "")) for o in found]

    def delete(self, rels: list[str]) -> None:
        if rels:
            with self.explained(rels[0]):
                self.fs.rm([self.path(r) for r in rels])

    def open_write(self, rel: str):
        """A binary writer; the object appears whole when it is closed (never half-written)."""
        with self.explained(rel):
            return self.fs.open(self.path(rel), "wb")

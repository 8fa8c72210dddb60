"""Content-addressed blob storage: ``blobs/<sha256[:2]>/<sha256>.<ext>``, written atomically.

A blob's name is its content's sha256 and an extension chosen from its sniffed type, never a name
taken from a URL. Writing the same content twice stores it once.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from .parts import fsync_dir

_EXT = re.compile(r"^[a-z0-9]{1,8}$")


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    path: str  # relative to the store root
    bytes: int


class BlobWriter:
    """Streams bytes into a temp file while hashing; ``commit`` moves it to its content address."""

    def __init__(self, store: BlobStore, ext: str):
        self.store = store
        self.ext = _check_ext(ext)
        self.tmp = store.tmp_dir / f"{uuid.uuid4().hex}.part"
        self._fh = open(self.tmp, "wb")
        self._hash = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    def commit(self) -> BlobRef:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return self.store._publish(self.tmp, self._hash.hexdigest(), self.ext, self.bytes)

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._fh.closed:
            self.abort()


def _check_ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not _EXT.match(ext):
        raise ValueError(f"bad blob extension {ext!r}")
    return ext


class BlobStore:
    def __init__(self, store_root: Path):
        self.store_root = store_root
        self.root = store_root / "blobs"
        self.tmp_dir = self.root / ".tmp"

    def relpath(self, sha256: str, ext: str) -> str:
        return f"blobs/{sha256[:2]}/{sha256}.{_check_ext(ext)}"

    def path(self, rel: str) -> Path:
        return self.store_root / rel

    def writer(self, ext: str) -> BlobWriter:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, ext)

    def put_bytes(self, data: bytes, ext: str) -> BlobRef:
        with self.writer(ext) as w:
            w.write(data)
            return w.commit()

    def put_file(self, src: Path, ext: str) -> BlobRef:
        with self.writer(ext) as w, open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                w.write(chunk)
            return w.commit()

    def _publish(self, tmp: Path, sha256: str, ext: str, size: int) -> BlobRef:
        rel = self.relpath(sha256, ext)
        final = self.store_root / rel
        if final.exists():
            tmp.unlink(missing_ok=True)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        return BlobRef(sha256, rel, size)

    def verify(self, rel: str) -> bool:
        """True when the blob's content still hashes to the sha256 in its name."""
        path = self.store_root / rel
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return path.name.split(".")[0] == digest.hexdigest()

    def iter_paths(self):
        """Every stored blob's path relative to the store root."""
        if not self.root.exists():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.name.startswith(".") or not sub.is_dir():
                continue
            for path in sorted(sub.iterdir()):
                yield f"blobs/{sub.name}/{path.name}"

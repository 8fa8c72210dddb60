"""Content-addressed blob storage: ``blobs/<sha256[:2]>/<sha256>.<ext>``, written atomically.

A blob's name is its content's sha256 and an extension chosen from its sniffed type, never a name
taken from a URL. Writing the same content twice stores it once.

Durability: by default each blob is fsynced before and after its rename. A writer of many small
blobs (the download stage) passes ``sync=False`` and calls :meth:`BlobStore.sync` once per batch,
before it records the batch anywhere: one filesystem sync instead of two fsyncs a blob. A rename
always replaces what is at the content address, so a copy left torn by a power cut before its
batch was synced is rewritten by the next write of that content.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .parts import fsync_dir
from .temps import temp_name

_EXT = re.compile(r"^[a-z0-9]{1,8}$")


def _find_syncfs():
    """libc's ``syncfs(fd)`` (Linux), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _find_syncfs()


# the folders of the store that hold blobs (downloaded media) and derived files (frames, MFCC, ...)
BLOB_AREAS = ("blobs", "derived")


class BlobPathError(ValueError):
    """A blob path from a table that does not name a file inside the store's blob or derived area."""


def resolve_blob(store_root: Path, rel: str | os.PathLike) -> Path:
    """The absolute path of a blob path read from a table (``blobs/ab/abcd.jpg``, ``derived/...``).

    Table rows are data, and a store may come from someone else: a path that is absolute, climbs
    out with ``..`` or leads out through a symlink is refused with :class:`BlobPathError`, so no
    reader of a blob ever opens a file outside ``<store>/blobs`` or ``<store>/derived``.

    A stage resolves one path per blob (a million at 1M products), so the store root and each folder
    a path names are resolved once per process (``_FOLDERS``) and a path costs one ``lstat`` of its
    own name and one of its folder (a folder replaced by a symlink since is resolved and checked
    again); a symlink at the name is resolved in full and checked as before. ``Path.resolve`` of
    every path cost ~190 us (an ``lstat`` per component), 38 s of a 100k pools rebuild. As before,
    a path is checked when it is resolved, not when it is opened.
    """
    text = os.fspath(rel)
    if not text or "\x00" in text or os.path.isabs(text):
        raise BlobPathError(f"blob path {text!r} is not a path inside the store")
    folder, name = os.path.split(text)
    if not folder or name in ("", ".", ".."):  # "blobs", "x/..", "blobs/ab/": the whole check
        return _resolve_checked(store_root, text)
    key = (os.path.abspath(store_root), folder)
    parent = _FOLDERS.get(key)
    if parent is None:
        parent = _resolve_checked(store_root, folder, folder_of=text)
        if len(_FOLDERS) >= _FOLDERS_MAX:
            _FOLDERS.clear()
        _FOLDERS[key] = parent
    else:  # checked before: still the folder it was, not since replaced by a symlink
        try:
            still = stat.S_ISDIR(os.lstat(parent).st_mode)
        except OSError:
            still = False
        if not still:
            parent = _FOLDERS[key] = _resolve_checked(store_root, folder, folder_of=text)
    path = parent / name
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:  # not there (yet): the folder was checked, the name is one plain component
        return path
    return _resolve_checked(store_root, text) if link else path


# (store root as given, a folder of blob paths) -> that folder resolved and checked: paths sharing
# a folder (blobs/ab/ of 256, a product's frames) resolve it once; bounded so a long run stays small
_FOLDERS: dict[tuple[str, str], Path] = {}
_FOLDERS_MAX = 65_536


def _resolve_checked(store_root: Path, text: str, folder_of: str | None = None) -> Path:
    """``text`` resolved in full (every symlink followed) and checked to be inside a blob area.

    ``folder_of``: ``text`` is the folder of that blob path, which may be an area itself
    (``blobs/x.jpg``); the error then names the blob path.
    """
    root = Path(store_root).resolve()
    path = (root / text).resolve()
    areas = [root / area for area in BLOB_AREAS]
    inside = (any(path.is_relative_to(a) for a in areas) if folder_of is not None
              else any(path.is_relative_to(a) and path != a for a in areas))
    if not inside:
        raise BlobPathError(f"blob path {folder_of or text!r} leads outside the store's {' and '.join(BLOB_AREAS)} folders")
    return path


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    path: str  # relative to the store root
    bytes: int


class BlobWriter:
    """Streams bytes into a temp file while hashing; ``commit`` moves it to its content address."""

    def __init__(self, store: BlobStore, ext: str, sync: bool = True):
        self.store = store
        self.ext = check_ext(ext)
        self.sync = sync
        self.tmp = store.tmp_dir / temp_name(".part", prefix="")  # <pid>-<random>.part: swept once the pid is dead
        try:
            self._fh = open(self.tmp, "wb")
        except FileNotFoundError:  # the first blob of this store (or its temp folder was removed since)
            store.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.tmp, "wb")
        self._hash = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    def commit(self) -> BlobRef:
        """Move the bytes to their content address; a commit that failed (a full disk) may be tried again."""
        if not self._fh.closed:
            self._fh.flush()
            if self.sync:
                os.fsync(self._fh.fileno())
            self._fh.close()
        return self.store._publish(self.tmp, self._hash.hexdigest(), self.ext, self.bytes, self.sync)

    @contextlib.contextmanager
    def reader(self):
        """The bytes written so far, as a local binary file (read before ``commit``: an image's size)."""
        self._fh.flush()
        with open(self.tmp, "rb") as fh:
            yield fh

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._fh.closed:
            self.abort()


def check_ext(ext: str) -> str:
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
        return f"blobs/{sha256[:2]}/{sha256}.{check_ext(ext)}"

    def path(self, rel: str) -> Path:
        return self.store_root / rel

    def open(self, rel: str):
        """A binary reader of the blob (the API a store on object storage has too)."""
        return open(self.store_root / rel, "rb")

    @contextlib.contextmanager
    def local(self, rel: str):
        """A local file of the blob for a tool that needs a path (ffmpeg): the blob's own file here;
        on object storage a temp copy, removed at the end (``ObjectBlobs.local``)."""
        yield self.store_root / rel

    def writer(self, ext: str, *, sync: bool = True) -> BlobWriter:
        """A streaming writer; ``sync=False`` leaves durability to a later :meth:`sync`."""
        return BlobWriter(self, ext, sync)

    def temp_path(self, suffix: str) -> Path:
        """A temp file in ``blobs/.tmp`` owned by this process (for a tool that writes a file itself)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        return self.tmp_dir / temp_name(suffix, prefix="")

    def put_bytes(self, data: bytes, ext: str, *, sync: bool = True) -> BlobRef:
        with self.writer(ext, sync=sync) as w:
            w.write(data)
            return w.commit()

    def sync(self) -> None:
        """Make every blob written so far durable (after ``sync=False`` writes): one ``syncfs`` of
        the blob area's filesystem on Linux, ``sync`` elsewhere."""
        if not self.root.exists():
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS is None or _SYNCFS(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def put_file(self, src: Path, ext: str) -> BlobRef:
        with self.writer(ext) as w, open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                w.write(chunk)
            return w.commit()

    def _publish(self, tmp: Path, sha256: str, ext: str, size: int, sync: bool = True) -> BlobRef:
        rel = self.relpath(sha256, ext)
        final = self.store_root / rel
        # replace even when the address is taken: same content, and a torn unsynced copy is repaired;
        # the folder is made when missing (a mkdir per blob cost as much as the rename)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        if sync:
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

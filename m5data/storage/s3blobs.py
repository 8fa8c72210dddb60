"""Content-addressed blobs on object storage: ``<prefix>/blobs/<sha256[:2]>/<sha256>.<ext>``.

The same addresses as a folder store's :class:`~m5data.storage.blobs.BlobStore`, written once: the
upload is conditional (``If-None-Match: *``), so a blob that is already there is never rewritten (its
bytes are the same by their name) and two writers of the same content both succeed. An object is
visible only once its upload completes, so a reader never sees half a blob and a killed writer
leaves none (an unfinished multipart upload is not an object). An acknowledged PUT is durable:
``sync`` has nothing to do. A writer streams into a local spooled file while hashing (the address
is known only at the end), then uploads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path

from .blobs import BlobRef, BlobWriter, check_ext
from .objects import ObjectStore
from .temps import scratch_dir

MIRROR_WINDOW = 32  # objects mirror() fetches at once
SPOOL_BYTES = 8 << 20  # a blob up to this size is spooled in memory, a larger one in a local temp file


class ObjectBlobWriter(BlobWriter):
    """A :class:`BlobWriter` whose bytes go to a spooled temp file (no store folder); ``commit`` uploads
    them to their address."""

    def __init__(self, blobs: ObjectBlobs, ext: str):  # not super(): its temp file lives in a store folder
        self.blobs = blobs
        self.ext = check_ext(ext)
        self._fh = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self._hash = hashlib.sha256()
        self.bytes = 0

    def commit(self) -> BlobRef:
        """Upload the bytes to their address; a commit that failed (the endpoint down) may be tried
        again (the spooled bytes are kept until it succeeds or the writer is aborted)."""
        self._fh.seek(0)
        ref = self.blobs._publish(self._fh, self._hash.hexdigest(), self.ext, self.bytes)
        self._fh.close()
        return ref

    @contextlib.contextmanager
    def reader(self):
        """The bytes written so far, as a local binary file (read before ``commit``: an image's size)."""
        self._fh.seek(0)
        try:
            yield self._fh
        finally:
            self._fh.seek(0, 2)

    def abort(self) -> None:
        self._fh.close()


class ObjectBlobs:
    """The blob area of a store on object storage (the API of ``BlobStore`` that needs no local path)."""

    def __init__(self, objects: ObjectStore):
        self.objects = objects

    def relpath(self, sha256: str, ext: str) -> str:
        return f"blobs/{sha256[:2]}/{sha256}.{check_ext(ext)}"

    def writer(self, ext: str, *, sync: bool = True) -> ObjectBlobWriter:
        return ObjectBlobWriter(self, ext)

    def put_bytes(self, data: bytes, ext: str, *, sync: bool = True) -> BlobRef:
        sha = hashlib.sha256(data).hexdigest()
        rel = self.relpath(sha, ext)
        self.objects.put(rel, data, if_absent=True)  # refused: the same bytes are there already
        return BlobRef(sha, rel, len(data))

    def put_file(self, src: Path, ext: str) -> BlobRef:
        with self.writer(ext) as w, open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                w.write(chunk)
            return w.commit()

    def sync(self) -> None:
        """Nothing to do: an acknowledged PUT is durable."""

    def _publish(self, fh, sha256: str, ext: str, size: int) -> BlobRef:
        """Upload the blob to its address unless it is there. Up to :data:`SPOOL_BYTES`: one PUT with
        ``If-None-Match: *`` (refused when the same bytes are there), no HEAD or LIST first. A larger
        one: a HEAD first (it saves uploading a video twice), then s3fs's upload (multipart past its block
        size); two writers of the same content race harmlessly, the bytes being the same by their name."""
        rel = self.relpath(sha256, ext)
        if size <= SPOOL_BYTES:
            self.objects.put(rel, fh.read(), if_absent=True)
        elif not self.exists(rel):
            with self.objects.explained(rel):
                out = self.objects.fs.open(self.objects.path(rel), "wb")
                try:
                    shutil.copyfileobj(fh, out, 1 << 20)
                except BaseException:
                    # fsspec's close would upload what it has: never part of a body at its address
                    out.discard()
                    out.closed = True
                    raise
                out.close()
        return BlobRef(sha256, rel, size)

    def exists(self, rel: str) -> bool:
        return self.objects.exists(rel)

    def open(self, rel: str):
        """A streaming binary reader of the blob (read-ahead; nothing written to disk)."""
        with self.objects.explained(rel):
            return self.objects.fs.open(self.objects.path(rel), "rb", cache_type="readahead")

    def fetch(self, rel: str, folder: Path) -> Path:
        """Copy the blob into ``folder`` (a tool like ffmpeg needs a local file); the caller removes it."""
        dest = Path(folder) / rel.rsplit("/", 1)[1]
        with self.open(rel) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return dest

    @contextlib.contextmanager
    def local(self, rel: str):
        """A temp copy of the blob in a folder of its own under TMPDIR (ffmpeg needs a path), removed
        when the block ends."""
        folder = scratch_dir("blob")
        try:
            yield self.fetch(rel, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def mirror(self, rels, folder: Path) -> None:
        """Copy the blobs and derived files ``rels`` (a frames folder: every file in it) into ``folder``
        under the same relative paths, for code that reads a store folder. A path that leads out of
        the blob areas, or an object that is missing, is left out: the reader reports it as on a folder."""
        from .blobs import BlobPathError, resolve_blob

        wanted = []
        for rel in dict.fromkeys(r for r in rels if r):
            try:
                wanted.append((rel, resolve_blob(folder, rel)))
            except BlobPathError:
                continue
        for start in range(0, len(wanted), MIRROR_WINDOW):  # GETs in flight together; bytes held at once
            window = wanted[start:start + MIRROR_WINDOW]
            found = self.objects.get_found([rel for rel, _ in window])
            for rel, dest in window:
                members = {rel: found[rel]} if rel in found else self.objects.get_many(
                    [o.rel for o in self.objects.listing(rel.rstrip("/") + "/")])  # a folder (frames)
                for key, data in members.items():
                    path = dest / key[len(rel.rstrip("/")) + 1:] if key != rel else dest
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)

    def verify(self, rel: str) -> bool:
        """True when the blob's content still hashes to the sha256 in its name."""
        digest = hashlib.sha256()
        with self.open(rel) as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        return rel.rsplit("/", 1)[1].split(".")[0] == digest.hexdigest()

    def iter_paths(self):
        """Every stored blob's key relative to the store's prefix (one listing)."""
        for obj in self.objects.listing("blobs/"):
            yield obj.rel

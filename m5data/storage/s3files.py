"""The files of a store on object storage beside its tables: small files read and written whole (fenced by the
run's stage leases: ``write_bytes``), blobs read and put, and the local folders code opens by path (scratch,
copies, kept and staged folders). A mixin of :class:`~m5data.storage.s3store.S3Store` (its ``objects``,
``blobs``, ``fences``, ``_seen``, ``_work`` and ``_check_fences``)."""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path

from .blobs import BlobPathError, resolve_blob
from .s3fence import etag_now, put_unchanged
from .s3folders import kept_folder, local_files, staged_folder
from .temps import scratch_dir


class ObjectFiles:
    """:class:`~m5data.storage.s3store.S3Store`'s files (see the module)."""

    def read_bytes(self, rel: str) -> bytes | None:
        found = self.objects.get(rel)
        self._seen[rel] = (self._holders(), found[1] if found else None)
        return found[0] if found else None

    def _holders(self) -> tuple:
        return tuple(f.holder for f in self.fences)

    def read_mapped(self, rel: str) -> bytes | None:
        return self.read_bytes(rel)  # an object is read whole

    def write_bytes(self, rel: str, data: bytes) -> None:
        """One PUT: the object appears whole. Fenced as a commit is: a run whose stage lease is no longer
        its own writes no file either (align's token cache after its lease was taken over). A file this
        run read (or wrote) is written only if it is still what it read (``If-Match`` its ETag, or
        ``If-None-Match`` when it was absent): a run paused between its fence's check and its PUT, whose
        lease another run took over and used to write the file, fails its PUT (LeaseLost) instead of
        putting back its older file. A file it did not read: its ETag now (one HEAD), the fence checked
        again, then the PUT conditional on that ETag."""
        self._check_fences()
        holders, seen = self._seen.get(rel, (None, None))
        if self.fences and holders != self._holders():  # not read under these leases: as it is now, then checked
            seen = etag_now(self.objects, rel)  # a takeover after that check changes it: the PUT is refused
            self._check_fences()
        etag = put_unchanged(self.objects, rel, data, seen) if self.fences else self.objects.put(rel, data)
        if etag == "?":  # no ETag in the answer: nothing to condition the next write on
            self._seen.pop(rel, None)
        else:
            self._seen[rel] = (self._holders(), etag)

    def files(self, prefix: str) -> list[str]:
        return [o.rel for o in self.objects.listing(prefix)]

    def local_root(self) -> None:
        """None: no folder of the store's own (``local_files`` copies what code opens by path)."""
        return None

    def read_blob(self, rel: str) -> bytes | None:
        """The object ``rel``, through a local copy (``local_files`` leaves out a path leading out)."""
        with self.local_files([rel]) as root:
            try:
                path = resolve_blob(root, rel)
            except BlobPathError:
                return None
            return path.read_bytes() if path.is_file() else None

    def put_blob(self, rel: str, data: bytes) -> bool:
        """One PUT, put-if-absent (not fenced: a blob's content is its name's)."""
        return self.objects.put(rel, data, if_absent=True) is not None

    def work_dir(self, *parts: str) -> Path:
        if self._work is None:
            self._work = scratch_dir("work")
            weakref.finalize(self, shutil.rmtree, self._work, True)
        path = self._work.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def local_copy(self, rels=()) -> Path:
        """A local folder (under TMPDIR, removed with the store object) holding copies of ``rels``."""
        root = self.work_dir("mirror")
        self.blobs.mirror([r for r in rels if r and not (root / r).exists()], root)
        return root

    def where(self, rel: str) -> str:
        return self.objects.uri(rel)

    def kept(self, rel: str, lazy: tuple[str, ...] = ()):
        """A local copy of the objects below ``rel`` (``lazy`` patterns: once fetched), written back
        when the block ends well (``kept_folder``)."""
        return kept_folder(self.objects, rel, lazy, fence=self._check_fences)

    def local_files(self, rels=()):
        """A temp folder holding copies of the blobs and derived files ``rels``, removed at the end."""
        return local_files(self.blobs, rels)

    def staged(self, rel: str, partial: bool = False):
        """A local folder for files a stage writes below ``rel``; uploaded as objects when the block
        ends well (``partial``: also when it fails)."""
        return staged_folder(self.objects, rel, partial, fence=None if partial else self._check_fences)

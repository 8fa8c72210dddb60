"""Extract on a store on object storage: ffmpeg, Pillow and numpy need local files, so the jobs work in a
local mirror of the store's layout (a temp folder under ``TMPDIR``).

Before a job is handed to a worker, its source blob is fetched to ``<mirror>/blobs/...`` (the same
relative path); when its result comes back, every derived file the result names (a frames folder with
its ``frames.json``, an mp3 blob, an MFCC ``.npy``, a normalised image) is uploaded to the same key of
the store, put-if-absent (content-addressed: a file already there is the same), and both the source
copy and the derived files are removed (an error text that names the temp copy names the store's object
instead: ``s3://bucket/prefix/blobs/...``, as a folder store's names its file). So the mirror holds only the jobs in flight (the pool's
window), and the rows are written (by the stage, after ``publish``) only once their files are objects.

On a folder store :class:`Mirror` does nothing: the jobs work in the store itself, as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..storage.blobs import BlobPathError, resolve_blob
from ..storage.errors import StoreError
from ..storage.temps import scratch_dir

__all__ = ["Mirror"]


def _source_blob(kind: str, item) -> str | None:
    """The blob a job reads (text jobs read none)."""
    if kind == "video":
        return item["row"].get("blob")
    if kind in ("audio", "image"):
        return item.get("blob")
    return None


class Mirror:
    """The local root the extract jobs see (``root``), and the moves between it and the store."""

    def __init__(self, store):
        self.store = store
        folder = store.local_root()  # None: no folder of the store's own (object storage)
        self.remote = folder is None
        self.root = str(scratch_dir("extract")) if self.remote else str(folder)

    def stage_in(self, kind: str, item):
        """Fetch the item's source blob into the mirror (a missing or outside one is the job's to report)."""
        rel = _source_blob(kind, item) if self.remote else None
        if rel:
            try:
                dest = resolve_blob(Path(self.root), rel)
            except BlobPathError:
                return item
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.store.blobs.open(rel) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (FileNotFoundError, StoreError):
                dest.unlink(missing_ok=True)
        return item

    def publish(self, kind: str, item, result) -> None:
        """Upload the derived files ``result`` names (put-if-absent); remove them and the source copy."""
        if not self.remote:
            return
        root = Path(self.root)
        for row in result.media:  # an error names the store's object, not this run's temp copy of it
            if isinstance(row.get("error"), str) and self.root in row["error"]:
                row["error"] = row["error"].replace(self.root, str(self.store.root).rstrip("/"))
            if row.get("role") != "derived" or row.get("status") != "ok" or not row.get("blob"):
                continue
            local = root / row["blob"]
            files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
            for path in files:
                if path.is_file():
                    self.store.put_blob(path.relative_to(root).as_posix(), path.read_bytes())
            shutil.rmtree(local, ignore_errors=True) if local.is_dir() else local.unlink(missing_ok=True)
        if rel := _source_blob(kind, item):
            try:
                resolve_blob(root, rel).unlink(missing_ok=True)
            except BlobPathError:
                pass

    def close(self) -> None:
        if self.remote:
            shutil.rmtree(self.root, ignore_errors=True)

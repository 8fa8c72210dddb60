"""A store's location: :class:`Location`, the one type of every store's ``root`` (a folder's absolute path
or a URL, as text), and what a location string (``settings.store_path``, a root passed to a worker
process as text) answers before or without a store object: the folder it names, and its blobs as local
files.

What a store object answers itself (``local_root``, ``local_files``) these answer from the location
alone: code that has no store open (a plan checked before any stage, a shard writer's process) asks
here, never which backend the location is.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from .objects import is_store_url

__all__ = ["Location", "blob_folder", "local_folder"]


class Location(str):
    """Where a store is, as text: its folder's absolute path, or its URL (``s3://bucket/prefix``). The
    type of ``root`` on every backend; code that needs the store's folder asks the store for it
    (``local_root()``: the folder, or None on object storage), and messages print the location as it is.
    It has no Path behaviour: ``root / "x"`` is a TypeError on every backend.
    """

    __slots__ = ()


def local_folder(location) -> Path | None:
    """The folder a store location names; None for a store on object storage (``s3://bucket/prefix``)."""
    return None if is_store_url(location) else Path(location)


@contextlib.contextmanager
def blob_folder(location, rels) -> Iterator[Path]:
    """A local folder laid out as the store at ``location`` holding its blobs and derived files ``rels``:
    the store's own folder, or, for a store on object storage, a temp folder under TMPDIR holding
    copies of just those (a path leading out, or a missing object, left out), removed at the end."""
    folder = local_folder(location)
    if folder is not None:
        yield folder
        return
    from .objects import ObjectStore
    from .s3blobs import ObjectBlobs
    from .temps import scratch_dir

    copy = scratch_dir("shard")
    try:
        ObjectBlobs(ObjectStore(location)).mirror(rels, copy)
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)

"""The store: one folder of Parquet tables, content-addressed blobs and a DuckDB catalog of views.

Layout::

    <root>/store.json                  format marker (created by ``m5data init``)
    <root>/tables/<table>/part-*.parquet
    <root>/tables/<table>/_compacted   names of the parts the last compaction produced
    <root>/blobs/ab/<sha256>.<ext>
    <root>/derived/...                 frames, MFCC arrays, normalised images
    <root>/groups/<id>/                a rewrite of several tables as one, committed, being applied (groups.py)
    <root>/catalog.duckdb              views over the Parquet parts (derivable: deleting it loses nothing)
    <root>/catalog.views.json          the views that file holds, with its identity (catalog.py; derivable)

Writes append parts; reads see the latest row per key (see ``schema.py``). Every row carries the
sequence number of the write that made it (``_seq``); compaction keeps it, so what a table reads
never depends on how its parts were compacted. Appends need no lock; ``compact`` and ``replace``
hold the table's lock, stages hold their stage lock (``locks.py``); readers never lock.

This module opens and lays out a store and holds its locks; the rest of :class:`Store` comes from
one module per concern: ``writing.py`` (appends), ``compaction.py`` (whole-table rewrites),
``views.py`` (the views' SQL), ``reading.py`` (connections, reads, read errors: shared with the store on
object storage), ``folderreads.py`` (what a folder answers to those reads), ``catalog.py`` and
``changes.py`` (what changed since a stage last completed: ``watermark``, ``changed``), ``groupreads.py``
(reads of a few groups from the parts their key sidecars name).
"""

from __future__ import annotations

import contextlib
import json
import mmap
from pathlib import Path

from . import locks
from .blobs import BlobPathError, BlobStore, resolve_blob
from .catalog import CATALOG, Catalog
from .changes import Changes, part_seq
from .compaction import COMPACTED, Compaction
from .errors import CorruptPart, StoreBusy, StoreError
from .files import KeptFolder, TextFiles, staged_files, write_atomic
from .folderreads import FolderReads
from .groupreads import GroupReads
from .groups import GroupRewrites
from .location import Location
from .open import init_store, open_from_settings, open_store
from .parts import PART_GLOB
from .protocol import TableStore
from .reading import Reading, part_problem
from .schema import MARKER, STORE_FORMAT, TABLES, table_spec
from .temps import sweep_temps
from .views import TableViews
from .writing import Writing

__all__ = ["CATALOG", "COMPACTED", "MARKER", "STORE_FORMAT", "CorruptPart", "Store", "StoreBusy", "StoreError",
           "part_problem"]


class Store(Writing, Compaction, GroupRewrites, TableViews, FolderReads, Reading, Catalog, Changes, GroupReads, TextFiles):
    """A store in a local folder. Open one with ``open_store(path)`` (``Store.open``, the same); create
    one with ``init_store(path)`` (``Store.init``)."""

    def __init__(self, root: Path, compression: str = "zstd", part_rows: int = 1_000_000):
        self.folder = Path(root).absolute()  # the store's own folder (local_root)
        self.root = Location(self.folder)  # its location as text, as on every backend
        self.compression = compression
        self.part_rows = part_rows
        self.blobs = BlobStore(self.folder)

    # ------------------------------------------------------------------ open / init
    # Store.open / init / from_settings are the callers' names for the factory (open.py), which picks the
    # backend by the location; the folder's own opening is _open_here / _init_here.
    @classmethod
    def init(cls, root: str | Path, **kwargs) -> TableStore:
        return init_store(root, **kwargs)

    @classmethod
    def open(cls, root: str | Path, create: bool = False, **kwargs) -> TableStore:
        return open_store(root, create=create, **kwargs)

    @classmethod
    def from_settings(cls, settings, create: bool = False) -> TableStore:
        return open_from_settings(settings, create=create)

    @classmethod
    def _init_here(cls, root: str | Path, **kwargs) -> Store:
        store = cls(Path(root), **kwargs)
        if store.folder.exists() and not store.folder.is_dir():
            raise StoreError(f"cannot create a store at {store.folder}: a file is in the way")
        for sub in ["tables", "blobs", "derived"]:
            (store.folder / sub).mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            store.table_dir(name).mkdir(exist_ok=True)
        marker = store.folder / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"format": STORE_FORMAT, "tables": {
                n: t.version for n, t in TABLES.items()}}, indent=2) + "\n")
        store.refresh_catalog()
        return store

    @classmethod
    def _open_here(cls, root: str | Path, create: bool = False, **kwargs) -> Store:
        store = cls(Path(root), **kwargs)
        marker = store.folder / MARKER
        if not marker.is_file():
            if create:
                return cls._init_here(root, **kwargs)
            raise StoreError(f"no m5data store at {store.folder} (create one with `m5data init`)")
        try:
            info = json.loads(marker.read_text())
            fmt = int(info["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"corrupt store marker {marker}: {exc}") from None
        if fmt > STORE_FORMAT:
            raise StoreError(f"store {store.folder} has format {fmt}; this m5data reads up to {STORE_FORMAT}")
        for name in TABLES:
            store.table_dir(name).mkdir(parents=True, exist_ok=True)
        if store.unfinished_groups():  # a group rewrite whose writer was killed half way (groups.py)
            with contextlib.suppress(OSError):  # a read-only store is read as it is; doctor reports it
                store.finish_groups()
        return store

    # ------------------------------------------------------------------ layout
    def table_dir(self, name: str) -> Path:
        table_spec(name)
        return self.folder / "tables" / name

    def parts(self, name: str) -> list[Path]:
        return sorted(self.table_dir(name).glob(PART_GLOB))

    def parts_since(self, name: str, since: int) -> list[Path]:
        """The live parts written after the watermark ``since``: by the ``_seq`` in their names."""
        return [p for p in self.parts(name) if part_seq(p) > since]

    def local_parts(self, name: str) -> list[Path]:
        """The live parts: files of this folder."""
        return self.parts(name)

    def parts_after_write(self, name: str) -> int:
        """How many parts table ``name`` has, as this process's last write to it left them (a folder
        store lists them; on object storage the log's state as that commit left it: no request)."""
        return len(self.parts(name))

    def derived_dir(self, *parts: str) -> Path:
        path = self.folder.joinpath("derived", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read_bytes(self, rel: str) -> bytes | None:
        path = self.folder / rel
        return path.read_bytes() if path.is_file() else None

    def read_mapped(self, rel: str) -> mmap.mmap | bytes | None:
        """A file of the store as :meth:`read_bytes` gives it, here a read-only memory map of it: a buffer
        ``np.frombuffer`` and ``zipfile`` read in place (dedup's kept inputs, ~40 MB at 100k products:
        0.03-0.07 CPU s of copying and page faults saved each run). A write replaces the file by a
        rename, so the map keeps the bytes it was made of."""
        path = self.folder / rel
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            if not path.stat().st_size:
                return b""  # an empty file cannot be mapped
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a file of the store whole (temp file, rename: a reader never sees half of it)."""
        write_atomic(self.folder / rel, data)

    def files(self, prefix: str) -> list[str]:
        """The files below the folder ``prefix`` (``derived/``, ``logs/``), relative to the root; temp
        files and other dot-names left out."""
        rels = (p.relative_to(self.folder).as_posix() for p in (self.folder / prefix).rglob("*") if p.is_file())
        return sorted(rel for rel in rels if not any(part.startswith(".") for part in rel.split("/")))

    def local_root(self) -> Path:
        """The store's own folder."""
        return self.folder

    def read_blob(self, rel: str) -> bytes | None:
        """The file ``rel`` of the store's blob areas, read in place (``resolve_blob`` refuses a path out)."""
        try:
            path = resolve_blob(self.folder, rel)
        except BlobPathError:
            return None
        return path.read_bytes() if path.is_file() else None

    def put_blob(self, rel: str, data: bytes) -> bool:
        """Write the file ``rel`` of the store's blob areas unless it is there (temp file, rename)."""
        path = resolve_blob(self.folder, rel)
        if path.exists():
            return False
        write_atomic(path, data)
        return True

    def work_dir(self, *parts: str) -> Path:
        """A local folder for a stage's scratch files (DuckDB's spill): ``derived/<parts>`` of the store;
        on object storage a temp folder under TMPDIR, removed with the store object."""
        return self.derived_dir(*parts)

    def local_copy(self, rels=()) -> Path:
        """A local folder laid out as the store that holds the files ``rels`` (blobs, derived files, a
        frames folder whole), for code that reads files by path: here the store's own folder."""
        return self.folder

    def where(self, rel: str) -> Path:
        """The name of the store's file ``rel`` for a message or a report (on object storage: its URL)."""
        return self.folder / rel

    @contextlib.contextmanager
    def kept(self, rel: str, lazy: tuple[str, ...] = ()):
        """The folder ``rel`` of the store for files a stage keeps between runs and reads again (pools'
        vectors and checkpoints), as a :class:`KeptFolder`: the store's own folder here; on object
        storage a local copy of its objects, written back when the block ends, the files matching a
        ``lazy`` glob pattern downloaded only when fetched (``S3Store.kept``)."""
        path = self.folder / rel
        path.mkdir(parents=True, exist_ok=True)
        yield KeptFolder(path)

    @contextlib.contextmanager
    def local_files(self, rels=()):
        """A local folder laid out as the store holding the blobs and derived files ``rels``, for code
        that opens them by path (Pillow): the store's own folder here; on object storage a temp folder
        holding copies of just those, removed when the block ends (``S3Store.local_files``)."""
        yield self.folder

    @contextlib.contextmanager
    def staged(self, rel: str, partial: bool = False):
        """A folder for files a stage writes into the store's folder ``rel``: a hidden temp folder
        whose files are renamed into ``rel`` when the block ends well; a block that fails (an error, a
        refused commit) changes nothing there (on object storage: a local temp folder uploaded at the
        end, ``S3Store.staged``). ``partial``: the files count also when the block fails (a run's own
        log folder, which explains the failure): here ``rel`` itself, written as the stage goes."""
        if partial:
            path = self.folder / rel
            path.mkdir(parents=True, exist_ok=True)
            yield path
            return
        with staged_files(self.folder / rel) as path:
            yield path
    # ------------------------------------------------------------------ locks
    def stage_lock(self, stage: str, shard: tuple[int, int] | None = None):
        """Hold ``stage``'s lock (one run per store) and the store lock shared; sweep dead runs' temps.

        ``shard=(i, n)``: shard i of n of one run (a task on a cluster worker). The shards of a run
        work side by side: each holds the stage lock *shared* and its own ``<stage>.shard-i-of-n``
        lock exclusively, so two runs of the same shard exclude each other, and a run of the whole
        stage (exclusive stage lock) excludes every shard and is excluded by them.

        Raises StoreBusy naming the PID of a run of the same stage (or of ``doctor --repair``).
        """
        return self._stage_lock(stage, shard)

    @contextlib.contextmanager
    def _stage_lock(self, stage: str, shard: tuple[int, int] | None = None):
        with contextlib.ExitStack() as held:
            held.enter_context(locks.hold(self.folder, locks.STORE_LOCK, stage, shared=True, error=StoreBusy))
            held.enter_context(locks.hold(self.folder, stage, stage, shared=shard is not None, error=StoreBusy))
            if shard is not None:
                i, n = (int(x) for x in shard)
                name = f"{stage}.shard-{i}-of-{n}"
                held.enter_context(locks.hold(self.folder, name, name, error=StoreBusy))
            else:  # a shard never sweeps: "dead" is judged by PID, and other shards may run on other machines
                sweep_temps(self.folder)
            yield

    def table_lock(self, name: str, what: str, wait: float = 600.0):
        """Hold the lock of writers that rewrite table ``name`` whole (compact, replace)."""
        return locks.hold(self.folder, f"table-{table_spec(name).name}", what, wait=wait, error=StoreBusy)


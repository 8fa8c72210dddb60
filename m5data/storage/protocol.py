"""The store's declared interface: what code outside ``storage/`` may use of a store, on both backends.

:class:`TableStore` is what :func:`~m5data.storage.open.open_store` returns: a folder store
(:class:`~m5data.storage.store.Store`) or a store on object storage (:class:`~m5data.storage.s3store.S3Store`),
picked by the location (``open.py``). Each method's docstring is the contract both keep;
``tests/storage/test_contract.py`` runs it over both.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .catalog import REFRESH_WAIT
from .location import Location

if TYPE_CHECKING:
    import pyarrow as pa

    from .schema import TableSpec


@runtime_checkable
class TableStore(Protocol):
    """A store of Parquet tables, blobs and files: the folder store and the store on object storage.

    Rows are upserted by each table's key: a read sees the newest write's row per key. Every write
    is all or nothing; readers never lock and never see half a write.
    """

    root: Location
    """Where the store is, as text (:class:`~m5data.storage.location.Location`, on every backend): its
    folder's absolute path or its URL. The folder itself, where there is one, is :meth:`local_root`."""
    blobs: Any
    """Content-addressed blobs (``put_bytes``, ``put_file``, ``writer``, ``open``, ``local``, ``verify``)."""
    compression: str
    """The Parquet compression of new parts."""
    part_rows: int
    """The most rows of one part a streamed write or a compaction writes."""

    # ------------------------------------------------------------------ writes
    def write(self, name: str, data, *, if_absent: bool = False) -> int:
        """Append rows to table ``name`` as one write; returns the rows written (0: nothing written).
        A repeat of the table's newest write is a no-op; ``if_absent``: only rows whose key is new."""

    def writer(self, name: str) -> contextlib.AbstractContextManager:
        """A handle whose ``write(batch)`` streams batches into one write of table ``name``, published
        when the block ends well; an error in the block publishes nothing."""

    def replace(self, name: str, data) -> int:
        """Make ``data`` (rows, an Arrow table or a RecordBatchReader) the whole content of a table, all
        or nothing; returns the rows written."""

    def replace_tables(self, tables: dict) -> dict[str, int]:
        """:meth:`replace` of several tables as one: all of them or none; returns the rows per table."""

    def compact(self, name: str, wait: float = 600.0) -> tuple[int, int]:
        """Merge a table's parts; it reads exactly as before. Returns (parts before, parts after)."""

    def refresh_catalog(self, quiet: bool = False, wait: float = REFRESH_WAIT) -> bool:
        """Bring the catalog file's views up to date where the store has one; True when it is."""

    # ------------------------------------------------------------------ reads
    def read(self, name: str, where: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Table ``name``'s rows (the newest per key), filtered by the SQL ``where``, its ``columns`` only."""

    def read_of(self, name: str, column: str, values) -> pa.Table:
        """The rows :meth:`read` gives whose ``column`` is one of ``values`` (a table grouped by one column)."""

    def read_groups(self, name: str, values: list) -> pa.Table:
        """The rows :meth:`read` gives of the groups ``values`` (a table grouped by one column)."""

    def count(self, name: str) -> int:
        """The rows :meth:`read` gives of table ``name``."""

    def count_parts(self, name: str) -> tuple[int, list[str] | None]:
        """:meth:`count`, with the names of the parts it counted (None: it counted the view)."""

    def count_grown(self, name: str, before: int, counted: list[str]) -> tuple[int, list[str]] | None:
        """The count now, from ``before`` over the parts ``counted`` and those written since; None where
        it cannot tell (count again)."""

    def stored_rows(self, name: str) -> int:
        """The rows the table's parts hold, rows later writes replaced included."""

    def parts(self, name: str) -> list:
        """The table's live parts (paths or URLs), oldest write first."""

    def connect(self, need: tuple[str, ...] | None = None, sandbox: bool = False,
                only: tuple[str, ...] | None = None, cursor: bool = False):
        """An in-memory DuckDB connection with one view per table (``only``: those tables' views), each
        reading as :meth:`read`; ``sandbox``: it reads the store only (``m5data sql``)."""

    def connect_whole(self, tables: tuple[str, ...]):
        """:meth:`connect` with only the views of ``tables``, for a read of all their rows: the process's
        read database while their parts are small, else a database of its own."""

    def read_sql(self, con, spec: TableSpec, parts=None, with_seq: bool = False, shared: bool = False) -> str:
        """SQL (for ``con``) of the rows :meth:`read` gives, over ``parts`` (default: all live parts)."""

    # ------------------------------------------------------------------ changes
    def watermark(self, name: str) -> int:
        """A number at or below which every write of table ``name`` is committed and visible (0: none)."""

    def changed(self, name: str, since: int, columns: tuple[str, ...] = (), new: bool = True) -> pa.Table:
        """The groups of table ``name`` written after the :meth:`watermark` ``since``, with ``is_new``
        (and ``columns`` of each group's newest row)."""

    def parts_since(self, name: str, since: int) -> list | None:
        """The live parts of table ``name`` written after the :meth:`watermark` ``since`` (for
        :meth:`read_sql`'s ``parts``: a group written since has its newest write there whole); None
        where a part does not say when it was written (object storage): read the groups instead."""

    def local_parts(self, name: str) -> list[Path] | None:
        """The live parts of table ``name`` as local files, for a reader that opens them itself (pyarrow,
        their footers' statistics); None where they are not local files (object storage): read the view."""

    # ------------------------------------------------------------------ files
    def read_bytes(self, rel: str) -> bytes | None:
        """The store's file ``rel`` (``derived/...``, ``logs/...``) whole; None when there is none."""

    def read_mapped(self, rel: str):
        """:meth:`read_bytes`, as a buffer that may be a read-only memory map."""

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write the store's file ``rel`` whole: a reader sees the old bytes or the new, never half."""

    def read_text(self, rel: str) -> str | None:
        """:meth:`read_bytes` as UTF-8 text."""

    def write_text(self, rel: str, text: str) -> None:
        """:meth:`write_bytes` of UTF-8 text."""

    def files(self, prefix: str) -> list[str]:
        """The files below the folder ``prefix``, relative to the root, sorted; temp files left out."""

    def local_root(self) -> Path | None:
        """The store's own folder, for code that opens its files by path in place (extract's jobs, a
        folder's mtimes); None where there is none (object storage): such code works on :meth:`local_files`."""

    def read_blob(self, rel: str) -> bytes | None:
        """The bytes of the blob or derived file ``rel`` (a path read from a table); None when it is
        missing, not a file, or its path leads outside the store's blob areas (never read)."""

    def put_blob(self, rel: str, data: bytes) -> bool:
        """Put the blob or derived file ``rel`` unless it is there (content-addressed: a file there is the
        same, and stays); True when this call wrote it. A reader sees it whole or not at all."""

    def where(self, rel: str):
        """The name of the store's file ``rel`` for a message (a path or a URL)."""

    def work_dir(self, *parts: str) -> Path:
        """A local folder for a stage's scratch files."""

    def local_copy(self, rels=()) -> Path:
        """A local folder laid out as the store that holds the files ``rels``."""

    def local_files(self, rels=()) -> contextlib.AbstractContextManager[Path]:
        """A local folder laid out as the store holding the files ``rels`` while the block runs."""

    def kept(self, rel: str, lazy: tuple[str, ...] = ()) -> contextlib.AbstractContextManager:
        """A :class:`~m5data.storage.files.KeptFolder` of the store's folder ``rel``: files a stage keeps
        between runs; what the block writes there is in the store once it ends well."""

    def staged(self, rel: str, partial: bool = False) -> contextlib.AbstractContextManager[Path]:
        """A local folder whose files land below ``rel`` when the block ends well; a failing block
        writes nothing there (``partial``: what it wrote counts also when it fails)."""

    # ------------------------------------------------------------------ locks
    def stage_lock(self, stage: str, shard: tuple[int, int] | None = None) -> contextlib.AbstractContextManager:
        """Hold ``stage``'s lock (one run per store; ``shard=(i, n)``: one run per shard): a second
        holder gets StoreBusy."""

    def table_lock(self, name: str, what: str, wait: float = 600.0) -> contextlib.AbstractContextManager:
        """Hold the lock of writers that rewrite table ``name`` whole (StoreBusy after ``wait`` seconds)."""

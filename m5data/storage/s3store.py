"""A store whose tables live on object storage (``s3://bucket/prefix``), committed through a log.

Layout below the prefix::

    store.json                                   format marker (put-if-absent by ``init``)
    tables/<t>/part-<time>-<random>.parquet      parts; a part is a row of the table only once an entry names it
    tables/<t>/_log/<n:020d>.json                the commit log (``commitlog.py``)
    tables/<t>/_checkpoint.json                  the folded log at some entry (compare-and-swap)

The same Store API as a local folder (``write``, ``writer``, ``read``, ``count``, ``connect``,
``compact``, ``replace``) with the same upsert semantics; what differs is how a write becomes
visible (a log entry instead of a rename) and where ``_seq`` comes from (the entry's number). DuckDB
reads the parts through the s3fs filesystem registered on each connection. The stages' needs (a
stage lease instead of a lock, staged folders, small files, scratch space, local copies) are in
``s3stages.py`` (the leases) and ``s3folders.py`` (staged and kept folders, local copies); not on
object storage: ``derived_dir`` (a folder of the store itself: code uses the store API instead), the catalog file.

Made of backend-neutral parts and its own: the reads both stores share (``reading.Reading``, whose
questions about the parts this class answers: their SQL, footers, sizes and read database), the rows
a write brings (``incoming.py``), text files over bytes (``files.TextFiles``); its own files
(``s3files.py``), changes (``s3changes.py``) and garbage (``s3garbage.py``). It inherits none of the
folder store's mixins (writing, compaction, views, catalog).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import s3groups
from .catalog import REFRESH_WAIT
from .commitlog import Conflict, TableLog
from .errors import StoreError
from .files import TextFiles
from .incoming import incoming
from .location import Location
from .logstate import FROM_FILE, TableState
from .objects import ObjectStore, aws_environment
from .parts import conform
from .readdb import READ_DB
from .reading import Reading
from .s3blobs import ObjectBlobs
from .s3changes import ObjectChanges
from .s3files import ObjectFiles
from .s3garbage import ObjectGarbage
from .s3parts import ObjectStream, StreamHandle
from .s3stages import hold_lease, stage_lease
from .schema import MARKER, SEQ_COLUMN, STORE_FORMAT, TABLES, TableSpec, table_spec
from .temps import sweep_scratch
from .views import newest_writes_sql, null_columns, sql_str, window_sql


class S3Store(ObjectFiles, ObjectChanges, Reading, TextFiles, ObjectGarbage):
    """Open with ``open_store("s3://bucket/prefix")`` (endpoint and credentials from the AWS environment)."""

    def __init__(self, url: str, compression: str = "zstd", part_rows: int = 1_000_000, lease_seconds: float = 600.0,
                 garbage_grace: float = 86400.0, checkpoint_every: int = 32):
        self.objects = ObjectStore(url)
        self.root = Location(self.objects.url)  # its URL as text, never a Path (a Path folds "//")
        self.compression, self.part_rows = compression, part_rows
        self.lease_seconds, self.garbage_grace, self.checkpoint_every = lease_seconds, garbage_grace, checkpoint_every
        self.blobs = ObjectBlobs(self.objects)  # content-addressed, put-if-absent
        self._logs: dict[str, TableLog] = {}
        self._work: Path | None = None  # work_dir's local temp folder
        self.fences: list = []  # the leases of the stages this object runs (s3stages.Fence): every commit checks them
        # what this object last read or wrote of each small file (read_bytes / write_bytes), under which leases:
        # (the fences' holders, its ETag or None when it was absent); a fenced write of it is conditional on that
        self._seen: dict[str, tuple[tuple, str | None]] = {}

    # ------------------------------------------------------------------ open / init
    @classmethod
    def _init_here(cls, root: str, **kwargs) -> S3Store:
        store = cls(root, **kwargs)
        marker = json.dumps({"format": STORE_FORMAT, "tables": {n: t.version for n, t in TABLES.items()}}, indent=2)
        store.objects.put(MARKER, marker.encode() + b"\n", if_absent=True)  # an existing store stays as it is
        return store

    @classmethod
    def _open_here(cls, root: str, create: bool = False, **kwargs) -> S3Store:
        store = cls(root, **kwargs)
        found = store.objects.get(MARKER)
        if found is None:
            if create:
                return cls._init_here(root, **kwargs)
            raise StoreError(f"no m5data store at {store.root} (create one with `m5data init`)")
        try:
            fmt = int(json.loads(found[0])["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"corrupt store marker {store.objects.uri(MARKER)}: {exc}") from None
        if fmt > STORE_FORMAT:
            raise StoreError(f"store {store.root} has format {fmt}; this m5data reads up to {STORE_FORMAT}")
        return store

    # ------------------------------------------------------------------ layout
    def log(self, name: str) -> TableLog:
        name = table_spec(name).name
        if name not in self._logs:
            self._logs[name] = TableLog(self.objects, name, self.checkpoint_every)
            self._logs[name].guard = lambda state: self._admit(name, state)
        return self._logs[name]

    def _admit(self, name: str, state: TableState) -> dict:
        """Every entry this object makes in table ``name``'s log, checked against the state it follows:
        refused (LeaseLost) when a later run of a stage this object runs fenced the table (s3fence.py);
        it names the leases it was made under (``"under"``)."""
        for fence in self.fences:
            fence.admit(name, state)
        return {"under": [f.holder for f in self.fences]} if self.fences else {}

    def table_dir(self, name: str) -> str:
        return self.objects.uri(f"tables/{table_spec(name).name}")

    def parts(self, name: str) -> list[str]:
        """The live parts' URLs, oldest write first."""
        live = self.table_state(name).parts
        return [self._uri(name, p) for p in sorted(live, key=lambda p: (live[p], p))]

    def parts_after_write(self, name: str) -> int:
        """As :meth:`Store.parts_after_write`: the parts of the state this process's last commit folded
        (a writer elsewhere may have added some since; no request is made to find out)."""
        return self.log(name).known_parts()

    def parts_since(self, name: str, since: int) -> None:
        """None: a part's name does not say its ``_seq`` here (the log entry naming it does)."""
        return None

    def local_parts(self, name: str) -> None:
        """None: the parts are objects (read through the views)."""
        return None

    def _uri(self, table: str, part: str) -> str:
        return self.objects.uri(f"tables/{table}/{part}")

    def derived_dir(self, *parts: str):
        raise StoreError(f"a derived folder on a store on object storage ({self.root}): every stage reads and "
                         "writes its files through the store's API (read_bytes, kept, staged, work_dir) instead")

    # ------------------------------------------------------------------ locks: the log's leases
    def stage_lock(self, stage: str, shard: tuple[int, int] | None = None):
        """One run of ``stage`` per store: a lease in the log ``locks/<stage>`` (no fcntl; see s3stages.py).
        Once held, the local scratch folders of this machine's killed runs go (``temps.sweep_scratch``)."""
        return self._leased_stage(stage, shard)

    @contextlib.contextmanager
    def _leased_stage(self, stage: str, shard):
        with stage_lease(self, stage, shard):
            sweep_scratch()
            yield

    def table_lock(self, name: str, what: str, wait: float = 600.0):
        return self._leased(name, what, wait)

    def _leased(self, name: str, what: str, wait: float, group: str | None = None):
        """Hold the table's rewrite lease (an entry in its log); yields the holder id the commit releases.
        A group rewrite left half done on this table or by its last replace is finished first (s3groups.py);
        ``group``: this lease is taken for a group rewrite whose primary table is ``group``."""
        return hold_lease(self.log(name), what, f"table {name} of {self.root} is being rewritten by",
                          self.lease_seconds, wait, extra={"group": group} if group else None,
                          settle=lambda state: s3groups.settle(self, name, state))

    def replace_tables(self, tables: dict) -> dict[str, int]:
        """As :meth:`GroupRewrites.replace_tables`: all the tables or none (s3groups.py)."""
        return s3groups.replace_tables(self, tables)

    def table_state(self, name: str) -> TableState:
        """Table ``name`` as a reader sees it (a group rewrite committed half way folded in: s3groups.py)."""
        return s3groups.table_state(self, table_spec(name).name)

    # ------------------------------------------------------------------ writes
    def write(self, name: str, data, *, if_absent: bool = False) -> int:
        """As :meth:`Writing.write`: one part, then one log entry (none when it repeats the newest write)."""
        if (rows := incoming(self, name, data, if_absent)) is None:
            return 0
        spec, table, tag = rows
        stream = ObjectStream(self, spec)
        try:
            stream.write(table)
            added = stream.close()
            # a repeat of the newest write changes nothing: its part goes again
            n = self._commit(name, lambda s: None if s.last_tag == tag else {"kind": "write", "add": added, "tag": tag})
        except BaseException:
            stream.abort()
            raise
        if n is None:
            stream.abort()
            return 0
        return len(table)

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[StreamHandle]:
        """Stream many batches as one write: parts uploaded as they fill, one log entry at the end."""
        spec = table_spec(name)
        stream = ObjectStream(self, spec)
        try:
            yield StreamHandle(stream)
            added = stream.close()
            if added:
                self._commit(name, lambda s: {"kind": "write", "add": added, "tag": None})
        except BaseException:
            stream.abort()
            raise

    def replace(self, name: str, data) -> int:
        """Make ``data`` the whole content of a table: one entry removes every part and adds the new ones."""
        spec = table_spec(name)
        with self._leased(name, f"replace {name}", 600.0) as holder:
            old = set(self.log(name).state().parts)
            stream = ObjectStream(self, spec)
            try:
                for batch in (data if isinstance(data, pa.RecordBatchReader) else [conform(spec, data)]):
                    stream.write(batch)
                if not stream.rows:
                    stream.write(spec.schema.empty_table())
                added = stream.close()
                self._commit(name, self._rewrite_entry("replace", name, old, added, holder))
            except BaseException:
                stream.abort()
                raise
        self._drop_parts(name, old)
        return stream.rows

    def _commit(self, name: str, make):
        """Commit ``make``'s entry to table ``name``'s log, fenced: a stage whose lease is no longer its own
        (``self.fences``) commits nothing (LeaseLost: checked early here, and in the commit by ``_admit``)."""
        self._check_fences()
        return self.log(name).commit(make)

    def _check_fences(self) -> None:
        for fence in self.fences:
            fence.check()

    def _rewrite_entry(self, kind: str, name: str, old: set[str], added: list[str], holder: str):
        """The commit of a rewrite: refused when a part it read is gone or its lease was lost."""
        def make(state: TableState) -> dict:
            gone = sorted(old - set(state.parts))
            if gone or not state.lease or state.lease.get("holder") != holder:
                raise Conflict(f"{kind} {name} of {self.root}: the table changed under it "
                               f"({'parts gone: ' + ', '.join(gone[:3]) if gone else 'its lease was taken over'}); "
                               "nothing was changed, run it again")
            return {"kind": kind, "remove": sorted(old), "add": added, "release": holder}
        return make

    def _drop_parts(self, name: str, parts) -> None:
        """Remove the objects of parts a rewrite removed (a reader that listed them reads again)."""
        self.objects.delete([f"tables/{name}/{p}" for p in sorted(parts)])

    def compact(self, name: str, wait: float = 600.0) -> tuple[int, int]:
        """As :meth:`Compaction.compact`, fenced by the table's lease; appends committed meanwhile survive."""
        import duckdb

        spec = table_spec(name)
        state = self.log(name).state()
        if state.compacted:
            return len(state.parts), len(state.parts)
        with self._leased(name, f"compact {name}", wait) as holder:
            snapshot = self.log(name).state()
            con = self.connect(need=(), only=())  # no view of any table: the parts are read by read_sql
            stream = ObjectStream(self, spec, keep_seq=True)
            schema = spec.schema.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False))
            try:
                if set(spec.group) <= set(spec.key):  # each group's newest write, without the window (compaction.py)
                    try:
                        sql = newest_writes_sql(con, spec, self._rows(spec, snapshot.parts, keep_file=True), keys_once=False)
                    except duckdb.Error as exc:  # a damaged part: one StoreError naming it
                        raise self._explain(spec.name, exc) from None
                else:
                    sql = self._window(spec, snapshot.parts, with_seq=True)
                for batch in self._scan(con, spec, sql):
                    stream.write(pa.Table.from_batches([batch]).cast(schema))
                added = stream.close()
                self._commit(name, self._rewrite_entry("compact", name, set(snapshot.parts), added, holder))
            except BaseException:
                stream.abort()
                raise
            finally:
                con.close()
        self._drop_parts(name, snapshot.parts)
        return len(snapshot.parts), len(added)

    def is_compacted(self, name: str) -> bool:
        return self.log(name).state().compacted

    def refresh_catalog(self, quiet: bool = False, wait: float = REFRESH_WAIT) -> bool:
        """No catalog file on object storage: ``connect()`` (and ``m5data sql``) make the views."""
        return True

    # ------------------------------------------------------------------ reads
    def _attach(self, con) -> None:
        con.register_filesystem(self.objects.fs)  # per database: its cursors read through it

    def _parts_bytes(self, tables: tuple[str, ...]) -> float:
        """Not known without a request per part: :meth:`connect_whole` makes a database of its own."""
        return float("inf")

    def _read_cursor(self):
        """A cursor of the process's read database for this AWS environment (the s3fs instance registered
        on it is made from that environment, as this store's own would be): a database of its own made
        each read cost ~16 ms, three thousand times in a suite run."""
        return READ_DB.cursor(key=("s3", aws_environment()), attach=self._attach)

    def read_sql(self, con, spec: TableSpec, parts=None, with_seq: bool = False, shared: bool = False) -> str:
        state = self.table_state(spec.name)
        live = state.parts if parts is None else {p.rsplit("/", 1)[1]: state.parts[p.rsplit("/", 1)[1]] for p in parts}
        return self._window(spec, live, with_seq, compacted=parts is None and state.compacted)

    def view_sql(self, spec: TableSpec, parts=None, with_seq: bool = False) -> str:
        return self.read_sql(None, spec, parts, with_seq)

    def _window(self, spec: TableSpec, live: dict[str, int], with_seq: bool = False, compacted: bool = False) -> str:
        """The newest row per key over ``live`` parts, each write's rows with its log number as ``_seq``."""
        cols = ", ".join(spec.schema.names + ([SEQ_COLUMN] if with_seq else []))
        if not live:
            return f"SELECT {null_columns(spec)}{', CAST(NULL AS BIGINT) AS ' + SEQ_COLUMN if with_seq else ''} WHERE false"
        source = self._rows(spec, live)
        if compacted:
            return f"SELECT {cols} FROM {source}"
        return window_sql(spec, source, cols)

    def _rows(self, spec: TableSpec, live: dict[str, int], keep_file: bool = False) -> str:
        """Every row of the ``live`` parts, each with its ``_seq`` (the entry's number, or its own after a
        compaction), and with ``keep_file`` its part's name as ``_m5data_file``."""
        files = "[" + ", ".join(sql_str(self._uri(spec.name, p)) for p in sorted(live)) + "]"
        seqs = ", ".join(f"({sql_str(self._uri(spec.name, p))}, {int(s)})" for p, s in sorted(live.items()))
        return (f"(SELECT p.*{'' if keep_file else ' EXCLUDE (_m5data_file)'} REPLACE (CASE WHEN m.seq = {FROM_FILE} THEN p.{SEQ_COLUMN} "
                f"ELSE m.seq END AS {SEQ_COLUMN}) FROM read_parquet({files}, union_by_name = true, "
                f"filename = '_m5data_file') p JOIN (VALUES {seqs}) m(file, seq) ON p._m5data_file = m.file)")

    def _footer_rows(self, part) -> int:
        with self.objects.fs.open(str(part), "rb") as fh:
            return pq.ParquetFile(fh).metadata.num_rows

    def _footer_problem(self, part) -> str | None:
        try:
            with self.objects.fs.open(str(part), "rb") as fh:
                pq.ParquetFile(fh).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None

"""The store: one folder of Parquet tables, content-addressed blobs and a DuckDB catalog of views.

Layout::

    <root>/store.json                  format marker (created by ``m5data init``)
    <root>/tables/<table>/part-*.parquet
    <root>/tables/<table>/_compacted   names of the parts the last compaction produced
    <root>/blobs/ab/<sha256>.<ext>
    <root>/derived/...                 frames, MFCC arrays, normalised images
    <root>/catalog.duckdb              views over the Parquet parts (derivable: deleting it loses nothing)

Writes append parts; reads see the latest row per key (see ``schema.py``). Every row carries the
sequence number of the write that made it (``_seq``); compaction keeps it, so what a table reads
never depends on how its parts were compacted. Appends need no lock; ``compact`` and ``replace``
hold the table's lock, stages hold their stage lock (``locks.py``); readers never lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import keyindex, locks
from .blobs import BlobStore
from .parts import PART_GLOB, PartWriter, conform, content_hash, fsync_dir, next_seq
from .schema import SEQ_COLUMN, TABLES, TableSpec, duckdb_type, table_spec
from .temps import TMP_PREFIX, owner_pid, pid_alive, sweep_temps, temp_name

STORE_FORMAT = 1
MARKER = "store.json"
CATALOG = "catalog.duckdb"
COMPACTED = "_compacted"


class StoreError(Exception):
    """A store that is missing or unusable; the message names the path."""


class StoreBusy(StoreError, locks.LockHeld):
    """Another process holds the lock this operation needs; the message names its PID."""


class CorruptPart(StoreError):
    """A Parquet part that cannot be read; the message names the part."""

    def __init__(self, table: str, part: Path, reason: str):
        self.table, self.part, self.reason = table, part, reason
        super().__init__(f"corrupt Parquet part {part} (table {table}): {reason}; "
                         f"run `m5data doctor --repair` to move it aside")


# DuckDB errors of a read that raced with a compaction removing the parts it had listed
_VANISHED = ("no files found", "cannot open file", "no such file", "could not open file")
# A sandboxed connection (m5data sql): reads the store only, never installs or loads extensions.
_SANDBOX = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class _ReadDatabase:
    """One in-memory DuckDB database per process for :meth:`Store.read` / :meth:`Store.count`.

    Each read takes a cursor on it (a connection of its own, ~0.6 ms) and creates its view as a
    TEMP view, which only that cursor sees; a new database costs ~15 ms, and a stage makes hundreds
    of small reads. Before a fork the process drops its reference (a child never uses a database
    whose threads stayed in the parent) and the child makes its own on first use.
    """

    def __init__(self):
        self._db = None
        self._lock = threading.Lock()
        os.register_at_fork(before=self._drop, after_in_child=self._reset)

    def cursor(self):
        import duckdb

        with self._lock:
            if self._db is None:
                self._db = duckdb.connect()
            return self._db.cursor()

    def _drop(self) -> None:
        self._db = None  # cursors in use keep the database alive until they close

    def _reset(self) -> None:
        self._db, self._lock = None, threading.Lock()


_READS = _ReadDatabase()


def part_problem(path: Path) -> str | None:
    """Why a part's footer cannot be read (None when it can)."""
    try:
        pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _files_sql(parts: list[Path]) -> str:
    return "[" + ", ".join(_sql_str(str(p)) for p in parts) + "]"


def _window_sql(spec: TableSpec, source: str, cols: str) -> str:
    """The newest row per key of ``source`` (and, with ``replace_by``, only its group's newest write)."""
    keys = ", ".join(spec.key)
    if spec.replace_by:
        group = ", ".join(spec.replace_by)
        return (
            f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) AS _rn, "
            f"max({SEQ_COLUMN}) OVER (PARTITION BY {group}) AS _gmax FROM {source}) "
            f"WHERE _rn = 1 AND {SEQ_COLUMN} = _gmax"
        )
    return f"SELECT {cols} FROM {source} QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) = 1"


class Store:
    """Open with ``Store.open(path)``; create with ``Store.init(path)``."""

    def __init__(self, root: Path, compression: str = "zstd", part_rows: int = 1_000_000):
        self.root = Path(root).absolute()
        self.compression = compression
        self.part_rows = part_rows
        self.blobs = BlobStore(self.root)

    # ------------------------------------------------------------------ open / init
    @classmethod
    def init(cls, root: str | Path, **kwargs) -> Store:
        store = cls(Path(root), **kwargs)
        if store.root.exists() and not store.root.is_dir():
            raise StoreError(f"cannot create a store at {store.root}: a file is in the way")
        for sub in ["tables", "blobs", "derived"]:
            (store.root / sub).mkdir(parents=True, exist_ok=True)
        for name in TABLES:
            store.table_dir(name).mkdir(exist_ok=True)
        marker = store.root / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"format": STORE_FORMAT, "tables": {
                n: t.version for n, t in TABLES.items()}}, indent=2) + "\n")
        store.refresh_catalog()
        return store

    @classmethod
    def open(cls, root: str | Path, create: bool = False, **kwargs) -> Store:
        store = cls(Path(root), **kwargs)
        marker = store.root / MARKER
        if not marker.is_file():
            if create:
                return cls.init(root, **kwargs)
            raise StoreError(f"no m5data store at {store.root} (create one with `m5data init`)")
        try:
            info = json.loads(marker.read_text())
            fmt = int(info["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"corrupt store marker {marker}: {exc}") from None
        if fmt > STORE_FORMAT:
            raise StoreError(f"store {store.root} has format {fmt}; this m5data reads up to {STORE_FORMAT}")
        for name in TABLES:
            store.table_dir(name).mkdir(parents=True, exist_ok=True)
        return store

    @classmethod
    def from_settings(cls, settings, create: bool = False) -> Store:
        return cls.open(settings.store_path, create=create, compression=settings.store.compression,
                        part_rows=settings.store.part_rows)

    # ------------------------------------------------------------------ layout
    def table_dir(self, name: str) -> Path:
        table_spec(name)
        return self.root / "tables" / name

    def parts(self, name: str) -> list[Path]:
        return sorted(self.table_dir(name).glob(PART_GLOB))

    def derived_dir(self, *parts: str) -> Path:
        path = self.root.joinpath("derived", *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ writing
    def write(self, name: str, data: pa.Table | pa.RecordBatch | list[dict], *, if_absent: bool = False) -> int:
        """Append rows to a table atomically; returns the number of rows written.

        Rows are upserted by the table's key (the newest write wins when read); one write holds each
        key once. Writing a batch identical to the table's newest write is a no-op (a retried write
        stores nothing twice). With ``if_absent`` only rows whose key is not yet in the table are
        written (e.g. a re-crawl must not reset a downloaded media row).
        """
        spec = table_spec(name)
        table = conform(spec, data)
        if if_absent and len(table):
            table = self._drop_existing(spec, table)
        if not len(table):
            return 0
        tag = content_hash(table)[:16]
        directory = self.table_dir(name)
        parts = self.parts(name)
        # a repeat of the newest write changes nothing; a repeat of an older one is a new write (it wins)
        if parts and parts[-1].name.endswith(f"-{tag}.parquet"):
            return 0
        writer = PartWriter(directory, spec, next_seq(), self.compression, tag)
        try:
            writer.write(table)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        return len(table)

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[_StreamingWriter]:
        """Stream many batches into parts of at most ``part_rows`` rows; nothing is published on error."""
        stream = _StreamingWriter(self, table_spec(name))
        try:
            yield stream
        except BaseException:
            stream.abort()
            raise
        stream.close()

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
            held.enter_context(locks.hold(self.root, locks.STORE_LOCK, stage, shared=True, error=StoreBusy))
            held.enter_context(locks.hold(self.root, stage, stage, shared=shard is not None, error=StoreBusy))
            if shard is not None:
                i, n = (int(x) for x in shard)
                name = f"{stage}.shard-{i}-of-{n}"
                held.enter_context(locks.hold(self.root, name, name, error=StoreBusy))
            else:  # a shard never sweeps: "dead" is judged by PID, and other shards may run on other machines
                sweep_temps(self.root)
            yield

    def table_lock(self, name: str, what: str, wait: float = 600.0):
        """Hold the lock of writers that rewrite table ``name`` whole (compact, replace)."""
        return locks.hold(self.root, f"table-{table_spec(name).name}", what, wait=wait, error=StoreBusy)

    def replace(self, name: str, data: pa.Table | list[dict] | pa.RecordBatchReader) -> int:
        """Make ``data`` the whole content of a table (used by global jobs: align, splits).

        A ``RecordBatchReader`` is streamed into parts of at most ``part_rows`` rows (one write:
        all or nothing), so a large table is never held in memory.
        """
        spec = table_spec(name)
        if isinstance(data, pa.RecordBatchReader):
            with self.table_lock(name, f"replace {name}"):
                old = self.parts(name)
                stream = _StreamingWriter(self, spec)
                try:
                    for batch in data:
                        stream.write(batch)
                    if not stream.rows:
                        stream.write(spec.schema.empty_table())
                    stream.close()
                except BaseException:
                    stream.abort()
                    raise
                self._mark_compacted(name, stream._done)
                for part in old:
                    part.unlink(missing_ok=True)
                keyindex.sweep(self.table_dir(name), self.parts(name))
            return stream.rows
        table = conform(spec, data)
        with self.table_lock(name, f"replace {name}"):
            old = self.parts(name)
            writer = PartWriter(self.table_dir(name), spec, next_seq(), self.compression)
            try:
                writer.write(table)
                new = writer.commit()
            except BaseException:
                writer.abort()
                raise
            self._mark_compacted(name, [new])
            for part in old:
                part.unlink(missing_ok=True)
            keyindex.sweep(self.table_dir(name), self.parts(name))
        return len(table)

    def _drop_existing(self, spec: TableSpec, table: pa.Table) -> pa.Table:
        if not self.parts(spec.name):
            return table
        con = self.connect(need=(spec.name,), only=(spec.name,))
        try:
            con.register("incoming", table)
            keys = " AND ".join(f"t.{k} = i.{k}" for k in spec.key)
            return con.sql(
                f"SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {keys})"
            ).to_arrow_table().cast(spec.schema)
        finally:
            con.close()

    def _mark_compacted(self, name: str, parts: list[Path]) -> None:
        marker = self.table_dir(name) / COMPACTED
        tmp = marker.with_name(temp_name(prefix=TMP_PREFIX))
        tmp.write_text("\n".join(sorted(p.name for p in parts)) + "\n")
        os.replace(tmp, marker)
        fsync_dir(marker.parent)

    def is_compacted(self, name: str) -> bool:
        """True when the table's parts are exactly those of its last compaction (no duplicates)."""
        parts = self.parts(name)
        marker = self.table_dir(name) / COMPACTED
        if not parts:
            return True
        if not marker.is_file():
            return False
        return sorted(p.name for p in parts) == sorted(marker.read_text().split())

    def compact(self, name: str, wait: float = 600.0) -> tuple[int, int]:
        """Merge a table's parts into deduplicated parts of ``part_rows`` rows; returns (parts before, after).

        Each row keeps the ``_seq`` of the write that made it, so a compacted table reads exactly as
        before and resolves later writes the same way (a product whose spec rows end up in two parts
        is still one write). Parts appended while compacting are left alone. Holds the table's lock
        (waiting up to ``wait`` seconds for another compact/replace of it).
        """
        spec = table_spec(name)
        directory = self.table_dir(name)
        with self.table_lock(name, f"compact {name}", wait):
            for stale in directory.glob(TMP_PREFIX + "*"):
                pid = owner_pid(stale.name)
                if pid is not None and not pid_alive(pid):  # a killed writer's; a live one's is in use
                    stale.unlink(missing_ok=True)
            old = self.parts(name)
            if self.is_compacted(name):
                return len(old), len(old)
            con = self.connect(need=())
            try:
                reader = self._scan(con, spec, self.read_sql(con, spec, parts=old, with_seq=True))
                new: list[Path] = []
                writer = None
                schema = spec.schema.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False))
                try:
                    for batch in reader:
                        table = pa.Table.from_batches([batch]).cast(schema)
                        # the reader's batch size is a hint, not a bound: cut parts at part_rows ourselves
                        while len(table):
                            if writer is None:
                                writer = PartWriter(directory, spec, next_seq(), self.compression, keep_seq=True)
                            take = self.part_rows - writer.rows
                            writer.write(table.slice(0, take))
                            table = table.slice(take)
                            if writer.rows >= self.part_rows:
                                new.append(writer.commit())
                                writer = None
                    if writer is not None:
                        new.append(writer.commit())
                except BaseException:
                    if writer is not None:
                        writer.abort()
                    for part in new:
                        part.unlink(missing_ok=True)
                    raise
            finally:
                con.close()
            self._mark_compacted(name, new)
            for part in old:
                part.unlink(missing_ok=True)
            keyindex.sweep(directory, self.parts(name))
        self.refresh_catalog(quiet=True)
        return len(old), len(new)

    def _scan(self, con, spec: TableSpec, sql: str):
        """Arrow batches of ``sql``; a DuckDB error naming a part becomes a one-line CorruptPart."""
        import duckdb

        try:
            return con.sql(sql).to_arrow_reader(self.part_rows)
        except duckdb.Error as exc:
            raise self._explain(spec.name, exc) from None

    def _explain(self, name: str, exc: Exception) -> StoreError:
        """The StoreError for a failed read of table ``name``: the corrupt part if one is, else the error."""
        for part in self.parts(name):
            problem = part_problem(part)
            if problem is not None:
                return CorruptPart(name, part, problem)
        return StoreError(f"cannot read table {name} in {self.root}: {str(exc).splitlines()[0]}")

    # ------------------------------------------------------------------ reading
    def view_sql(self, spec: TableSpec, parts: list[Path] | None = None, with_seq: bool = False) -> str:
        """SQL of a table's view: the latest row per key over all parts (or over ``parts``).

        This is the catalog's view (a glob: it stays valid as parts come and go); reads of this
        process use :meth:`read_sql`, which gives the same rows without the window where it can.
        """
        cols = ", ".join(spec.schema.names + ([SEQ_COLUMN] if with_seq else []))
        listed = parts is not None
        parts = self.parts(spec.name) if parts is None else parts
        if not parts:
            return self._empty_sql(spec, with_seq)
        files = _files_sql(parts) if listed else _sql_str(str(self.table_dir(spec.name) / PART_GLOB))
        source = f"read_parquet({files}, union_by_name = true)"
        if not listed and self.is_compacted(spec.name):
            return f"SELECT {cols} FROM {source}"
        return _window_sql(spec, source, cols)

    def read_sql(self, con, spec: TableSpec, parts: list[Path] | None = None, with_seq: bool = False,
                 shared: bool = False) -> str:
        """SQL of the latest row per key over the listed parts (all parts by default), for ``con`` only.

        Returns exactly :meth:`view_sql`'s rows, but only the groups that more than one part holds
        (or parts holding a key twice) go through the window; the rest are read as they are (see
        ``keyindex.py``). Creates on ``con`` the table of the contested group hashes it refers to:
        a temp table, or with ``shared`` a table of ``con``'s database, which its cursors see too
        (``con`` must then be a database of its own, as :meth:`connect` makes).
        """
        cols = ", ".join(spec.schema.names + ([SEQ_COLUMN] if with_seq else []))
        parts_given = parts
        compacted = parts is None and self.is_compacted(spec.name)
        parts = self.parts(spec.name) if parts is None else parts
        if not parts:
            return self._empty_sql(spec, with_seq)
        if compacted:  # the catalog's view: a glob, as before
            return self.view_sql(spec)
        plan = keyindex.plan(parts, spec)
        h = keyindex.group_hash_sql(spec)
        # The parts are globbed at every query (as the window view does), so parts written or removed
        # after this connection opened are seen: the planned parts known as plain are named, any
        # other part (a new one, a compaction's, one holding a key twice) goes through the window
        # with every group it holds, wherever that group's other rows are.
        table_glob = self.table_dir(spec.name) / PART_GLOB if parts_given is None else None
        files = _sql_str(str(table_glob)) if table_glob else _files_sql(parts)
        every = f"read_parquet({files}, union_by_name = true, filename = '_m5data_file')"
        known = "[" + ", ".join(_sql_str(str(p)) for p in plan.plain) + "]"
        other = f"(SELECT * FROM {every} WHERE NOT list_contains({known}, _m5data_file))"
        moved = [f"{h} IN (SELECT {h} FROM {other})"]
        if len(plan.contested):
            contested = f"_m5data_contested_{spec.name}"
            con.register("_m5data_hashes", pa.table({"h": pa.array(plan.contested, pa.uint64())}))
            try:
                temp = "" if shared else "TEMP "
                con.execute(f"CREATE OR REPLACE {temp}TABLE {contested} AS SELECT h FROM _m5data_hashes")
            finally:
                con.unregister("_m5data_hashes")
            moved.insert(0, f"{h} IN (SELECT h FROM {contested})")
        mine = f"(SELECT * FROM {every} WHERE list_contains({known}, _m5data_file))"
        plain = f"SELECT {cols} FROM {mine} WHERE NOT ({' OR '.join(moved)})"
        window = _window_sql(spec, f"(SELECT * FROM {other} UNION ALL BY NAME SELECT * FROM {mine} WHERE {' OR '.join(moved)})", cols)
        return f"({plain}) UNION ALL ({window})"

    def _empty_sql(self, spec: TableSpec, with_seq: bool) -> str:
        nulls = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in spec.schema)
        return f"SELECT {nulls}{', CAST(NULL AS BIGINT) AS ' + SEQ_COLUMN if with_seq else ''} WHERE false"

    def _error_view_sql(self, spec: TableSpec, message: str) -> str:
        """A view with the table's columns that raises ``message`` when read (DESCRIBE still works)."""
        nulls = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in spec.schema)
        return f"SELECT {nulls} FROM range(1) WHERE error({_sql_str(message)}) IS NULL"

    def connect(self, need: tuple[str, ...] | None = None, sandbox: bool = False,
                only: tuple[str, ...] | None = None, _read_cursor: bool = False):
        """An in-memory DuckDB connection with one view per table (no file lock, no catalog file);
        its cursors (``con.cursor()``) read the same views.

        Args:
            need: tables the caller reads (default: all). A corrupt part of one of them raises
                CorruptPart; the view of any other table with a corrupt part raises that same
                message only when it is queried, so the other tables stay readable.
            sandbox: a connection that can read the store's files only, never installs or loads
                extensions, and cannot be reconfigured (``m5data sql``).
            only: create the views of these tables only (a read of one table binds one view).
            _read_cursor: a cursor on the process's shared read database with TEMP views
                (:class:`_ReadDatabase`; for :meth:`read` and :meth:`count`, never with ``sandbox``).
        """
        import duckdb

        need = tuple(TABLES) if need is None else need
        for attempt in range(4):
            con = _READS.cursor() if _read_cursor and not sandbox else duckdb.connect(config=dict(_SANDBOX) if sandbox else {})
            try:
                for spec in TABLES.values():
                    if only is None or spec.name in only:
                        self._create_view(con, spec, spec.name in need, temp=_read_cursor)
                if sandbox:  # after the views: their temp tables of contested keys are made from Arrow
                    con.execute(f"SET allowed_directories = [{_sql_str(str(self.root) + os.sep)}]")
                    con.execute("SET enable_external_access = false")
                    con.execute("SET lock_configuration = true")
                return con
            except _Vanished:
                con.close()
                if attempt == 3:
                    raise StoreError(f"the parts of {self.root} keep changing while being read; try again") from None
            except BaseException:
                con.close()
                raise
        raise AssertionError("unreachable")

    def _create_view(self, con, spec: TableSpec, strict: bool, temp: bool = False) -> None:
        import duckdb

        create = "CREATE TEMP VIEW" if temp else "CREATE VIEW"
        try:
            con.execute(f"{create} {spec.name} AS {self.read_sql(con, spec, shared=not temp)}")
            return
        except duckdb.Error as exc:
            error = self._explain(spec.name, exc)
            if not isinstance(error, CorruptPart) and any(v in str(exc).lower() for v in _VANISHED):
                raise _Vanished() from None  # a compaction removed parts between glob and read: retry
        if strict:
            raise error
        con.execute(f"{create} {spec.name} AS {self._error_view_sql(spec, str(error))}")

    def read(self, name: str, where: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """A table's current rows as Arrow (for small tables or filtered reads); ``where`` may name
        the table's own columns only.

        Raises CorruptPart naming an unreadable part of the table, StoreError for other read errors.
        """
        import duckdb

        spec = table_spec(name)
        con = self.connect(need=(spec.name,), only=(spec.name,), _read_cursor=True)
        try:
            sql = f"SELECT {', '.join(columns) if columns else '*'} FROM {name}"
            if where:
                sql += f" WHERE {where}"
            try:
                result = con.sql(sql).to_arrow_table()
            except duckdb.Error as exc:  # a damaged part (or a bad `where`): one StoreError
                raise self._explain(spec.name, exc) from None
            return result.cast(spec.schema) if not columns else result
        finally:
            con.close()

    def count(self, name: str) -> int:
        import duckdb

        con = self.connect(need=(table_spec(name).name,), only=(table_spec(name).name,), _read_cursor=True)
        try:
            return con.execute(f"SELECT count(*) FROM {table_spec(name).name}").fetchone()[0]
        except duckdb.Error as exc:  # a damaged part (or a bad `where`): one StoreError
            raise self._explain(name, exc) from None
        finally:
            con.close()

    # ------------------------------------------------------------------ catalog
    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    def refresh_catalog(self, quiet: bool = False) -> bool:
        """Make ``catalog.duckdb`` hold the current views; rebuild it when missing, stale or corrupt.

        Writes only when a view changed, so reading the store leaves its files untouched. A rebuild
        happens under the catalog lock into a temp file renamed into place: a process reading the
        old catalog keeps reading it, and a refresh never waits for another process. Returns False
        when another process was rebuilding it meanwhile, or (``quiet``) when it could not be written.
        """
        import duckdb

        wanted = {spec.name: self.view_sql(spec) for spec in TABLES.values()}
        if self._catalog_views() == wanted:
            return True
        tmp = self.root / temp_name(".duckdb")
        try:
            with locks.hold(self.root, "catalog", "catalog refresh", error=StoreBusy):
                if self._catalog_views() == wanted:  # another process rebuilt it while we waited
                    return True
                con = duckdb.connect(str(tmp))
                try:
                    con.execute("CREATE TABLE _m5data_views (name VARCHAR, sql VARCHAR)")
                    for spec in TABLES.values():
                        try:
                            con.execute(f"CREATE VIEW {spec.name} AS {wanted[spec.name]}")
                        except duckdb.Error as exc:  # a corrupt part: the view says so when read
                            con.execute(f"CREATE OR REPLACE VIEW {spec.name} AS "
                                        f"{self._error_view_sql(spec, str(self._explain(spec.name, exc)))}")
                        con.execute("INSERT INTO _m5data_views VALUES (?, ?)", [spec.name, wanted[spec.name]])
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
                os.replace(tmp, self.catalog_path)
                Path(str(self.catalog_path) + ".wal").unlink(missing_ok=True)
                fsync_dir(self.root)
            return True
        except StoreBusy:
            return False
        except (duckdb.Error, OSError) as exc:
            if quiet:
                return False
            raise StoreError(f"cannot write catalog {self.catalog_path}: {str(exc).splitlines()[0]}") from None
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)

    def _catalog_views(self) -> dict | None:
        """The views the catalog file holds (None when it is missing, unreadable or busy)."""
        import duckdb

        if not self.catalog_path.is_file():
            return None
        try:
            con = duckdb.connect(str(self.catalog_path), read_only=True)
        except duckdb.Error:
            return None
        try:
            return dict(con.execute("SELECT name, sql FROM _m5data_views").fetchall())
        except duckdb.Error:
            return None
        finally:
            con.close()

    def bad_parts(self) -> list[tuple[str, Path, str]]:
        """``(table, part, reason)`` for every part whose footer cannot be read."""
        out = []
        for name in TABLES:
            for part in self.parts(name):
                problem = part_problem(part)
                if problem is not None:
                    out.append((name, part, problem))
        return out

    def check_parts(self) -> None:
        """Open every part's footer; raise StoreError naming the first unreadable part."""
        for name, part, problem in self.bad_parts():
            raise CorruptPart(name, part, problem)


class _Vanished(Exception):
    """A part listed by a read was removed before it was opened (a compaction finished meanwhile)."""


class _StreamingWriter:
    def __init__(self, store: Store, spec: TableSpec):
        self.store = store
        self.spec = spec
        self.seq = next_seq()
        self.rows = 0
        self._current: PartWriter | None = None
        self._done: list[Path] = []

    def write(self, data: pa.Table | pa.RecordBatch | list[dict]) -> None:
        table = conform(self.spec, data)
        while True:  # a batch larger than the current part's room is cut: every part stays <= part_rows
            if self._current is None:
                self._current = PartWriter(self.store.table_dir(self.spec.name), self.spec, self.seq,
                                           self.store.compression)
            take = min(len(table), self.store.part_rows - self._current.rows)
            self._current.write(table.slice(0, take))  # an empty table still gives a part its schema
            self.rows += take
            table = table.slice(take)
            if self._current.rows >= self.store.part_rows:
                self._done.append(self._current.commit())
                self._current = None
            if not len(table):
                return

    def close(self) -> None:
        if self._current is not None:
            self._done.append(self._current.commit())
            self._current = None

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None
        for part in self._done:  # all or nothing: parts already published by this writer go too
            part.unlink(missing_ok=True)

"""The store: one folder of Parquet tables, content-addressed blobs and a DuckDB catalog of views.

Layout::

    <root>/store.json                  format marker (created by ``m5data init``)
    <root>/tables/<table>/part-*.parquet
    <root>/tables/<table>/_compacted   names of the parts the last compaction produced
    <root>/blobs/ab/<sha256>.<ext>
    <root>/derived/...                 frames, MFCC arrays, normalised images
    <root>/catalog.duckdb              views over the Parquet parts (derivable: deleting it loses nothing)

Writes append parts; reads see the latest row per key (see ``schema.py``). Single writer per table.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .blobs import BlobStore
from .parts import PART_GLOB, TMP_PREFIX, PartWriter, conform, content_hash, fsync_dir, next_seq
from .schema import SEQ_COLUMN, TABLES, TableSpec, duckdb_type, table_spec

STORE_FORMAT = 1
MARKER = "store.json"
CATALOG = "catalog.duckdb"
COMPACTED = "_compacted"


class StoreError(Exception):
    """A store that is missing or unusable; the message names the path."""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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

        Rows are upserted by the table's key (the newest write wins when read). Writing a batch
        identical to one already stored is a no-op. With ``if_absent`` only rows whose key is not
        yet in the table are written (e.g. a re-crawl must not reset a downloaded media row).
        """
        spec = table_spec(name)
        table = conform(spec, data)
        if if_absent and len(table):
            table = self._drop_existing(spec, table)
        if not len(table):
            return 0
        tag = content_hash(table)[:16]
        directory = self.table_dir(name)
        if any(p.name.endswith(f"-{tag}.parquet") for p in directory.glob(PART_GLOB)):
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

    def replace(self, name: str, data: pa.Table | list[dict]) -> int:
        """Make ``data`` the whole content of a table (used by global jobs: align, splits)."""
        spec = table_spec(name)
        table = conform(spec, data)
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
        return len(table)

    def _drop_existing(self, spec: TableSpec, table: pa.Table) -> pa.Table:
        if not self.parts(spec.name):
            return table
        con = self.connect()
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
        tmp = marker.with_name(TMP_PREFIX + COMPACTED)
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

    def compact(self, name: str) -> tuple[int, int]:
        """Merge a table's parts into deduplicated parts of ``part_rows`` rows; returns (parts before, after)."""
        spec = table_spec(name)
        directory = self.table_dir(name)
        for stale in directory.glob(TMP_PREFIX + "*"):
            stale.unlink(missing_ok=True)
        old = self.parts(name)
        if self.is_compacted(name):
            return len(old), len(old)
        con = self.connect()
        try:
            reader = con.sql(self.view_sql(spec)).to_arrow_reader(self.part_rows)
            new: list[Path] = []
            writer = None
            try:
                for batch in reader:
                    table = pa.Table.from_batches([batch]).cast(spec.schema)
                    # the reader's batch size is a hint, not a bound: cut parts at part_rows ourselves
                    while len(table):
                        if writer is None:
                            writer = PartWriter(directory, spec, next_seq(), self.compression)
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
                raise
        finally:
            con.close()
        self._mark_compacted(name, new)
        for part in old:
            part.unlink(missing_ok=True)
        self.refresh_catalog(quiet=True)
        return len(old), len(new)

    # ------------------------------------------------------------------ reading
    def view_sql(self, spec: TableSpec) -> str:
        """SQL of a table's view: the latest row per key over all parts."""
        cols = ", ".join(spec.schema.names)
        parts = self.parts(spec.name)
        if not parts:
            nulls = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in spec.schema)
            return f"SELECT {nulls} WHERE false"
        source = f"read_parquet({_sql_str(str(self.table_dir(spec.name) / PART_GLOB))}, union_by_name = true)"
        if self.is_compacted(spec.name):
            return f"SELECT {cols} FROM {source}"
        keys = ", ".join(spec.key)
        if spec.replace_by:
            group = ", ".join(spec.replace_by)
            return (
                f"SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) AS _rn, "
                f"max({SEQ_COLUMN}) OVER (PARTITION BY {group}) AS _gmax FROM {source}) "
                f"WHERE _rn = 1 AND {SEQ_COLUMN} = _gmax"
            )
        return f"SELECT {cols} FROM {source} QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) = 1"

    def connect(self):
        """An in-memory DuckDB connection with one view per table (no file lock on the catalog)."""
        import duckdb

        con = duckdb.connect()
        for spec in TABLES.values():
            con.execute(f"CREATE VIEW {spec.name} AS {self.view_sql(spec)}")
        return con

    def read(self, name: str, where: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """A table's current rows as Arrow (for small tables or filtered reads)."""
        spec = table_spec(name)
        con = self.connect()
        try:
            sql = f"SELECT {', '.join(columns) if columns else '*'} FROM {name}"
            if where:
                sql += f" WHERE {where}"
            result = con.sql(sql).to_arrow_table()
            return result.cast(spec.schema) if not columns else result
        finally:
            con.close()

    def count(self, name: str) -> int:
        con = self.connect()
        try:
            return con.execute(f"SELECT count(*) FROM {table_spec(name).name}").fetchone()[0]
        finally:
            con.close()

    # ------------------------------------------------------------------ catalog
    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    def refresh_catalog(self, quiet: bool = False) -> bool:
        """Make ``catalog.duckdb`` hold the current views; rebuild it when missing or corrupt.

        Writes only when a view changed, so reading the store leaves its files untouched.
        Returns False when the catalog was locked by another process (``quiet``) .
        """
        import duckdb

        wanted = {spec.name: self.view_sql(spec) for spec in TABLES.values()}
        if self.catalog_path.exists():
            try:
                con = duckdb.connect(str(self.catalog_path), read_only=True)
                try:
                    have = dict(con.execute("SELECT name, sql FROM _m5data_views").fetchall())
                finally:
                    con.close()
                if have == wanted:
                    return True
            except duckdb.IOException as exc:
                if "lock" in str(exc).lower():
                    if quiet:
                        return False
                    raise StoreError(f"catalog {self.catalog_path} is locked by another process: {exc}") from None
                self._drop_catalog()
            except duckdb.Error:
                self._drop_catalog()  # not a DuckDB file or an old layout: it is derivable, rebuild it
        try:
            con = duckdb.connect(str(self.catalog_path))
        except duckdb.Error as exc:
            if quiet:
                return False
            raise StoreError(f"cannot open catalog {self.catalog_path}: {exc}") from None
        try:
            con.execute("CREATE OR REPLACE TABLE _m5data_views (name VARCHAR, sql VARCHAR)")
            for name, sql in wanted.items():
                con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
                con.execute("INSERT INTO _m5data_views VALUES (?, ?)", [name, sql])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        return True

    def _drop_catalog(self) -> None:
        self.catalog_path.unlink(missing_ok=True)
        Path(str(self.catalog_path) + ".wal").unlink(missing_ok=True)

    def check_parts(self) -> None:
        """Open every part's footer; raise StoreError naming the first unreadable part."""
        for name in TABLES:
            for part in self.parts(name):
                try:
                    pq.ParquetFile(part).metadata
                except (pa.ArrowInvalid, OSError) as exc:
                    raise StoreError(f"corrupt Parquet part {part}: {exc}") from None


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
        if self._current is None:
            self._current = PartWriter(self.store.table_dir(self.spec.name), self.spec, self.seq, self.store.compression)
        self._current.write(table)
        self.rows += len(table)
        if self._current.rows >= self.store.part_rows:
            self._done.append(self._current.commit())
            self._current = None

    def write_many(self, batches: Iterable[pa.Table | pa.RecordBatch]) -> None:
        for batch in batches:
            self.write(batch)

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

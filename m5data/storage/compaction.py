"""Rewriting a table whole under its table lock: ``compact`` (merge parts, one row per key, each row
keeping its ``_seq``) and ``replace`` (new content); both record the parts they made in ``_compacted``."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from . import keyindex
from .errors import CorruptPart, StoreError
from .parts import OpenWrite, PartWriter, conform, fsync_dir, next_seq
from .reading import read_again, vanished
from .schema import SEQ_COLUMN, table_spec
from .temps import TMP_PREFIX, owner_pid, pid_alive, temp_name
from .views import newest_writes_sql, sql_str
from .writing import StreamingWriter

COMPACTED = "_compacted"


class Compaction:
    """The :class:`~m5data.storage.store.Store` methods that rewrite a table whole."""

    def replace(self, name: str, data: pa.Table | list[dict] | pa.RecordBatchReader) -> int:
        """Make ``data`` the whole content of a table (used by global jobs: align, splits).

        A ``RecordBatchReader`` is streamed into parts of at most ``part_rows`` rows (one write:
        all or nothing), so a large table is never held in memory.
        """
        spec = table_spec(name)
        if isinstance(data, pa.RecordBatchReader):
            with self.table_lock(name, f"replace {name}"):
                old = self.parts(name)
                stream = StreamingWriter(self, spec)
                try:
                    for batch in data:
                        stream.write(batch)
                    if not stream.rows:
                        stream.write(spec.schema.empty_table())
                    stream.close()
                except BaseException:
                    stream.abort()
                    raise
                self._swap_parts(name, old, stream._done)
            self.refresh_catalog(quiet=True)
            return stream.rows
        table = conform(spec, data)
        with self.table_lock(name, f"replace {name}"):
            old = self.parts(name)
            marker = OpenWrite(self.table_dir(name))  # new rows: readers of changes wait for them (parts.py)
            try:
                writer = PartWriter(self.table_dir(name), spec, next_seq(), self.compression)
                try:
                    writer.write(table)
                    new = writer.commit()
                except BaseException:
                    writer.abort()
                    raise
                self._swap_parts(name, old, [new])
            finally:
                marker.close()
        self.refresh_catalog(quiet=True)  # the table's view becomes a compacted one (the first, if it was empty)
        return len(table)

    def _newest_writes_sql(self, con, spec, parts: list[Path]) -> str | None:
        """The view's rows of ``parts`` (with ``_seq``) as each group's newest write, for a compaction
        (:func:`newest_writes_sql`); None where the layout does not allow it (the view's SQL is read then):
        with the group within the key and each part holding each key once (their sidecars)."""
        import duckdb

        if not set(spec.group) <= set(spec.key) or keyindex.plan(parts, spec).resolve:
            return None
        files = ", ".join(sql_str(str(p)) for p in parts)
        try:
            return newest_writes_sql(con, spec, f"read_parquet([{files}], union_by_name = true, filename = '_m5data_file')")
        except duckdb.Error as exc:  # a damaged part: one StoreError naming it
            raise self._explain(spec.name, exc) from None

    def _swap_parts(self, name: str, old: list[Path], new: list[Path]) -> None:
        """Publish a rewrite (under the table lock): ``new`` are the table's compacted parts, ``old`` go.

        The marker is written before the old parts are removed, so a crash in between leaves a table
        that reads the same (old and new rows, resolved by ``_seq``) and is merely not compacted.
        """
        self._mark_compacted(name, new)
        for part in old:
            part.unlink(missing_ok=True)
        keyindex.sweep(self.table_dir(name), self.parts(name))

    def _mark_compacted(self, name: str, parts: list[Path]) -> None:
        marker = self.table_dir(name) / COMPACTED
        tmp = marker.with_name(temp_name(prefix=TMP_PREFIX))
        tmp.write_text("\n".join(sorted(p.name for p in parts)) + "\n")
        os.replace(tmp, marker)
        fsync_dir(marker.parent)

    def is_compacted(self, name: str, parts: list[Path] | None = None) -> bool:
        """True when the table's parts (``parts``, as listed) are exactly those of its last compaction
        (no duplicates); an empty table is."""
        parts = self.parts(name) if parts is None else parts
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

            def merge() -> tuple[list[Path], list[Path] | None]:
                old = self.parts(name)
                return old, None if self.is_compacted(name) else self._merged(spec, directory, old)

            # DuckDB found none of the listed parts ("needs at least one file to read": seen under heavy
            # load beside a writer, 3 runs in 50 of tests/storage/test_storage_locks.py): list them again
            old, new = read_again(merge, StoreError, retry=lambda exc: not isinstance(exc, CorruptPart) and vanished(exc))
            if new is None:
                return len(old), len(old)
            self._swap_parts(name, old, new)
        self.refresh_catalog(quiet=True)
        return len(old), len(new)

    def _merged(self, spec, directory: Path, old: list[Path]) -> list[Path]:
        """The view's rows over the parts ``old`` written as new parts of ``part_rows`` rows, not yet
        published (:meth:`_swap_parts`); none are left behind when it fails."""
        # no view of any table: the parts are read by read_sql; a cursor of the process's read database,
        # whose tables (read_sql's, newest_writes_sql's) are TEMP: this cursor's own
        con = self.connect(need=(), only=(), cursor=True)
        try:
            sql = self._newest_writes_sql(con, spec, old) or self.read_sql(con, spec, parts=old, with_seq=True)
            reader = self._scan(con, spec, sql)
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
            return new
        finally:
            con.close()

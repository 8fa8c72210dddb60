"""Atomic Parquet parts: write to a temp file, fsync, rename. A reader never sees a half-written part."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import keyindex
from .schema import SEQ_COLUMN, TableSpec
from .temps import TMP_PREFIX, temp_name

PART_GLOB = "part-*.parquet"

_seq_lock = threading.Lock()
_last_seq = 0


def next_seq() -> int:
    """A strictly increasing write sequence number (nanoseconds since the epoch)."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


OPEN_SUFFIX = ".open"  # ``.tmp-<pid>-<random>.open``: a write in progress in this table folder


class OpenWrite:
    """A marker that a write is in progress in a table folder, made *before* the write takes its ``_seq``.

    A part's ``_seq`` is taken when its write starts, but the part is seen only when renamed into
    place (and a streaming write publishes parts for as long as it runs). A reader of changes
    (``changes.py``) must never move its watermark past the ``_seq`` of a write still in progress,
    or that write's rows would fall below it when they appear: it caps the watermark below the
    marker's time. The marker is a temp file named after its process, so a killed writer's marker
    counts as gone and is swept like its other temp files.
    """

    def __init__(self, directory: Path):
        self.path = directory / temp_name(OPEN_SUFFIX, prefix=TMP_PREFIX)
        self.path.touch()

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def content_hash(table: pa.Table) -> str:
    """sha256 of a table's Arrow IPC stream: equal rows in equal order give equal hashes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def conform(spec: TableSpec, data: pa.Table | pa.RecordBatch | list[dict]) -> pa.Table:
    """Cast rows to the table's schema: unknown columns are an error, missing ones become nulls."""
    if isinstance(data, list):
        unknown = {k for row in data for k in row} - set(spec.schema.names)
        if unknown:
            raise ValueError(f"table {spec.name}: unknown columns {sorted(unknown)}")
        nullable = pa.schema([f.with_nullable(True) for f in spec.schema])
        try:
            data = pa.Table.from_pylist(data, schema=nullable)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValueError(f"table {spec.name}: {exc}") from None
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    unknown = set(data.schema.names) - set(spec.schema.names)
    if unknown:
        raise ValueError(f"table {spec.name}: unknown columns {sorted(unknown)}")
    columns = []
    for field in spec.schema:
        if field.name in data.schema.names:
            col = data.column(field.name)
            if col.type != field.type:
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(f"table {spec.name}: column {field.name}: {exc}") from None
            columns.append(col)
        else:
            columns.append(pa.nulls(len(data), field.type))
    for field, col in zip(spec.schema, columns):
        if not field.nullable and col.null_count:
            raise ValueError(f"table {spec.name}: key column {field.name} has null values")
    return pa.Table.from_arrays(columns, schema=spec.schema)


def with_seq(table: pa.Table, seq: int) -> pa.Table:
    return table.append_column(SEQ_COLUMN, pa.array(np.full(len(table), seq, dtype=np.int64)))


def part_metadata(spec: TableSpec) -> dict[bytes, bytes]:
    return {b"m5data.table": spec.name.encode(), b"m5data.schema_version": str(spec.version).encode()}


class PartWriter:
    """Streams record batches into one part file and publishes it atomically on ``commit``.

    Args:
        directory: the table's folder.
        spec: the table.
        seq: the write sequence stamped on every row, and the part's place in the name order.
        compression: Parquet codec.
        tag: extra text in the part name (a content hash, to make identical writes idempotent).
        keep_seq: rows come with their own ``_seq`` column (compaction: a row keeps the identity of
            the write that made it, so reads resolve "latest write" exactly as before compacting).
    """

    def __init__(self, directory: Path, spec: TableSpec, seq: int, compression: str = "zstd", tag: str | None = None,
                 keep_seq: bool = False):
        self.directory = directory
        self.spec = spec
        self.seq = seq
        self.keep_seq = keep_seq
        self.rows = 0
        self.final = directory / f"part-{seq:020d}-{tag or uuid.uuid4().hex[:16]}.parquet"
        # the temp name carries this process's id: a sweeper removes it only once this process is dead
        self.tmp = directory / temp_name(".parquet", prefix=TMP_PREFIX)
        schema = spec.schema.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False))
        schema = schema.with_metadata(part_metadata(spec))
        self._writer = pq.ParquetWriter(
            self.tmp, schema, compression=None if compression == "none" else compression
        )
        self._schema = schema

    def write(self, table: pa.Table) -> None:
        if not self.keep_seq:
            table = with_seq(table, self.seq)
        self._writer.write_table(table.cast(self._schema))
        self.rows += len(table)

    def commit(self) -> Path:
        self._writer.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.final)
        fsync_dir(self.directory)
        keyindex.index(self.final, self.spec)  # its key sidecar, for its readers (keyindex.py)
        return self.final

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


class PartStream:
    """One write cut into parts of at most ``store.part_rows`` rows, published all or nothing.

    The folder store's stream and the object store's share the cutting; each says how a part is
    opened (``_open``), finished (``_finish``: its name) and how incoming rows are cast (``_rows``).
    """

    def __init__(self, store, spec: TableSpec):
        self.store = store
        self.spec = spec
        self.rows = 0
        self._current = None
        self._done: list = []

    def _open(self):
        raise NotImplementedError

    def _finish(self, part):
        raise NotImplementedError

    def _rows(self, data) -> pa.Table:
        return conform(self.spec, data)

    def write(self, data: pa.Table | pa.RecordBatch | list[dict]) -> None:
        table = self._rows(data)
        while True:  # a batch larger than the current part's room is cut: every part stays <= part_rows
            if self._current is None:
                self._current = self._open()
            take = min(len(table), self.store.part_rows - self._current.rows)
            self._current.write(table.slice(0, take))  # an empty table still gives a part its schema
            self.rows += take
            table = table.slice(take)
            if self._current.rows >= self.store.part_rows:
                self._done.append(self._finish(self._current))
                self._current = None
            if not len(table):
                return

    def _close_current(self) -> None:
        if self._current is not None:
            self._done.append(self._finish(self._current))
            self._current = None

    def _abort_current(self) -> None:
        if self._current is not None:
            self._current.abort()
            self._current = None

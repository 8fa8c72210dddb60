"""Parts of a table on object storage: Parquet streamed straight to an object, which appears whole
when its upload completes and is a row of nothing until a log entry names it (``commitlog.py``)."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from .logstate import FROM_FILE
from .parts import PartStream, conform, part_metadata, with_seq
from .schema import SEQ_COLUMN, TableSpec

if TYPE_CHECKING:
    from .s3store import S3Store


def _part_name() -> str:
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:16]}.parquet"


class ObjectPart:
    """One Parquet part streamed to an object; it exists whole once closed, and is a row of nothing
    until a log entry names it."""

    def __init__(self, store: S3Store, spec: TableSpec, keep_seq: bool = False):
        self.store, self.keep_seq = store, keep_seq
        self.name = _part_name()
        self.rel = f"tables/{spec.name}/{self.name}"
        self.rows = 0
        self._schema = spec.schema.append(pa.field(SEQ_COLUMN, pa.int64(), nullable=False)).with_metadata(
            part_metadata(spec))
        self._fh = store.objects.open_write(self.rel)
        codec = None if store.compression == "none" else store.compression
        self._writer = pq.ParquetWriter(self._fh, self._schema, compression=codec)

    def write(self, table: pa.Table) -> None:
        # the log gives a write's rows their _seq; a compaction's rows keep theirs
        self._writer.write_table((table if self.keep_seq else with_seq(table, FROM_FILE)).cast(self._schema))
        self.rows += len(table)

    def close(self) -> str:
        self._writer.close()
        with self.store.objects.explained(self.rel):
            self._fh.close()
        return self.name

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._fh.discard()  # s3fs: abort the multipart upload; nothing appears


class ObjectStream(PartStream):
    """A streaming write to object storage: parts of at most ``part_rows`` rows, one log entry at close."""

    def __init__(self, store: S3Store, spec: TableSpec, keep_seq: bool = False):
        super().__init__(store, spec)
        self.keep_seq = keep_seq

    def _open(self) -> ObjectPart:
        return ObjectPart(self.store, self.spec, self.keep_seq)

    def _finish(self, part: ObjectPart) -> str:
        return part.close()

    def _rows(self, data) -> pa.Table:
        return data if self.keep_seq else conform(self.spec, data)

    def close(self) -> list[str]:
        self._close_current()
        return self._done

    def abort(self) -> None:
        self._abort_current()
        self.store.objects.delete([f"tables/{self.spec.name}/{n}" for n in self._done])  # all or nothing
        self._done = []


class StreamHandle:
    """What ``S3Store.writer`` yields: ``write(batch)`` as many times as needed; committed on exit."""

    def __init__(self, stream: ObjectStream):
        self._stream = stream

    @property
    def rows(self) -> int:
        return self._stream.rows

    def write(self, data) -> None:
        self._stream.write(data)

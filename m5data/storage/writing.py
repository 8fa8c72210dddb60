"""Appending rows to a table: one atomic part per write, or a stream of parts of at most ``part_rows``
rows published all or nothing. Appends need no lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from .incoming import incoming
from .parts import OpenWrite, PartStream, PartWriter, next_seq
from .schema import TableSpec, table_spec

if TYPE_CHECKING:
    from .store import Store


class Writing:
    """The :class:`~m5data.storage.store.Store` methods that append rows."""

    def write(self, name: str, data: pa.Table | pa.RecordBatch | list[dict], *, if_absent: bool = False) -> int:
        """Append rows to a table atomically; returns the number of rows written.

        Rows are upserted by the table's key (the newest write wins when read); one write holds each
        key once. Writing a batch identical to the table's newest write is a no-op (a retried write
        stores nothing twice). With ``if_absent`` only rows whose key is not yet in the table are
        written (e.g. a re-crawl must not reset a downloaded media row).
        """
        if (rows := incoming(self, name, data, if_absent)) is None:
            return 0
        spec, table, tag = rows
        directory = self.table_dir(name)
        parts = self.parts(name)
        # a repeat of the newest write changes nothing; a repeat of an older one is a new write (it wins)
        if parts and parts[-1].name.endswith(f"-{tag}.parquet"):
            return 0
        # The catalog's view of a compacted table reads its parts without the window: wrong once a part
        # is added, so the write that adds it refreshes the catalog (a failure to write the catalog
        # fails no write: ``m5data doctor`` reports a stale one).
        new_view = bool(parts) and self.is_compacted(name, parts)
        marker = OpenWrite(directory)  # before the _seq: a reader of changes waits for this write (parts.py)
        try:
            writer = PartWriter(directory, spec, next_seq(), self.compression, tag)
            try:
                writer.write(table)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        finally:
            marker.close()
        if new_view:
            self.refresh_catalog(quiet=True)
        return len(table)

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[StreamingWriter]:
        """Stream many batches into parts of at most ``part_rows`` rows; nothing is published on error."""
        parts = self.parts(name)
        new_view = bool(parts) and self.is_compacted(name, parts)  # the catalog's view changes (see write())
        stream = StreamingWriter(self, table_spec(name))
        try:
            yield stream
        except BaseException:
            stream.abort()
            raise
        stream.close()
        if new_view and stream.rows:
            self.refresh_catalog(quiet=True)


class StreamingWriter(PartStream):
    """Parts of at most ``part_rows`` rows of one write (one ``_seq``); ``abort`` removes every part it published."""

    def __init__(self, store: Store, spec: TableSpec, directory: Path | None = None):
        super().__init__(store, spec)
        self._marker = OpenWrite(store.table_dir(spec.name))  # held until close/abort (parts.py)
        self.seq = next_seq()
        self.directory = store.table_dir(spec.name) if directory is None else directory  # groups.py: elsewhere

    def _open(self) -> PartWriter:
        return PartWriter(self.directory, self.spec, self.seq, self.store.compression)

    def _finish(self, part: PartWriter) -> Path:
        return part.commit()

    def close(self) -> None:
        try:
            self._close_current()
        finally:
            self._marker.close()

    def abort(self) -> None:
        try:
            self._abort_current()
            for part in self._done:  # all or nothing: parts already published by this writer go too
                part.unlink(missing_ok=True)
        finally:
            self._marker.close()

"""What changed in a table since a stage last completed, read from the store itself.

Every row carries the ``_seq`` of the write that made it (a crawl, an import, a stage's write: any
write through the store API). Two questions answer "what is new since last time":

- ``store.watermark(table)``: a ``_seq`` such that every write at or below it is committed and
  visible. A stage reads it *before* it reads the table and keeps it when it completes
  (:func:`save_state`); the next run asks for what lies above it.
- ``store.changed(table, since)``: the groups (the key; a ``replace_by`` table's group, a product's
  spec rows) whose newest row has ``_seq > since``, each with ``is_new`` (no row of it at or below
  ``since``: new, else re-written).

**The folder store's clock.** There ``_seq`` is the time a write *started* (``parts.next_seq``), but
its part is seen only once renamed into place, and a streaming write publishes parts for as long as
it runs. A watermark taken as "the highest ``_seq`` seen" would pass a write that started before
and commits after, and its rows would then lie below the watermark forever. So every write holds an
open-write marker (``parts.OpenWrite``) from before it takes its ``_seq`` until its last part is
published, and the watermark is the smallest of: the highest part ``_seq`` listed, the clock read
before listing, and (less a margin for the file system's coarse timestamps) the time of the oldest
marker of a live writer. A write that starts after the clock was read takes a larger ``_seq``; one
that started before either has its marker listed (the watermark stays below it) or has committed.
This assumes one machine's clock (the folder store's order assumes it too) and never steps back by
more than :data:`CLOCK_MARGIN_NS`. A watermark held low only makes the next run see some rows again.

**Cheap.** A part's name carries its ``_seq`` (a compaction's part the ``_seq`` it was made at, above
the rows it keeps), so a part named at or below ``since`` holds nothing newer and is not read; whether
a changed group was seen before comes from the old parts' key sidecars (``keyindex.py``).

**On object storage** ``_seq`` is the commit log's entry number, given at commit: the watermark is
the newest entry (no write is in flight below it), and ``changed`` reads every part through the log.

A stage's last complete state (the watermarks it read): ``stage_state.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import keyindex
from .parts import OPEN_SUFFIX
from .reading import read_again
from .schema import SEQ_COLUMN, table_spec
from .stage_state import load_state, save_state, state_file, unchanged_since, watermarks  # re-exported
from .temps import TMP_PREFIX, owner_pid, pid_alive
from .views import sql_str

CLOCK_MARGIN_NS = 1_000_000_000  # ns a marker's file time may lag the clock a _seq is read from


def part_seq(part) -> int:
    """The ``_seq`` in a part's name (``part-<seq>-<tag>.parquet``)."""
    return int(Path(str(part)).name.split("-")[1])


def open_writes_bound(directory: Path) -> int | None:
    """The time (ns) below which every live write in progress in ``directory`` took its ``_seq``."""
    bound = None
    for marker in directory.glob(f"{TMP_PREFIX}*{OPEN_SUFFIX}"):
        pid = owner_pid(marker.name)
        if pid is None or not pid_alive(pid):
            continue  # a killed writer publishes nothing more
        try:
            t = marker.stat().st_mtime_ns - CLOCK_MARGIN_NS
        except FileNotFoundError:
            continue  # committed meanwhile: its parts are listed below
        bound = t if bound is None else min(bound, t)
    return bound


def changed_sql(spec, source: str, since: int, columns: tuple[str, ...] = ()) -> str:
    """Per group of ``source`` (rows with ``_seq``) written above ``since``: ``_seen`` (a row at or below it), ``_h``,
    and ``columns`` of its newest row (:func:`check_columns`)."""
    group, h = ", ".join(spec.group), keyindex.group_hash_sql(spec)
    values = "".join(f", arg_max({c}, {SEQ_COLUMN}) AS {c}" for c in check_columns(spec, columns))
    return (f"SELECT {group}, bool_or({SEQ_COLUMN} <= {int(since)}) AS _seen, {h} AS _h{values} FROM {source} "
            f"GROUP BY ALL HAVING max({SEQ_COLUMN}) > {int(since)} ORDER BY {group}")


def check_columns(spec, columns) -> tuple[str, ...]:
    """``columns`` of ``changed``: a table's own columns, outside its key; only where a group is one key (one
    row: its newest), never a ``replace_by`` table's group of rows."""
    columns = tuple(columns)
    if columns and tuple(spec.group) != tuple(spec.key):
        raise ValueError(f"changed({spec.name!r}, columns=...): a group of {spec.name} is several rows")
    bad = [c for c in columns if c not in spec.schema.names or c in spec.key]
    if bad:
        raise ValueError(f"changed({spec.name!r}, columns=...): not a value column of {spec.name}: {', '.join(bad)}")
    return columns


def as_changed(spec, out: pa.Table, seen: np.ndarray | None = None, columns: tuple[str, ...] = ()) -> pa.Table:
    """:func:`changed_sql`'s rows as ``changed``'s answer: the group columns, ``columns`` and ``is_new``."""
    if seen is None:
        seen = np.asarray(out.column("_seen").to_numpy(zero_copy_only=False), dtype=bool)
    out = out.select(list(spec.group) + list(columns))
    if columns:  # as the table's schema says (an empty answer, a null column)
        out = out.cast(pa.schema([spec.schema.field(c) for c in out.column_names]))
    return out.append_column("is_new", pa.array(~seen))


class Changes:
    """The folder :class:`~m5data.storage.store.Store`'s ``watermark`` and ``changed``."""

    def watermark(self, name: str) -> int:
        """A ``_seq`` at or below which every write of table ``name`` is committed and visible (0: none)."""
        directory = self.table_dir(name)
        now = time.time_ns()  # first: a write that starts after this takes a larger _seq
        bound = open_writes_bound(directory)
        parts = self.parts(name)
        top = max((part_seq(p) for p in parts), default=0)
        mark = min(top, now) if bound is None else min(top, now, bound)
        return max(mark, 0)

    def changed(self, name: str, since: int, columns: tuple[str, ...] = (), new: bool = True) -> pa.Table:
        """The groups of table ``name`` written above ``since``, with ``is_new`` (none of their rows at or below it).

        ``columns``: also these columns of each group's newest row (a table whose group is its key: the
        row as a read of the table gives it now), read from the parts written above ``since`` only.
        ``new`` False: ``is_new`` is not looked up in the older parts' key sidecars (a caller that needs
        only which groups changed; ``is_new`` then says only that no part written since holds an older row).
        """
        import duckdb

        spec = table_spec(name)
        check_columns(spec, columns)

        def once() -> tuple[list, pa.Table | None]:  # a compaction may remove listed parts before they are read
            parts = self.parts(name)
            recent = [p for p in parts if part_seq(p) > since]
            if not recent:
                return parts, None
            files = "[" + ", ".join(sql_str(str(p)) for p in recent) + "]"
            # a cursor on the process's read database (~1 ms; a new database costs 15-30 ms)
            con = self.connect(need=(), only=(), cursor=True)
            try:
                return parts, con.sql(changed_sql(spec, f"read_parquet({files}, union_by_name = true)", since,
                                                  columns)).to_arrow_table()
            finally:
                con.close()

        parts, out = read_again(once, duckdb.Error, explain=lambda exc: self._explain(spec.name, exc))
        if out is None:
            return empty_changed(spec, columns)
        old = [p for p in parts if part_seq(p) <= since] if new else []
        seen = np.asarray(out.column("_seen").to_numpy(zero_copy_only=False), dtype=bool)
        if old and len(out):
            hashes = np.asarray(out.column("_h").to_numpy(), dtype=np.uint64)
            # a hash lookup (np.isin sorts both: 0.25 s for 1,100 changed products of 100k)
            seen |= keyindex.held(old, spec, hashes)
        return as_changed(spec, out, seen, columns)


def empty_changed(spec, columns: tuple[str, ...] = ()) -> pa.Table:
    fields = [spec.schema.field(c) for c in (*spec.group, *columns)] + [pa.field("is_new", pa.bool_())]
    return pa.schema(fields).empty_table()


def changed_counts(changed: pa.Table, total: int) -> dict[str, int]:
    """``{"new", "changed", "unchanged"}`` from :meth:`changed`'s rows and the groups a table holds now."""
    new = int(np.count_nonzero(changed.column("is_new").to_numpy(zero_copy_only=False))) if len(changed) else 0
    return {"new": new, "changed": len(changed) - new, "unchanged": max(total - len(changed), 0)}


def product_changes(store, state: dict | None) -> dict[str, int]:
    """New, changed and unchanged products since ``state`` (a stage's last complete run; all new without one)."""
    since = int((state or {}).get("watermarks", {}).get("products", 0))
    return changed_counts(store.changed("products", since), store.count("products"))


__all__ = ["CLOCK_MARGIN_NS", "Changes", "changed_counts", "load_state", "part_seq", "product_changes",
           "save_state", "state_file", "unchanged_since", "watermarks"]

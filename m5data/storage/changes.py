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
from .reading import read_again, vanished
from .schema import SEQ_COLUMN, table_spec
from .stage_state import load_state, save_state, state_file, unchanged_since, watermarks  # re-exported
from .temps import TMP_PREFIX, owner_pid, pid_alive
from .views import sql_str, window_sql

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
            seen |= _held(old, spec, hashes)
        return as_changed(spec, out, seen, columns)


    def count_grown(self, name: str, before: int, counted: list[str]) -> tuple[int, list[str]] | None:
        """The rows of table ``name``'s view now, from ``before``, its rows over the parts ``counted``
        (:meth:`count_parts`), and the parts written since: for a table whose group is its key, one
        row per group of those parts that no counted part holds (their key sidecars' hashes); for
        another (splits: a version's rows; pools: a query's), each group of the new parts moves the
        count from its rows before to its rows now (:func:`_rows_moved`, from the sidecars), or, with
        older sidecars, the new parts' rows by :meth:`_count_newest_writes` when every group of theirs
        is new. With the parts it counted. None where it cannot tell (a counted part gone, as after a
        compaction; a re-written group and sidecars without each group's rows): count again. Rows are never removed from a table, so a group once seen stays one row or more.
        A new group whose 64-bit hash an old group shares would be missed (about one run in 10^7 at a
        million groups)."""
        import duckdb

        spec = table_spec(name)
        parts = self.parts(name)
        kept = set(counted)
        if not kept <= {p.name for p in parts}:
            return None
        new = [p for p in parts if p.name not in kept]
        if not new:
            return before, list(counted)
        names = list(counted) + [p.name for p in new]
        hashes = _new_groups(self, spec, new)
        old = [p for p in parts if p.name in kept]
        seen = int(np.count_nonzero(_held(old, spec, hashes))) if old and len(hashes) else 0
        if tuple(spec.group) == tuple(spec.key):
            return before + len(hashes) - seen, names
        moved = _rows_moved(old, new, spec)  # a group written again: its rows before and after, by the sidecars
        if moved is not None:
            return before + moved, names
        if seen:
            return None
        try:
            rows = self._count_newest_writes(spec, new)
        except duckdb.Error as exc:
            raise self._explain(spec.name, exc) from None
        return None if rows is None else (before + rows, names)


    def group_parts(self, name: str, groups: pa.Table) -> list[Path]:
        """The parts of table ``name`` that may hold rows of ``groups`` (a table of its group columns):
        those whose key sidecar holds one of their hashes (a hash collision only adds a part). Every
        row of those groups lies in them, so a read of just these parts (``read_sql(parts=...)``)
        filtered to the groups gives the view's rows of them."""

        spec = table_spec(name)
        if not groups.num_rows:
            return []
        con = self.connect(need=(), only=(), cursor=True)  # a cursor (~1 ms), not a new database (~25 ms)
        try:
            con.register("_m5data_groups", groups.select(list(spec.group)).cast(
                pa.schema([spec.schema.field(c) for c in spec.group])))
            hashes = np.asarray(con.execute(f"SELECT {keyindex.group_hash_sql(spec)} AS h FROM _m5data_groups"
                                            ).fetchnumpy()["h"], dtype=np.uint64)
        finally:
            con.close()
        hashes = np.unique(hashes)
        out = []
        for part, keys in keyindex.parts_keys(self.parts(name), spec):
            if keys is None:  # unreadable: its read names it
                out.append(part)
                continue
            if keys.find(hashes)[0].any():
                out.append(part)
        return out


    def read_groups(self, name: str, values: list) -> pa.Table:
        """The rows the view of table ``name`` holds for the groups ``values`` (of a table whose group is
        one column), read from only the parts that hold them (:meth:`group_parts`) with the group's
        filter pushed into the Parquet reads: per group the rows of its newest write, each key once,
        as a read of the view filtered to those groups gives them (the gallery's few products: no scan
        of every part and no window over their rows)."""
        import duckdb
        import pyarrow.parquet as pq

        spec = table_spec(name)
        if len(spec.group) != 1:
            raise ValueError(f"read_groups({name!r}): its group is {len(spec.group)} columns")
        column = spec.group[0]
        values = list(dict.fromkeys(values))
        parts = self.group_parts(name, pa.table({column: pa.array(values, spec.schema.field(column).type)}))
        if not parts:
            return spec.schema.empty_table()
        files = ", ".join(sql_str(str(p)) for p in parts)
        present = set().union(*(pq.read_schema(p).names for p in parts))
        cols = ", ".join(c if c in present else f"NULL AS {c}" for c in spec.schema.names)  # older parts may lack one
        keys = ", ".join(spec.key)
        con = self.connect(need=(), only=(), cursor=True)  # a cursor of its own: its registered groups are its own
        try:
            con.register("_m5data_groups", pa.table({column: pa.array(values, spec.schema.field(column).type)}))
            out = con.sql(f"SELECT {cols} FROM (SELECT * FROM read_parquet([{files}], union_by_name = true) "
                          f"WHERE {column} IN (SELECT {column} FROM _m5data_groups)) "
                          f"QUALIFY {SEQ_COLUMN} = max({SEQ_COLUMN}) OVER (PARTITION BY {column}) "
                          f"AND row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) = 1").to_arrow_table()
        except duckdb.Error as exc:
            raise self._explain(spec.name, exc) from None
        finally:
            con.close()
        return out.cast(spec.schema)


    def read_of(self, name: str, column: str, values: pa.Array) -> pa.Table:
        """The rows the view of table ``name`` (whose group is one column) holds whose ``column`` is one
        of ``values``, as a read of the view with that filter gives them, but with the filter ahead of
        the view's newest-row window: the groups that have such a row in some part, then the rows of
        their newest writes, then the filter again (a group's newest row may name another value). The
        window sorts those groups' rows, not the table's: the main images of the 1,111 changed
        products of the 100k replay, a filter of media by ``product_id`` (not its group), 0.07 CPU s
        against 0.19 for a connection with the media view and its read."""
        import duckdb
        import pyarrow.parquet as pq

        spec = table_spec(name)
        if len(spec.group) != 1:
            raise ValueError(f"read_of({name!r}): its group is {len(spec.group)} columns")
        group = spec.group[0]

        def once() -> pa.Table:  # a compaction may remove listed parts before they are read
            parts = self.parts(name)
            if not parts:
                return spec.schema.empty_table()
            present = set().union(*(pq.read_schema(p).names for p in parts))  # OSError: a part is gone
            cols = ", ".join(c if c in present else f"NULL AS {c}" for c in spec.schema.names)
            source = f"read_parquet({'[' + ', '.join(sql_str(str(p)) for p in parts) + ']'}, union_by_name = true)"
            wanted = f"{column} IN (SELECT v FROM _m5data_of)"
            rows = f"(SELECT * FROM {source} WHERE {group} IN (SELECT {group} FROM {source} WHERE {wanted}))"
            con = self.connect(need=(), only=(), cursor=True)  # a cursor of its own: its table is its own
            try:
                con.register("_m5data_of", pa.table({"v": values.cast(spec.schema.field(column).type)}))
                return con.sql(f"SELECT * FROM ({window_sql(spec, rows, cols)}) WHERE {wanted}").to_arrow_table()
            finally:
                con.close()

        # a part gone before its schema was read (an OSError) or before DuckDB read it
        return read_again(once, (OSError, duckdb.Error), retry=lambda exc: isinstance(exc, OSError) or vanished(exc),
                          explain=lambda exc: exc if isinstance(exc, OSError) else self._explain(spec.name, exc)
                          ).cast(spec.schema)


def _new_groups(store, spec, new: list[Path]) -> np.ndarray:
    """The distinct group hashes of the parts ``new``: from their key sidecars (their writers made them),
    else read (a part without a readable sidecar: its read names it when it cannot be read)."""
    import duckdb

    known = keyindex.parts_keys(new, spec)
    if all(k is not None for _, k in known):
        every = [k.hashes for _, k in known]
        return np.unique(np.concatenate(every)) if len(every) > 1 else every[0]
    files = "[" + ", ".join(sql_str(str(p)) for p in new) + "]"
    con = store.connect(need=(), only=(), cursor=True)
    try:
        hashes = con.execute(f"SELECT {keyindex.group_hash_sql(spec)} AS h FROM (SELECT DISTINCT "
                             f"{', '.join(spec.group)} FROM read_parquet({files}, union_by_name = true))"
                             ).fetchnumpy()["h"]
    except duckdb.Error as exc:
        raise store._explain(spec.name, exc) from None
    finally:
        con.close()
    return np.asarray(hashes, dtype=np.uint64)


def _held(parts: list[Path], spec, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` (group hashes) a group of ``parts`` has, from their key sidecars (made where
    missing): each sidecar's sorted hashes searched (no set of every old hash built: 0.4 -> 0.05 s for
    the 11k changed products of 1M, against 12.7 million spec rows' sidecars)."""
    found = np.zeros(len(hashes), dtype=bool)
    for _, keys in keyindex.parts_keys(parts, spec):
        if keys is not None:
            found |= keys.find(hashes)[0]
    return found


def _rows_moved(old: list[Path], new: list[Path], spec) -> int | None:
    """How many rows the view of a table gains from the parts ``new`` over its rows in ``old`` (every
    part of the table besides): for each group of ``new``, the rows of its newest write over all parts,
    less those over ``old`` alone, each group's rows and ``_seq`` per part from the key sidecars (a
    write's rows of a group in two parts are summed). None where a sidecar cannot tell (an older one
    without them, a part holding a key twice): count again. 7,500 pools written again at 100k products:
    a lookup in 15 sidecars, where counting the view's rows read 8.7 million stored rows (0.2-0.3 s)."""
    if not set(spec.group) <= set(spec.key):  # the view's rows are not each group's newest write then
        return None
    known = keyindex.parts_keys(old + new, spec)
    if any(k is None or not k.unique or k.counts is None or k.seqs is None for _, k in known):
        return None
    fresh = [k.hashes for _, k in known[len(old):]]
    groups = np.unique(np.concatenate(fresh)) if fresh else np.zeros(0, np.uint64)
    if not len(groups):
        return 0

    def newest_rows(keys: list) -> int:
        at_group, seqs, counts = [], [], []
        for k in keys:
            hit, at = k.find(groups)
            at_group.append(np.flatnonzero(hit))
            seqs.append(k.seqs[at[hit]])
            counts.append(k.counts[at[hit]])
        if not at_group:
            return 0
        g, s, n = np.concatenate(at_group), np.concatenate(seqs), np.concatenate(counts)
        best = np.full(len(groups), np.iinfo(np.int64).min, np.int64)
        np.maximum.at(best, g, s)
        return int(n[s == best[g]].sum())

    keys = [k for _, k in known]
    return newest_rows(keys) - newest_rows(keys[:len(old)])


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

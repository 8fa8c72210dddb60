"""The SQL of a table's view: the latest row per key over its Parquet parts.

:meth:`TableViews.view_sql` is the catalog's view (a glob with a window); :meth:`TableViews.read_sql`
gives the same rows to this process's reads, sending through the window only the key groups that
more than one part holds (see ``keyindex.py``).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from . import keyindex
from .parts import PART_GLOB
from .schema import SEQ_COLUMN, TableSpec, duckdb_type

# Up to these rows in its parts a table is read through the window as it is (see ``read_sql``)
SMALL_TABLE_ROWS = 50_000


def sql_str(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def _files_sql(parts: list[Path]) -> str:
    return "[" + ", ".join(sql_str(str(p)) for p in parts) + "]"


def window_sql(spec: TableSpec, source: str, cols: str) -> str:
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


def _newest_write_sql(spec: TableSpec, source: str, cols: str, plain_files: str) -> str:
    """:func:`window_sql`'s rows of ``source`` (rows with ``_m5data_file``), most without its window.

    Where the group is within the key (a ``replace_by`` group, or the key itself), the window keeps,
    per group, the rows of its newest write, one a key. A group whose newest write lies in one part
    known to hold each key once (``plain_files``) is those rows as they are: found by the group's
    newest ``_seq`` (an aggregate and a join: 0.4 s where the window took 26 s over 13.7 million
    pool rows of which 5 million are live). Only the other groups (a write's rows of a group in two
    parts, a part not planned or holding a key twice) go through the window.
    """
    if not set(spec.group) <= set(spec.key):
        return window_sql(spec, source, cols)
    group = ", ".join(spec.group)
    on = " AND ".join(f"r.{c} IS NOT DISTINCT FROM g.{c}" for c in spec.group)
    newest = (f"(SELECT r.* FROM {source} r JOIN (SELECT {group}, max({SEQ_COLUMN}) AS _gmax FROM {source} GROUP BY ALL) g "
              f"ON {on} AND r.{SEQ_COLUMN} = g._gmax)")
    whole = (f"(SELECT {group} FROM {newest} GROUP BY ALL HAVING min(_m5data_file) = max(_m5data_file) "
             f"AND bool_and(list_contains({plain_files}, _m5data_file)))")
    on_whole = " AND ".join(f"n.{c} IS NOT DISTINCT FROM w.{c}" for c in spec.group)
    keys = ", ".join(spec.key)
    return (f"SELECT {cols} FROM {newest} n SEMI JOIN {whole} w ON {on_whole} UNION ALL "
            f"SELECT {cols} FROM {newest} n ANTI JOIN {whole} w ON {on_whole} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {SEQ_COLUMN} DESC) = 1")


def null_columns(spec: TableSpec) -> str:
    """The table's columns as typed NULLs (a view that has its columns but no rows)."""
    return ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in spec.schema)


def newest_writes_sql(con, spec, source: str, keys_once: bool = True) -> str:
    """SQL of the rows of ``source`` (every row of a table's parts, with ``_seq`` and ``_m5data_file``)
    that its view holds, with ``_seq``, for a table whose group is within its key: per group, the rows of
    its newest write (:func:`_newest_write_sql`): a compaction's merge on either backend.

    Found by a join with each group's newest ``_seq``, held in a table of ``con`` (a few rows a group),
    rather than by the view's SQL, which plans that aggregate into its joins again and again: 13.7
    million pool rows of which 5 million live, 0.7 CPU s and 0.5 GiB against 5.9 s and 3.2 GiB. A group
    whose newest write lies in two parts (a write cut into parts) may hold a key in both, and without
    ``keys_once`` (no sidecars say each part holds each key once) so may one whose newest write holds a
    key twice: those groups' rows alone go through the window.
    """
    group = ", ".join(spec.group)
    on = " AND ".join(f"r.{c} IS NOT DISTINCT FROM g.{c}" for c in spec.group)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _m5data_newest AS SELECT {group}, max({SEQ_COLUMN}) AS _gmax "
                f"FROM {source} GROUP BY ALL")
    newest = f"FROM {source} r SEMI JOIN _m5data_newest g ON {on} AND r.{SEQ_COLUMN} = g._gmax"
    r_group = ", ".join(f"r.{c}" for c in spec.group)
    keys = ", ".join(f"r.{c}" for c in spec.key)
    twice = "" if keys_once else f" OR count(*) <> count(DISTINCT hash({keys}))"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _m5data_split AS SELECT {r_group} {newest} "
                f"GROUP BY ALL HAVING min(r._m5data_file) <> max(r._m5data_file){twice}")
    cols = ", ".join(f"r.{c}" for c in [*spec.schema.names, SEQ_COLUMN])
    split_on = " AND ".join(f"r.{c} IS NOT DISTINCT FROM x.{c}" for c in spec.group)
    return (f"SELECT {cols} {newest} ANTI JOIN _m5data_split x ON {split_on} UNION ALL "
            f"SELECT {cols} {newest} SEMI JOIN _m5data_split x ON {split_on} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY r.{SEQ_COLUMN} DESC) = 1")


def error_view_sql(spec: TableSpec, message: str) -> str:
    """A view with the table's columns that raises ``message`` when read (DESCRIBE still works)."""
    return f"SELECT {null_columns(spec)} FROM range(1) WHERE error({sql_str(message)}) IS NULL"


class TableViews:
    """The :class:`~m5data.storage.store.Store` methods that write a table's view SQL."""

    def view_sql(self, spec: TableSpec, parts: list[Path] | None = None, with_seq: bool = False,
                 root_sql: str | None = None) -> str:
        """SQL of a table's view: the latest row per key over all parts (or over ``parts``).

        This is the catalog's view (a glob: it stays valid as parts come and go); reads of this
        process use :meth:`read_sql`, which gives the same rows without the window where it can.
        ``root_sql``: the catalog's view, whose glob starts at this SQL expression of the store folder
        (ending in a separator, or empty: ``catalog.py``); default: at this store's absolute path.
        """
        cols = ", ".join(spec.schema.names + ([SEQ_COLUMN] if with_seq else []))
        listed = parts is not None
        parts = self.parts(spec.name) if parts is None else parts
        if root_sql is not None:
            glob = sql_str((self.table_dir(spec.name) / PART_GLOB).relative_to(self.folder).as_posix())
            # an empty table's view globs too (no part: no column, the typed NULLs give them), so the
            # catalog stays right when the table gets its first part
            source = (f"(SELECT {null_columns(spec)}, CAST(NULL AS BIGINT) AS {SEQ_COLUMN} WHERE false "
                      f"UNION ALL BY NAME SELECT * FROM read_parquet({root_sql} || {glob}, union_by_name = true, "
                      f"allow_empty = true))")
        elif not parts:
            return self._empty_sql(spec, with_seq)
        else:
            files = _files_sql(parts) if listed else sql_str(str(self.table_dir(spec.name) / PART_GLOB))
            source = f"read_parquet({files}, union_by_name = true)"
        if parts and not listed and self.is_compacted(spec.name):
            return f"SELECT {cols} FROM {source}"
        return window_sql(spec, source, cols)

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
        if plan.rows is not None and plan.rows <= SMALL_TABLE_ROWS:
            # a small table: its window costs less than the plan's SQL around it (the window over a fresh
            # demo store's 453 media rows in 17 parts 21 ms, the plan's 266)
            if parts_given is None:
                return self.view_sql(spec, with_seq=with_seq)
            return window_sql(spec, f"read_parquet({_files_sql(parts)}, union_by_name = true)", cols)
        if parts_given is not None and len(plan.plain) == len(parts) and not len(plan.contested):
            # each part holds its keys once and no group lies in two of them: the rows are the view's as
            # they are (the facts of a night's parts: 3 ms a table where the window's SQL took 20-45)
            return f"SELECT {cols} FROM read_parquet({_files_sql(parts)}, union_by_name = true)"
        h = keyindex.group_hash_sql(spec)
        # The parts are globbed at every query (as the window view does), so parts written or removed
        # after this connection opened are seen: the planned parts known as plain are named, any
        # other part (a new one, a compaction's, one holding a key twice) goes through the window
        # with every group it holds, wherever that group's other rows are.
        table_glob = self.table_dir(spec.name) / PART_GLOB if parts_given is None else None
        files = sql_str(str(table_glob)) if table_glob else _files_sql(parts)
        every = f"read_parquet({files}, union_by_name = true, filename = '_m5data_file')"
        known = "[" + ", ".join(sql_str(str(p)) for p in plan.plain) + "]"
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
        rest = f"(SELECT * FROM {other} UNION ALL BY NAME SELECT * FROM {mine} WHERE {' OR '.join(moved)})"
        return f"({plain}) UNION ALL ({_newest_write_sql(spec, rest, cols, known)})"

    def _empty_sql(self, spec: TableSpec, with_seq: bool) -> str:
        return f"SELECT {null_columns(spec)}{', CAST(NULL AS BIGINT) AS ' + SEQ_COLUMN if with_seq else ''} WHERE false"

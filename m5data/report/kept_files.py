"""The report's kept files: a facts file (Parquet) or a totals file (Arrow) written under a temp name,
a totals file read memory-mapped, a kept total moved by the delta of the changed groups, and the view
of a table's facts over its files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .data import quoted

TOTAL_SUFFIX = ".arrow"  # the totals' files are Arrow IPC files (:func:`write_file`); the facts', Parquet


# the delta of the changed groups' totals: their new facts' groups less their old ones' (keys whose sum is 0
# leave the kept row as it is)
_DELTA = """
    SELECT {keys}, sum(n)::BIGINT AS n FROM (
        SELECT {keys}, -n AS n FROM ({before}) UNION ALL SELECT {keys}, n FROM ({after}))
    GROUP BY ALL HAVING sum(n) <> 0"""


def move_total(con, path, before: str, after: str) -> pa.Table:
    """The totals kept in ``path`` (keys and ``n``), moved by the totals of the SQL ``before`` (taken
    away) and ``after`` (added): only the delta is a query; the kept rows of the keys it touches are
    found and summed in Arrow, the others copied as they are (the query that joined the delta with every
    kept row cost 10-17 ms a total at 100k products, ten totals a run)."""
    kept = read_total(path)
    names = [n for n in kept.schema.names if n != "n"]
    keys = ", ".join(names)
    return merge_delta(kept, con.sql(_DELTA.format(keys=keys, before=before, after=after)).to_arrow_table())


def merge_delta(kept: pa.Table, delta: pa.Table) -> pa.Table:
    """``kept`` (one row per key, keys and ``n``) plus ``delta`` (keys and ``n``, one row per key): a key's
    rows summed, a key summing to 0 left out. Keys match as DuckDB's ``IS NOT DISTINCT FROM`` does
    (a null matches a null); the rows come in no particular order (every reader groups and orders them)."""
    import numpy as np

    if not delta.num_rows:
        return kept
    names = [n for n in kept.schema.names if n != "n"]
    hit = None  # the kept rows whose every key column holds a value of the delta's: the candidates
    for name in names:
        m = pc.is_in(kept.column(name), value_set=delta.column(name).combine_chunks().cast(kept.schema.field(name).type),
                     skip_nulls=False)
        hit = m if hit is None else pc.and_(hit, m)
    at = np.flatnonzero(hit.to_numpy(zero_copy_only=False)) if hit is not None else np.zeros(0, np.int64)
    cand = kept.take(pa.array(at, pa.int64()))
    index = dict(zip(zip(*(cand.column(n).to_pylist() for n in names)), range(len(at))))
    n_kept = cand.column("n").to_pylist()
    sums = {}
    for key, n in zip(zip(*(delta.column(c).to_pylist() for c in names)), delta.column("n").to_pylist()):
        i = index.get(key)
        sums[key] = n + (n_kept[i] if i is not None else 0)
    drop = np.zeros(kept.num_rows, bool)
    drop[[at[index[k]] for k in sums if k in index]] = True
    rows = [(k, n) for k, n in sums.items() if n != 0]
    moved = pa.table({**{c: pa.array([k[i] for k, _ in rows], kept.schema.field(c).type) for i, c in enumerate(names)},
                      "n": pa.array([n for _, n in rows], kept.schema.field("n").type)}, schema=kept.schema)
    return pa.concat_tables([kept.filter(pa.array(~drop)), moved])


def move_between(con, path, sql: str, before: pa.Table, after: pa.Table) -> pa.Table:
    """The totals of ``sql`` kept in ``path``, moved from the facts ``before`` to those ``after``."""
    con.register("report_before", before)
    con.register("report_after", after)
    try:
        return move_total(con, path, sql.format(f="report_before"), sql.format(f="report_after"))
    finally:
        con.unregister("report_before")
        con.unregister("report_after")


def read_total(path) -> pa.Table:
    """A totals file's rows (an Arrow file, memory-mapped: :func:`write_file`)."""
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()


def write_file(folder, name: str, rows: pa.Table) -> str:
    """A facts file (Parquet) or, named with :data:`TOTAL_SUFFIX`, a totals file: an Arrow file, which every
    incremental run writes whole for each total that moved (115k spec values at 100k products: 1.4 ms
    where zstd Parquet took 17, and read memory-mapped in 0.3 ms where Parquet took 10)."""
    import pyarrow.ipc as ipc

    from ..storage.files import temp_path

    tmp = temp_path(folder / name)  # the store's temp name: a killed writer's is swept by the next stage or doctor
    try:
        if name.endswith(TOTAL_SUFFIX):
            with ipc.new_file(str(tmp), rows.schema) as writer:
                writer.write_table(rows)
        else:
            pq.write_table(rows, tmp, compression="zstd")
        tmp.replace(folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return name


def register_view(con, view: str, paths: list, group: str) -> None:
    """The view ``view`` of a table's facts over its files (:func:`view_sql`)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {view_sql(paths, group)}")


def view_sql(paths: list, group: str) -> str:
    """A table's facts over its files: each file's rows but those of groups a later file holds."""
    files = [f"'{quoted(p)}'" for p in paths]
    parts = []
    for i, f in enumerate(files):
        later = files[i + 1:]
        parts.append(f"SELECT * FROM read_parquet({f})" + (
            f" WHERE {group} NOT IN (SELECT {group} FROM read_parquet([{', '.join(later)}]))" if later else ""))
    return " UNION ALL ".join(parts)

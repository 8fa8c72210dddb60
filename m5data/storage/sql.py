"""Read-only SQL over the catalog: statements are classified before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UserError
from .reading import read_again, vanished
from .store import Store

# PRAGMAs that only read (https://duckdb.org/docs/configuration/pragmas); every other one is refused.
READ_PRAGMAS = {
    "show_tables", "show_tables_expanded", "table_info", "show", "database_size", "database_list",
    "version", "platform", "storage_info", "functions", "collations", "metadata_info",
}
FORMATS = ("table", "csv", "json", "parquet")


class RefusedStatement(UserError):
    """A statement that would change state; exit code 2."""


def check_read_only(sql: str) -> list[str]:
    """Split ``sql`` into statements and refuse any that is not a pure read. Returns the statements."""
    import duckdb

    from .readdb import read_cursor

    con = read_cursor()  # parsing needs no database of its own (~16 ms)
    try:
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise ValueError(f"SQL does not parse: {str(exc).splitlines()[0]}") from None
        if not statements:
            raise ValueError("no SQL statement given")
        out = []
        for st in statements:
            kind = st.type
            text = st.query.strip()
            if kind == duckdb.StatementType.SELECT:
                pass
            elif kind == duckdb.StatementType.EXPLAIN:
                inner = re.sub(r"^\s*explain\s+(analyze\s+)?", "", text, flags=re.IGNORECASE)
                check_read_only(inner)
            elif kind == duckdb.StatementType.PRAGMA:
                m = re.match(r"^\s*pragma\s+(\w+)", text, flags=re.IGNORECASE)
                if not m or m.group(1).lower() not in READ_PRAGMAS or "=" in text:
                    raise RefusedStatement(f"refused: PRAGMA that changes state ({text[:60]}); m5data sql is read-only")
            else:
                name = kind.name.replace("_", " ")
                raise RefusedStatement(f"refused: {name} statement ({text[:60]}); m5data sql is read-only")
            out.append(text)
        return out
    finally:
        con.close()


def check_output(store: Store, output: Path) -> Path:
    """The real path of ``--output`` (symlinks and ``..`` resolved); refused when inside the store."""
    out = Path(output).expanduser().resolve()
    if (folder := store.local_root()) is None:  # a store on object storage: a local file is never inside it
        return out
    root = folder.resolve()
    if out == root or out.is_relative_to(root):
        raise RefusedStatement(f"refused: --output {output} is inside the store ({out}); m5data sql never writes there")
    return out


def run_query(store: Store, sql: str, fmt: str = "table", output: Path | None = None, *, unsafe: bool = False):
    """Run read-only ``sql`` over the store's views. With ``output`` the result goes to a file in
    ``fmt``; otherwise returns an Arrow table of the last statement's result.

    The connection is in memory (no catalog file, no lock: any number of readers run at once) and,
    unless ``unsafe``, sandboxed: it can read files under the store only, never installs or loads
    a DuckDB extension, and its configuration is locked. A read that raced with a compaction
    removing the parts it had listed is run again.
    """
    import duckdb

    statements = check_read_only(sql)
    out = check_output(store, output) if output is not None else None
    if out is not None and fmt not in ("csv", "json", "parquet"):
        raise ValueError(f"--output needs --format csv, json or parquet, not {fmt!r}")

    def once():
        con = store.connect(need=(), sandbox=not unsafe)
        try:
            for text in statements[:-1]:
                con.execute(text)
            rel = con.sql(statements[-1])
            if rel is None:  # a statement without a result (PRAGMA ...)
                return None if out is not None else _empty()
            if out is None:
                return rel.to_arrow_table()
            write_result(rel.to_arrow_reader(65_536), fmt, out)
            return None
        finally:
            con.close()

    # an IOException, or on object storage the filesystem's own error
    return read_again(once, duckdb.Error, retry=lambda exc: vanished(exc) or "cannot open" in str(exc).lower())


def _empty():
    import pyarrow as pa

    return pa.table({})


def _jsonable(table):
    """A table whose list/struct/map columns are JSON text (CSV has no nested values)."""
    import json

    import pyarrow as pa

    cols = []
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_struct(t) or pa.types.is_map(t) \
                or pa.types.is_fixed_size_list(t):
            col = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                            for v in col.to_pylist()], pa.string())
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_csv(tables, sink, names: list[str]) -> None:
    """CSV with a header row to a binary ``sink``; list columns are written as JSON arrays."""
    import pyarrow.csv as pacsv

    header = True
    for table in tables:
        pacsv.write_csv(_jsonable(table), sink, pacsv.WriteOptions(include_header=header))
        header = False
    if header:  # no rows: the header alone
        sink.write((",".join('"' + n.replace('"', '""') + '"' for n in names) + "\n").encode())


def write_result(reader, fmt: str, out: Path) -> None:
    """Write an Arrow batch reader to ``out`` as csv, json lines or parquet (atomically)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from .files import temp_path

    tmp = temp_path(out)
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        elif fmt == "csv":
            with open(tmp, "wb") as fh:
                write_csv((pa.Table.from_batches([b]) for b in reader), fh, reader.schema.names)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                for batch in reader:
                    for row in batch.to_pylist():
                        fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

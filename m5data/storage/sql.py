"""Read-only SQL over the catalog: statements are classified before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

from .store import Store, StoreError

# PRAGMAs that only read (https://duckdb.org/docs/configuration/pragmas); every other one is refused.
READ_PRAGMAS = {
    "show_tables", "show_tables_expanded", "table_info", "show", "database_size", "database_list",
    "version", "platform", "storage_info", "functions", "collations", "metadata_info",
}
FORMATS = ("table", "csv", "json", "parquet")


class RefusedStatement(Exception):
    """A statement that would change state; exit code 2."""


def check_read_only(sql: str) -> list[str]:
    """Split ``sql`` into statements and refuse any that is not a pure read. Returns the statements."""
    import duckdb

    con = duckdb.connect()
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


def run_query(store: Store, sql: str, fmt: str = "table", output: Path | None = None):
    """Run read-only ``sql`` on the catalog. With ``output`` the result goes to a file in ``fmt``;
    otherwise returns an Arrow table of the last statement's result."""
    import duckdb

    statements = check_read_only(sql)
    if output is not None:
        out = Path(output).absolute()
        if out.is_relative_to(store.root):
            raise RefusedStatement(f"refused: --output {out} is inside the store; m5data sql never writes there")
    store.refresh_catalog()
    try:
        con = duckdb.connect(str(store.catalog_path), read_only=True)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open catalog {store.catalog_path}: {exc}") from None
    try:
        for text in statements[:-1]:
            con.execute(text)
        last = statements[-1]
        if output is None:
            return con.sql(last).to_arrow_table()
        rel = con.sql(last)
        if fmt == "csv":
            rel.write_csv(str(output), header=True)
        elif fmt == "parquet":
            rel.write_parquet(str(output))
        elif fmt == "json":
            path = str(output).replace("'", "''")
            con.execute(f"COPY ({last.rstrip(';')}) TO '{path}' (FORMAT json)")
        else:
            raise ValueError(f"--output needs --format csv, json or parquet, not {fmt!r}")
        return None
    finally:
        con.close()

"""``m5data sql``, ``stats`` and ``compact``: the store's own verbs (mounted from m5data/stages.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import arrow_table, console, esc, fail
from ..verbs import open_store


def sql(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="One or more read-only statements (SELECT, EXPLAIN, DESCRIBE, SHOW, read-only PRAGMA)."),
    fmt: str = typer.Option("table", "--format", help="table (rich, to the terminal), csv, json or parquet."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result to FILE (needs --format csv|json|parquet)."),
    unsafe: bool = typer.Option(False, "--unsafe", help="Lift the sandbox: let SQL read any file or URL and load DuckDB extensions."),
) -> None:
    """Run read-only SQL over the store's tables (products, specs, media, ...). Writes are refused (exit 2).

    Sandboxed by default: the SQL can read the store's files only and cannot install or load extensions.
    """
    from ..storage.sql import FORMATS, RefusedStatement, run_query, write_csv

    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if output is not None and fmt == "table":
        fail("--output needs --format csv, json or parquet")
    if output is None and fmt == "parquet":
        fail("--format parquet needs --output FILE")
    store, _ = open_store(ctx)
    try:
        result = run_query(store, query, fmt, output, unsafe=unsafe)
    except RefusedStatement as exc:
        fail(str(exc), code=2)
    except ValueError as exc:
        fail(str(exc))
    except Exception as exc:  # DuckDB's binder/catalog/parser/permission errors: one line, the first of its message
        if type(exc).__module__.startswith(("duckdb", "_duckdb")):
            hint = " (m5data sql reads the store only; --unsafe lifts that)" if "PermissionException" in type(exc).__name__ else ""
            fail(f"SQL error: {str(exc).splitlines()[0]}{hint}")
        raise
    if output is not None:
        console.print(f"wrote {esc(str(output))}")
    elif fmt == "table":
        console.print(arrow_table(result))
    elif fmt == "csv":
        import sys

        write_csv([result], sys.stdout.buffer, result.column_names)
        sys.stdout.buffer.flush()
    else:
        import json

        for row in result.to_pylist():
            typer.echo(json.dumps(row, ensure_ascii=False, default=str))


def stats(ctx: typer.Context, top: int = typer.Option(10, help="How many top categories and properties to list.")) -> None:
    """Counts per table, modality completeness, top categories and top properties."""
    from ..console import Table, error, warn
    from ..egress import gate
    from ..storage import TABLES
    from ..storage.doctor import missing_blobs
    from ..storage.stats import store_stats

    store, _ = open_store(ctx)
    store.check_parts()
    st = store_stats(store, top=top)
    counts = Table(title=f"store {store.root}")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    counts.add_column("parts", justify="right")
    for name in TABLES:
        if name in st.damaged:
            counts.add_row(name, "[red]damaged[/]", "-")
        else:
            counts.add_row(name, f"{st.counts[name]:,}", str(st.parts[name]))
    console.print(counts)
    if st.damaged:  # a damaged table's log: the others are counted above; what reads it is left out
        for why in st.damaged.values():
            error(why)
        error(f"{len(st.damaged)} table(s) cannot be read ({', '.join(st.damaged)}); `m5data doctor` says more")
        raise typer.Exit(1)
    comp = Table(title="modality completeness")
    comp.add_column("modality")
    comp.add_column("products", justify="right")
    comp.add_column("share", justify="right")
    comp.add_row("(all products)", f"{st.products:,}", "100.0%" if st.products else "-")
    for name, n in st.completeness.items():
        comp.add_row(name, f"{n:,}", f"{n / st.products:.1%}" if st.products else "-")
    console.print(comp)
    if st.media_status:
        ms = Table(title="media by kind and status")
        for col in ("kind", "status", "count"):
            ms.add_column(col)
        for kind, status, n in st.media_status:
            ms.add_row(kind, status, f"{n:,}")
        console.print(ms)
    for title, rows, cols in [("top categories", st.top_categories, ("category path", "products")),
                              ("top properties", st.top_properties, ("property", "rows", "distinct values"))]:
        t = Table(title=title)
        for col in cols:
            t.add_column(col)
        for row in rows:  # a category path or a property name is shop text: it leaves through the egress gate
            t.add_row(*(f"{v:,}" if isinstance(v, int) else gate.text(str(v)) for v in row))
        console.print(t)
    missing = missing_blobs(store)
    if missing:
        first = missing[0]
        warn(f"{len(missing):,} media row(s) with status ok have no file on disk (e.g. {first['kind']} "
             f"{first['media_id']}: {first['blob']}); run `m5data doctor --repair` to fetch or extract them again")


def compact(ctx: typer.Context, table: Optional[list[str]] = typer.Argument(None, help="Tables to compact (default: all).")) -> None:
    """Merge each table's small Parquet parts into deduplicated large ones."""
    from ..console import error
    from ..storage import TABLES, StoreError

    store, _ = open_store(ctx)
    failed = 0
    with store.stage_lock("compact"):
        for name in table or list(TABLES):
            try:
                before, after = store.compact(name)
            except StoreError as exc:  # a corrupt part or a busy table: say so, compact the others
                error(f"{name}: {exc}")
                failed += 1
                continue
            console.print(f"{name}: {before} part(s) -> {after}")
        store.refresh_catalog(quiet=True)
    if failed:
        raise typer.Exit(1)

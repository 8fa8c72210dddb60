"""``m5data <verb>``: a thin typer app over the stages. Heavy imports stay inside the verbs."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Optional

import typer

from . import config as cfg
from .console import arrow_table, console, esc, fail

# Before any verb imports Prefect: with no PREFECT_API_URL it starts a temporary API server, given 20 s
# by default, too tight on a busy 2-core machine (a fresh database's first flow run takes 15-20 s); and no telemetry from a dataset tool.
for _key, _value in (("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90"), ("DO_NOT_TRACK", "1"),
                     ("PREFECT_SERVER_ANALYTICS_ENABLED", "false")):
    os.environ.setdefault(_key, _value)

app = typer.Typer(
    help="Build M5Product-style five-modality e-commerce datasets: crawl, download, extract, align, split, export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config file (default: ./m5data.toml if present)."),
    store: Optional[Path] = typer.Option(None, "--store", help="Store folder (overrides store.path)."),
    set_: list[str] = typer.Option([], "--set", help="Override any setting: --set download.concurrency=32 (repeatable)."),
) -> None:
    ctx.obj = {"config": config, "overrides": {"store.path": str(store) if store else None, **cfg.parse_assignments(set_)}}


def settings(ctx: typer.Context, **flags) -> cfg.Settings:
    """The effective settings for a verb: defaults < file < env < global flags < the verb's own flags."""
    root = ctx.find_root().obj or {}
    overrides = dict(root.get("overrides", {}))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    loaded = cfg.load(root.get("config"), overrides)
    if not root.get("warned"):  # once per command, however many times a verb asks for its settings
        from .console import warn

        for warning in loaded.warnings:
            warn(warning)
        if ctx.find_root().obj is not None:
            ctx.find_root().obj["warned"] = True
    return loaded


def open_store(ctx: typer.Context, create: bool = False, **flags):
    from .storage import Store

    s = settings(ctx, **flags)
    return Store.from_settings(s, create=create), s


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print every setting, its value and where it came from (default, file, env or flag)."""
    from .console import Table

    s = settings(ctx)
    table = Table(title="m5data config")
    for col in ("key", "value", "source", "env variable"):
        table.add_column(col)
    from .redact import redact

    for key, value in s.items():
        source = s.source(key)
        table.add_row(key, repr(redact({key: value})[key]), source, cfg.env_name(key), style=None if source == "default" else "bold")
    console.print(table)


@app.command()
def init(ctx: typer.Context) -> None:
    """Create an empty store (tables, blobs, catalog) at store.path."""
    from .storage import Store

    s = settings(ctx)
    store = Store.init(s.store_path, compression=s.store.compression, part_rows=s.store.part_rows)
    console.print(f"store ready at [bold]{esc(str(store.root))}[/]")


@app.command()
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
    from .storage.sql import FORMATS, RefusedStatement, run_query, write_csv

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


@app.command()
def stats(ctx: typer.Context, top: int = typer.Option(10, help="How many top categories and properties to list.")) -> None:
    """Counts per table, modality completeness, top categories and top properties."""
    from .console import Table, warn
    from .storage.doctor import missing_blobs
    from .storage.stats import store_stats

    store, _ = open_store(ctx)
    store.check_parts()
    st = store_stats(store, top=top)
    counts = Table(title=f"store {store.root}")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    counts.add_column("parts", justify="right")
    for name, n in st.counts.items():
        counts.add_row(name, f"{n:,}", str(st.parts[name]))
    console.print(counts)
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
        for row in rows:
            t.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
        console.print(t)
    missing = missing_blobs(store)
    if missing:
        first = missing[0]
        warn(f"{len(missing):,} media row(s) with status ok have no file on disk (e.g. {first['kind']} "
             f"{first['media_id']}: {first['blob']}); run `m5data doctor --repair` to fetch or extract them again")


@app.command()
def compact(ctx: typer.Context, table: Optional[list[str]] = typer.Argument(None, help="Tables to compact (default: all).")) -> None:
    """Merge each table's small Parquet parts into deduplicated large ones."""
    from .console import error
    from .storage import TABLES, StoreError

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


# Stage verbs live in their own packages; each module keeps its heavy imports inside the functions.
# A module that is not there yet (a stage still being built) is skipped.
GROUPS: list[tuple[str, str, str]] = [  # verb, module with a typer ``app``, help
    ("demo-shop", "m5data.demo.cli", "Generate and serve the demo shop (a synthetic two-platform store on 127.0.0.1)."),
    ("annotate", "m5data.annotate.cli", "Curation: duplicate groups, caption match levels, candidate pools, crowd labels."),
    ("import", "m5data.export.importer", "Read a dataset in another layout (M5Product) into the store."),
    ("server", "m5data.flows.server", "Start, stop or check the local Prefect server used for schedules."),
]
COMMANDS: list[tuple[str, str, str]] = [  # verb, module, function
    ("demo", "m5data.demo.run", "demo"),
    ("crawl", "m5data.crawler.cli", "crawl"),
    ("download", "m5data.download.cli", "download"),
    ("extract", "m5data.extract.cli", "extract"),
    ("align", "m5data.align.cli", "align"),
    ("doctor", "m5data.storage.doctor_cli", "doctor"),
    ("build-splits", "m5data.splits.cli", "build_splits"),
    ("check-splits", "m5data.splits.cli", "check_splits"),
    ("export", "m5data.export.cli", "export"),
    ("check-shards", "m5data.export.cli", "check_shards"),
    ("train", "m5data.train.cli", "train"),
    ("evaluate", "m5data.train.cli", "evaluate"),
    ("report", "m5data.report.cli", "report"),
    ("run", "m5data.flows.cli", "run"),
    ("serve", "m5data.flows.cli", "serve"),
    ("deploy", "m5data.flows.cli", "deploy"),
]


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("m5data"):
            return None
        raise


def _mount() -> None:
    for name, module, help_text in GROUPS:
        if (mod := _import(module)) is not None:
            app.add_typer(mod.app, name=name, help=help_text)
    for name, module, func in COMMANDS:
        if (mod := _import(module)) is not None and hasattr(mod, func):
            app.command(name)(getattr(mod, func))


_mount()


def main() -> None:
    from .config import ConfigError
    from .storage import StoreError

    try:
        app()
    except (ConfigError, StoreError) as exc:
        from .console import error

        error(str(exc))
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

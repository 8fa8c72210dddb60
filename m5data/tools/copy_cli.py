"""``m5data store copy SRC DST``: the store's own group of verbs (mounted from m5data/stages.py)."""

from __future__ import annotations

import typer

from ..console import console, esc, fail

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.callback()
def store() -> None:
    """Move a store: copy SRC DST between a folder and s3://bucket/prefix."""


@app.command()
def copy(
    src: str = typer.Argument(..., help="The store to copy: a folder or s3://bucket/prefix."),
    dst: str = typer.Argument(..., help="A new store (created): a folder or s3://bucket/prefix."),
) -> None:
    """Copy every table (the rows it reads), blob and derived file of SRC into the new store DST."""
    from ..storage import Store, StoreError
    from ..storage.copy import copy_store

    try:
        source = Store.open(src)
        report = copy_store(source, Store.open(dst, create=True), progress=lambda text: console.print(esc(text)))
    except StoreError as exc:
        fail(str(exc))
    console.print(f"copied {sum(report.rows.values()):,} rows, {report.blobs:,} blobs and {report.files:,} files "
                  f"({report.bytes:,} bytes) to {esc(dst)}")
    if report.bad_blobs:
        fail(f"{len(report.bad_blobs)} blob(s) not copied: their content no longer matches their name "
             f"(e.g. {report.bad_blobs[0]}); run m5data doctor on {src}")

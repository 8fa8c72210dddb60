"""``m5data import``: the typer app of the import (``m5data import m5product DIR``); the work is in
:mod:`m5data.importer.run`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..verbs import one_line_errors
from .run import import_m5product, media_caps

app = typer.Typer(help="Read a dataset in another layout into the store.", no_args_is_help=True)

SHOW_FAILED = 20  # failed items named in the CLI's output (all are counted in the runs row)


@app.command("m5product")
def m5product(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="The M5Product-layout folder (caption JSON, images/, videos/, audios/ ...)."),
    platform: str = typer.Option("m5product", "--platform", help="Platform name for product ids (<platform>:<item id>)."),
    split_version: str = typer.Option("imported", "--split-version", help="Split version for train.txt, query.txt ... lists."),
) -> None:
    """Read an M5Product-layout folder into the store (products, specs, media blobs, category paths, split lists)."""
    from ..console import Table, console, esc, stage_summary
    from ..verbs import open_store

    store, settings = open_store(ctx, create=True)
    with one_line_errors():
        report = import_m5product(store, folder, platform=platform, split_version=split_version,
                                  max_bytes=media_caps(settings))
    console.print(stage_summary(report.stats))
    for line in report.failed[:SHOW_FAILED]:
        console.print(f"[yellow]failed:[/] {esc(line)}", highlight=False, soft_wrap=True)
    if report.failed_total > SHOW_FAILED:
        console.print(f"[yellow]failed:[/] ... and {report.failed_total - SHOW_FAILED:,} more", highlight=False)
    t = Table(title=f"imported {esc(str(folder))}")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("products", f"{report.products:,}")
    t.add_row("spec rows", f"{report.specs:,}")
    for kind, n in sorted(report.media.items()):
        t.add_row(f"media: {kind}", f"{n:,}")
    for split, n in report.splits.items():
        t.add_row(f"split {report.split_version}/{split}", f"{n:,}")
    console.print(t)

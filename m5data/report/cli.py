"""``m5data report``: write the static HTML report of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import esc


def report(
    ctx: typer.Context,
    out: Path = typer.Option(Path("m5data-report"), "--out",
                             help="Folder for index.html, figures/ and assets/: new, empty or an earlier report's (it is replaced)."),
    open_: bool = typer.Option(False, "--open", help="Print the page's path and open it in a browser when one is available."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="A demo shop's truth/ folder: show align's scores against it."),
    train_run: Optional[Path] = typer.Option(None, "--train-run", help="A training run folder whose metrics.json fills the training section."),
) -> None:
    """Write a static HTML report of the store (figures beside it; opens from disk, offline)."""
    from m5data.console import console, fail
    from m5data.verbs import open_store

    from .build import BAD_BLOB, ReportError, build

    store, settings = open_store(ctx)
    try:
        with console.status("writing the report ...") as status:
            result = build(store, settings, out=out, truth=truth, train_run=train_run,
                           progress=lambda section: status.update(f"report: {section} ..."))
    except ReportError as exc:
        fail(str(exc))  # plain text: '[x]' in a path stays
    filled = len(result.sections) - len(result.empty_sections)
    console.print(f"report: {filled} of {len(result.sections)} sections filled, {len(result.figures)} figures")
    if result.stats.failures[BAD_BLOB]:
        console.print(f"skipped {result.stats.failures[BAD_BLOB]} media paths outside the store's blobs/ and derived/")
    if result.empty_sections:
        console.print(f"empty (the page says what fills them): {esc(', '.join(result.empty_sections))}")
    uri = result.index.resolve().as_uri()
    console.print(f"open [bold]{esc(uri)}[/]")
    if open_:
        import webbrowser

        try:
            webbrowser.open(uri)
        except webbrowser.Error:
            pass

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
    full: bool = typer.Option(False, "--full", help="Write the report even when nothing it reads changed since the last one (default: then do nothing)."),
) -> None:
    """Write a static HTML report of the store (figures beside it; opens from disk, offline).

    \b
    Examples:
      m5data --store st report --out report/ --open
    """
    from m5data.console import console
    from m5data.verbs import run_stage, stage_context

    from .build import BAD_BLOB

    rctx = stage_context(ctx, progress=True, options={"out": out, "truth": truth, "train_run": train_run, "full": full})
    stats = run_stage("report", rctx, summary=False)  # plain text: '[x]' in a path stays
    d = stats.details
    from ..storage.runs import changes_note

    if d.get("unchanged"):
        console.print(f"report: unchanged ({changes_note(d)}): nothing it reads was written since the last one")
    elif changes_note(d):
        console.print(f"products since the last report: {changes_note(d)}")
    console.print(f"report: {d['sections'] - len(d['empty_sections'])} of {d['sections']} sections filled, "
                  f"{d['figures']} figures")
    if stats.failures[BAD_BLOB]:
        console.print(f"skipped {stats.failures[BAD_BLOB]} media paths outside the store's blobs/ and derived/")
    if d["empty_sections"]:
        console.print(f"empty (the page says what fills them): {esc(', '.join(d['empty_sections']))}")
    uri = Path(d["index"]).resolve().as_uri()
    console.print(f"open [bold]{esc(uri)}[/]")
    if open_:
        import webbrowser

        try:
            webbrowser.open(uri)
        except webbrowser.Error:
            pass

"""``m5data extract``: the extract verb (mounted by m5data/cli.py). Heavy imports stay inside."""

from __future__ import annotations

from typing import Optional

import typer


def extract(
    ctx: typer.Context,
    kinds: Optional[str] = typer.Option(None, "--kinds", help="What to extract, comma-separated: video (frames), "
                                        "audio (mp3 + MFCC), image, text (extract.kinds; default all four)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0, help="At most N items per kind (default: all)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="Worker processes (extract.workers; 0 = one per core)."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Also redo items whose derived rows failed (timeouts, worker crashes)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Extract 1-fps frames, mp3 + MFCC, normalised images and segmented captions for media not done yet.

    \b
    Examples:
      m5data --store st extract
      m5data --store st extract --kinds video,audio --limit 50 --workers 4
    """
    from ..console import Table, console, stage_summary
    from ..verbs import run_stage, stage_context

    rctx = stage_context(ctx, progress=progress, options={"limit": limit, "retry_failed": retry_failed},
                         **{"extract.workers": workers, "extract.kinds": kinds})
    stats = run_stage("extract", rctx, summary=False)
    table = Table(title="extract by kind")
    for col in ("kind", "status", "items"):
        table.add_column(col, justify="right" if col == "items" else "left")
    for (kind, status), n in sorted(stats.by_kind.items()):
        table.add_row(kind, status, f"{n:,}")
    if stats.by_kind:
        console.print(table)
    else:
        console.print("nothing to extract: every selected item is done")
    if stats.pool_restarts:
        console.print(f"[yellow]note:[/] a worker process died; the pool was replaced {stats.pool_restarts} time(s) "
                      "and the jobs in it run again one by one (see docs/extract.md)")
    console.print(stage_summary(stats))

"""``m5data download``: fetch pending media (or a URL list) with a progress bar and a status summary.

Exit codes: 0 done; 1 the failure rate passed ``download.max_failure_rate`` (or a bad option, or the
store stayed out past ``download.store_retry_seconds``: the URLs not written stay pending);
3 the watchdog ended a stalled run; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..console import esc

EXIT_FAILURE_RATE = 1
EXIT_STALLED = 3


class RichProgress:
    """The download progress bar: URLs done of total, ok, failed, bytes and bytes/s."""

    def __init__(self, console):
        from rich import progress as rp

        from ..bars import bar

        self.progress = bar(  # shown once there are URLs to download
            rp.TextColumn("[bold]download"), rp.BarColumn(), rp.MofNCompleteColumn(),
            rp.TextColumn("[green]{task.fields[ok]} ok"), rp.TextColumn("[red]{task.fields[failed]} failed"),
            rp.TextColumn("{task.fields[rate]}"), rp.TimeElapsedColumn(), rp.TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.task = None
        self.t0 = time.monotonic()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start(self, total: int) -> None:
        self.t0 = time.monotonic()
        self.task = self.progress.add_task("download", total=total, ok=0, failed=0, rate="")

    def update(self, done: int, ok: int, failed: int, nbytes: int) -> None:
        if self.task is None:
            return
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        rate = f"{_human(nbytes)} {_human(nbytes / elapsed)}/s"
        self.progress.update(self.task, completed=done, ok=ok, failed=failed, rate=rate)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def status_table(stats):
    """A rich table of this run's URLs by final status, failures broken down by reason."""
    from ..console import Table

    table = Table(title="media statuses (this run)")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("URLs", justify="right")
    table.add_row("ok", "", f"{stats.n_out:,}", style="green")
    if opted := stats.statuses.get("opted_out"):  # not a failure: docs/compliance.md
        table.add_row("opted_out", "the owner's opt-out (optouts)", f"{opted:,}", style="cyan")
    for reason, n in sorted(stats.failures.items(), key=lambda kv: (kv[0].split("/")[0], -kv[1])):
        status, _, detail = reason.partition("/")
        table.add_row(status, detail, f"{n:,}")
    if stats.pending_left:
        table.add_row("pending", "not started", f"{stats.pending_left:,}", style="yellow")
    table.caption = f"failure rate {stats.failure_rate:.1%} of {stats.n_in:,} URLs tried"
    return table


def download(
    ctx: typer.Context,
    source: Optional[Path] = typer.Argument(
        None, help="Optional URL list: .txt (one URL a line), .csv/.tsv or .parquet with a url column. "
                   "Without it, the store's pending media rows are fetched."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Fetch only rows whose status is failed."),
    refresh: bool = typer.Option(False, "--refresh", help="Ask each stored file's URL again (a conditional request, "
                                 "no body read) and opt out those that now opt out (docs/compliance.md)."),
    kind: str = typer.Option("image", help="Kind of the listed URLs when the file has no kind column: image, video or audio."),
    url_col: str = typer.Option("url", "--url-col", help="URL column of a CSV/Parquet list."),
    product_col: Optional[str] = typer.Option(None, "--product-col",
                                              help="Product id column (default: product_id if present, else derived from the URL)."),
    concurrency: Optional[int] = typer.Option(None, help="Requests in flight, all hosts (download.concurrency)."),
    per_host: Optional[int] = typer.Option(None, "--per-host", help="Requests in flight per host (download.per_host)."),
    image_max_side: Optional[int] = typer.Option(None, "--image-max-side",
                                                 help="Re-encode images to this max side; 0 keeps originals."),
    workers: Optional[int] = typer.Option(None, help="Re-encoding threads or processes (download.pool); 0 = one per core (download.workers)."),
    allow_private: Optional[bool] = typer.Option(None, "--allow-private/--no-allow-private",
                                                 help="Allow hosts on loopback/private/link-local addresses."),
    max_failure_rate: Optional[float] = typer.Option(None, "--max-failure-rate",
                                                     help="Exit 1 when more than this share of URLs failed."),
    stall_timeout: Optional[float] = typer.Option(None, "--stall-timeout",
                                                  help="Watchdog: end the run after this many seconds without progress."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Download media (images, videos, audio) into the store's blobs: one status per URL, resumable.

    \b
    Examples:
      m5data --store st download
      m5data --store st download --retry-failed
      m5data --store st download --refresh
      m5data --store st download urls.parquet --url-col image_url
    """
    from ..console import console, fail, interrupted
    from ..verbs import run_stage, stage_context

    rctx = stage_context(ctx, progress=progress, options={
        "source": source, "retry_failed": retry_failed, "refresh": refresh, "kind": kind, "url_column": url_col,
        "product_column": product_col,
    }, **{
        "download.concurrency": concurrency, "download.per_host": per_host,
        "download.image_max_side": image_max_side, "download.workers": workers,
        "download.allow_private": allow_private, "download.max_failure_rate": max_failure_rate,
        "download.stall_timeout": stall_timeout,
    })
    s = rctx.settings
    stats = run_stage("download", rctx)  # a stalled or failed run comes back: exit codes below
    console.print(status_table(stats))
    if stats.pool_restarts:
        console.print(f"[yellow]note:[/] a re-encoding process died; the pool was replaced {stats.pool_restarts} "
                      "time(s) and the images in it re-encoded one by one (see docs/download.md)")
    if pool := stats.details.get("pool"):  # the crash guard isolated this run (download/guard.py)
        console.print(f"[yellow]note:[/] {esc(pool['why'])} (download.pool {s.download.pool} asked; "
                      "see docs/download.md, \"Re-encoding images\")", highlight=False, soft_wrap=True)
    if stats.store_waits:
        console.print(f"[yellow]note:[/] the store {esc(str(rctx.store.root))} was out for a while: "
                      f"{stats.store_waits} store call(s) waited for it and were tried again (see docs/download.md)")
    if stats.stalled:
        shown = stats.stalled[:20]
        console.print(f"[bold red]stalled:[/] no progress for {s.download.stall_timeout:g} s; "
                      f"{len(stats.stalled)} URL(s) in flight recorded as failed (reason stalled):")
        for url in shown:
            console.print(f"  {esc(url)}", highlight=False, soft_wrap=True)
        if len(stats.stalled) > len(shown):
            console.print(f"  ... and {len(stats.stalled) - len(shown)} more (m5data sql \"SELECT url FROM media "
                          "WHERE error LIKE 'stalled%'\")")
        raise typer.Exit(EXIT_STALLED)
    if stats.status == "interrupted":
        interrupted("download")
    if stats.failure_rate > s.download.max_failure_rate:
        fail(f"failure rate {stats.failure_rate:.1%} is above download.max_failure_rate "
             f"{s.download.max_failure_rate:.1%} ({stats.n_failed:,} of {stats.n_in:,} URLs); "
             "re-run with --retry-failed to fetch the failed ones again", code=EXIT_FAILURE_RATE)

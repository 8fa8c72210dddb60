"""Rich output shared by the CLI verbs: tables of rows, stage summaries, one-line errors."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def arrow_table(result, title: str | None = None, max_rows: int = 200) -> Table:
    """A rich table of an Arrow table's first ``max_rows`` rows."""
    table = Table(title=title, show_lines=False)
    for name in result.column_names:
        table.add_column(name, overflow="fold")
    for row in result.slice(0, max_rows).to_pylist():
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    if result.num_rows > max_rows:
        table.caption = f"{max_rows} of {result.num_rows} rows shown; use --format csv --output FILE for all"
    return table


def stage_summary(stats) -> Table:
    """The end-of-stage summary: in / out / failed by reason / bytes / seconds."""
    table = Table(title=f"{stats.stage} run {stats.run_id}: {stats.status}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in [("in", stats.n_in), ("out", stats.n_out), ("failed", stats.n_failed),
                        ("bytes", f"{stats.bytes:,}"), ("seconds", f"{stats.seconds:.1f}")]:
        table.add_row(name, str(value))
    for reason, n in sorted(stats.failures.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  failed: {reason}", str(n))
    return table


def fail(message: str, code: int = 1):
    """Print a one-line error and exit with ``code``."""
    import typer

    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)

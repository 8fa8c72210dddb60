"""Rich output shared by the CLI verbs: tables of rows, stage summaries, one-line errors."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


COLUMN_FLOOR = 24  # a column narrower than its header or this many cells is unreadable when folded


def arrow_table(result, title: str | None = None, max_rows: int = 200, width: int | None = None,
                records: bool | None = None):
    """The first ``max_rows`` rows of an Arrow table, for the terminal.

    A table of columns when it fits ``width`` (default: the console's); otherwise one block per
    row, a line per column (psql's expanded display), so that a wide row is never folded into
    columns one character wide. ``records`` forces one or the other.
    """
    from rich.cells import cell_len

    rows = [["" if v is None else str(v) for v in row.values()] for row in result.slice(0, max_rows).to_pylist()]
    names = result.column_names
    caption = (f"{max_rows} of {result.num_rows} rows shown; use --format csv --output FILE for all"
               if result.num_rows > max_rows else None)
    if records is None:
        need = sum(max([cell_len(name)] + [min(cell_len(r[i]), COLUMN_FLOOR) for r in rows]) + 3
                   for i, name in enumerate(names)) + 1
        records = len(names) > 1 and need > (width or console.width)
    if not records:
        table = Table(title=title, show_lines=False, caption=caption)
        for name in names:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        return table
    return _records(names, rows, title, caption)


def _records(names: list[str], rows: list[list[str]], title: str | None, caption: str | None):
    from rich.console import Group
    from rich.rule import Rule
    from rich.text import Text

    parts = [Text(title, style="bold")] if title else []
    for n, row in enumerate(rows, 1):
        parts.append(Rule(f"row {n}", align="left", style="dim"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column(overflow="fold")
        for name, value in zip(names, row):
            grid.add_row(name, value)
        parts.append(grid)
    if caption:
        parts.append(Text(caption, style="dim"))
    return Group(*parts) if parts else Text("(no rows)")


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


class StepProgress:
    """One rich progress bar per named step of a long job, fed by a stage's ``progress(step, done,
    total)`` callback (align's segmenting and cosines, the pools' embedding and search blocks)."""

    def __init__(self, label: str, transient: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=transient)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.progress.add_task(step, total=total)
        self.progress.update(self.tasks[step], completed=done, total=total)

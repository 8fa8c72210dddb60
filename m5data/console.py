"""Rich output shared by the CLI verbs: tables of rows, stage summaries, one-line errors.

Two rules hold for everything the verbs print:

- **Data is never markup.** A spec value ``[annotate]``, a path or a URL is shown as it is: cells
  and titles of :class:`Table` are plain text, :func:`fail` and :func:`warn` print their message as
  plain text, and a verb that puts data into a markup string passes it through :func:`esc`.
- **Numbers are never cut.** :func:`show` prints a table that does not fit the console (an 80-column
  terminal, or a log file: rich takes 80 columns when stdout is not a terminal) in blocks of
  columns, each repeating the row's key columns, or one block per row when even that does not fit.
- **Paths are never cut mid-word.** A word with a ``/`` in it (a path, a URL) wraps only after one
  of its ``/`` (:func:`.path_cells.break_paths`); one whose part between two ``/`` is wider than any column it
  could have is printed whole on a line longer than the console, never folded.
"""

from __future__ import annotations

import rich.table
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape as esc  # noqa: F401  (re-exported: the verbs escape data with it)
from rich.text import Text

from .path_cells import FOLD_FLOOR, _fold_long_words, _text_of, break_paths


class _Console(Console):
    """A rich console whose ``print`` of a single table goes through :func:`show`."""

    def print(self, *objects, **kwargs) -> None:
        if len(objects) == 1 and isinstance(objects[0], rich.table.Table) and not kwargs:
            show(objects[0], out=self)
        else:
            super().print(*objects, **kwargs)


console = _Console()
err_console = _Console(stderr=True)


class Table(rich.table.Table):
    """A rich table whose string cells, title and caption are plain text, never markup (a cell
    that must be styled is passed as a :class:`rich.text.Text`)."""

    def __init__(self, *headers, title=None, caption=None, **kwargs):
        super().__init__(*headers, title=_plain(title, "table.title"), caption=_plain(caption, "table.caption"),
                         **kwargs)

    def add_row(self, *renderables, **kwargs) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


def _plain(text, style: str):
    return Text(text, style=style) if isinstance(text, str) else text


def show(table, out: Console | None = None) -> None:
    """Print ``table`` so that no cell is ever cut: as it is when it renders whole at the console's
    width, else in blocks of columns (the row's key columns repeated in each), else one block per row."""
    out = out or console
    emit = lambda renderable: Console.print(out, renderable)  # noqa: E731  (never back through show)
    if not isinstance(table, rich.table.Table) or _whole(table, out):
        emit(table)
        return
    names = [_text_of(c.header) for c in table.columns]
    rows = [list(r) for r in zip(*([_text_of(cell) for cell in c.cells] for c in table.columns))]
    title = _text_of(table.title) if table.title else None
    caption = _text_of(table.caption) if table.caption else None
    blocks = _column_blocks(table, names, rows, out) if len(rows) > 1 else None
    if blocks is None:
        if _fold_long_words(table, out):  # a long path or list in one column: wrap it, keep the rows
            emit(table)
        else:  # a path too long for any column is printed whole, past the console's width
            Console.print(out, _records(names, rows, title, caption, width=out.width), crop=False)
        return
    for n, block in enumerate(blocks):
        if n == 0 and title:
            block.title = Text(title, style="table.title")
        emit(block)
    if caption:
        emit(Text(caption, style="dim"))


def _whole(table, out: Console) -> bool:
    """True when ``table`` printed at ``out``'s width cuts no cell (rich marks a cut with '…') and
    folds no path (a word with a ``/`` wider than its column)."""
    import io

    probe = Console(file=io.StringIO(), width=out.width, color_system=None, legacy_windows=False)
    probe.print(table)
    cut = probe.file.getvalue().count("…")
    own = sum(_text_of(cell).count("…") for column in table.columns for cell in [column.header, *column.cells])
    if cut > own + _text_of(table.title).count("…") + _text_of(table.caption).count("…"):
        return False
    rooms = _rooms(table, probe)
    return rooms is None or all(cell_len(word) <= room for column, room in zip(table.columns, rooms)
                                for cell in column.cells for word in _text_of(cell).split() if "/" in word)


def _rooms(table, probe: Console) -> list[int] | None:
    """The cells of text each column of ``table`` gets at ``probe``'s width (its padding left out),
    from rich's own column sizing; None from a rich without it."""
    try:
        widths = table._calculate_column_widths(probe, probe.options.update_width(probe.width - table._extra_width))
        return [w - table._get_padding_width(i) for i, w in enumerate(widths)]
    except (AttributeError, TypeError):
        return None


def _column_blocks(table, names, rows, out: Console):
    """Sub-tables of the row's key columns plus as many further columns as print whole, or None
    when the key and one more column do not. The key is the first column, or the first two or
    three when fewer do not tell the rows apart (``model`` + ``modalities`` in evaluate's table)."""
    key = [0]
    while len(key) < min(3, len(names) - 1) and len({tuple(r[i] for i in key) for r in rows}) < len(rows):
        key.append(len(key))

    def build(cols):
        t = Table(box=table.box, show_lines=table.show_lines)
        for i in cols:
            src = table.columns[i]
            t.add_column(names[i], justify=src.justify, no_wrap=src.no_wrap)
        for row in rows:
            t.add_row(*(row[i] for i in cols))
        return t

    blocks, current = [], list(key)
    for i in range(len(key), len(names)):
        if _whole(build(current + [i]), out):
            current.append(i)
        elif len(current) == len(key):
            return None
        else:
            blocks.append(build(current))
            current = key + [i]
            if not _whole(build(current), out):
                return None
    blocks.append(build(current))
    return blocks


COLUMN_FLOOR = 24  # a column narrower than its header or this many cells is unreadable when folded


def arrow_table(result, title: str | None = None, max_rows: int = 200, width: int | None = None,
                records: bool | None = None):
    """The first ``max_rows`` rows of an Arrow table, for the terminal.

    A table of columns when it fits ``width`` (default: the console's); otherwise one block per
    row, a line per column (psql's expanded display), so that a wide row is never folded into
    columns one character wide. ``records`` forces one or the other.
    """
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


def _records(names: list[str], rows: list[list[str]], title: str | None, caption: str | None,
             width: int | None = None):
    """One block per row, a line per column; a path wraps after a ``/``, and one with a part wider
    than the value's room is a line of its own, whole (``show`` prints it with ``crop=False``, and gives
    ``width``); without ``width`` (:func:`arrow_table`, whose callers print it as it is, cropping lines
    past the console) such a value folds instead: a path part wider than the console wraps rather than
    being cut off."""
    from rich.console import Group
    from rich.rule import Rule

    key = max((cell_len(name) for name in names), default=0)
    room = max(FOLD_FLOOR, (width or console.width) - key - 2)

    def grid():
        g = Table.grid(padding=(0, 2))
        g.add_column(style="bold cyan", no_wrap=True, min_width=key)
        g.add_column(overflow="fold")
        return g

    parts = [Text(title, style="bold")] if title else []
    for n, row in enumerate(rows, 1):
        parts.append(Rule(f"row {n}", align="left", style="dim"))
        current = grid()
        for name, value in zip(names, row):
            broken = break_paths(Text(value), room)
            if broken is not None or width is None:
                current.add_row(name, broken if broken is not None else Text(value))
                continue
            parts.append(current)
            parts.append(Text.assemble((name.ljust(key), "bold cyan"), "  ", value, no_wrap=True, overflow="ignore"))
            current = grid()
        parts.append(current)
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
    from .storage.runs import changes_note

    if note := changes_note(stats.details):
        table.add_row("changes", note)
    for reason, n in sorted(stats.failures.items(), key=lambda kv: -kv[1]):
        table.add_row(f"  failed: {reason}", str(n))
    return table


def fail(message: str, code: int = 1):
    """Print a one-line error and exit with ``code``."""
    import typer

    error(message)
    raise typer.Exit(code)


EXIT_INTERRUPTED = 130  # a verb stopped by Ctrl-C (128 + SIGINT, as a shell reports it)


def interrupted(verb: str):
    """A verb stopped by Ctrl-C whose re-run resumes: say so in one line and exit 130."""
    import typer

    err_console.print(Text.assemble((f"{verb} interrupted", "bold yellow"),
                                    "; nothing stored was lost; run the same command again to resume"),
                      highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INTERRUPTED)


def error(message: str) -> None:
    """Print a one-line error (plain text: data in it is never read as markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", str(message)), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print a one-line warning (plain text: data in it is never read as markup)."""
    err_console.print(Text.assemble(("warning:", "bold yellow"), " ", str(message)), highlight=False, soft_wrap=True)


class StepProgress:
    """One rich progress bar per named step of a long job, fed by a stage's ``progress(step, done,
    total)`` callback (align's segmenting and cosines, the pools' embedding and search blocks)."""

    def __init__(self, label: str, transient: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

        from .bars import bar

        self.progress = bar(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
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


def measures(title: str, rows) -> Table:
    """A two-column table of ``(measure, value)`` rows, values right-aligned (a verb's summary or score)."""
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    return table


def precision_recall(score, unit: str) -> list[tuple[str, str]]:
    """The rows of ``score.precision``, ``.recall`` and ``.f1`` of ``unit`` (merge, pair), four decimals."""
    return [(f"{unit} {name}", f"{getattr(score, attr):.4f}")
            for name, attr in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))]

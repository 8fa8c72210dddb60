"""Paths in table cells: wrapped only after a ``/``, never cut mid-word.

:func:`break_paths` breaks each path or URL of a cell's text after one of its ``/`` so that no line is
wider than the column; :func:`_fold_long_words` lets every column of a table fold a long word so,
when each column stays readable. ``console.show`` uses them for a table too wide for the console.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text


def break_paths(text: Text, room: int) -> Text | None:
    """``text`` with a line break after a ``/`` of each path or URL (a word with a ``/``) wider than
    ``room``, so that no line of it is wider (never between the two of ``//``): None when a part of
    one between two ``/`` is wider than ``room`` itself."""
    cuts = []
    for word in re.finditer(r"\S+", text.plain):
        start, end = word.span()
        if "/" not in word.group() or cell_len(word.group()) <= room:
            continue
        after = [i + 1 for i in range(start, end - 1) if text.plain[i] == "/" and text.plain[i + 1] != "/"]
        while cell_len(text.plain[start:end]) > room:
            fits = [i for i in after if i > start and cell_len(text.plain[start:i]) <= room]
            if not fits:
                return None
            start = fits[-1]
            cuts.append(start)
    if not cuts:
        return text
    return Text("\n").join(text.divide(cuts))


FOLD_FLOOR = 12  # a folded column narrower than this (or than its widest cell) is unreadable


def _fold_long_words(table, out: Console) -> bool:
    """Let every column fold a word too long for it (nothing is cut, a long word wraps; a path or URL
    only after one of its ``/``), when each column still gets at least ``FOLD_FLOOR`` cells or its
    widest cell and each path fits its column so: True when that holds."""
    import io

    probe = Console(file=io.StringIO(), width=out.width, color_system=None, legacy_windows=False)
    try:  # rich's own column sizing; a rich without it prints one block per row instead
        natural = [table._measure_column(probe, probe.options.update_width(1 << 20), c).maximum for c in table.columns]
        for column in table.columns:
            column.overflow = "fold"
        widths = table._calculate_column_widths(probe, probe.options.update_width(out.width - table._extra_width))
    except (AttributeError, TypeError):
        return False
    if not all(w >= min(n, FOLD_FLOOR) for w, n in zip(widths, natural)):
        return False
    broken = []
    for i, column in enumerate(table.columns):
        room = widths[i] - table._get_padding_width(i)
        cells = [break_paths(c if isinstance(c, Text) else Text(_text_of(c)), room) for c in column._cells]
        if any(c is None for c in cells):
            return False
        broken.append((column, room, cells))
    for column, room, cells in broken:  # the widths the paths were broken for, kept
        column._cells[:], column.width = cells, room
    return True


def _text_of(cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, Text):
        return cell.plain
    return str(cell)

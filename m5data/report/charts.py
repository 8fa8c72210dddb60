"""The report's figures: SVG files written by our own small code (:mod:`.svg`), deterministic text.

Each function draws one figure from plain values and writes ``<name>.svg`` into the figure folder;
it returns the file name, or None when there is nothing to draw. The charts are bars, histograms, a
line and an UpSet-style matrix: a few hundred shapes and texts, written in milliseconds, the same
bytes for the same values. Every figure drawn is keyed by a hash of what drew it (the function, its
values, :data:`STYLE`): a figure whose key is the one the last report drew it with is copied from
that report's folder, not drawn again. Text from data (titles, labels) is XML text, never markup
(:func:`.svg.text_of`): a ``$`` or ``<`` is drawn as written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
from pathlib import Path

from .svg import Canvas, Plot, Scale, log_range, width_of

STYLE = 4  # change it with the look of any figure: every figure is drawn again

COLOR = "#3b6ea8"
BARS_UP_TO = 100  # a long tail of more categories is drawn as one filled step outline (bars would not show apart)
ACCENT = "#d9822b"
WIDTH = 640


def _drawn_once(draw):
    """``draw(self, name, ...)`` keyed by its values: taken from ``self.previous`` when the key is the same."""
    @functools.wraps(draw)
    def cached(self, name: str, *args, **kwargs):
        key = hashlib.sha256(json.dumps([STYLE, draw.__name__, args, kwargs], default=_plain).encode()).hexdigest()[:32]
        old = self.previous / f"{name}.svg" if self.previous is not None else None
        if old is not None and self.reuse.get(name) == key and old.is_file():
            shutil.copyfile(old, self.folder / old.name)
            self.keys[name] = key
            return old.name
        svg = draw(self, *args, **kwargs)
        if svg is None:
            return None
        path = self.folder / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        self.keys[name] = key
        self.drawn.append(name)
        return path.name
    return cached


def _plain(value):
    """A value json cannot write (a numpy number) as a plain one."""
    return value.item() if hasattr(value, "item") else str(value)


class Charts:
    """Draws into ``folder``; one instance per report.

    ``previous``: the last report's figure folder as it left it, ``reuse`` the keys it drew them with
    (``keys`` of that run's instance); its figures of the same key are copied, not drawn.
    """

    def __init__(self, folder: Path, previous: Path | None = None, reuse: dict[str, str] | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.previous, self.reuse = previous, dict(reuse or {})
        self.keys: dict[str, str] = {}  # figure name -> the key it was drawn (or copied) with
        self.drawn: list[str] = []  # the figures drawn (not copied)

    @_drawn_once
    def long_tail(self, counts: list[int], title: str) -> str | None:
        """Products per category, sorted, log scale (the papers' Figure 3)."""
        if not counts:
            return None
        n = len(counts)
        p = Plot.make(WIDTH, 260, title, (0.5, n + 0.5, False), (*log_range(counts), True))
        p.axes("category rank", "products (log)", xticks=[t for t in p.x.ticks(integer=True) if t[0] >= 1])
        base = p.bottom
        if n <= BARS_UP_TO:
            step = p.x(1.5) - p.x(0.5)
            gap = min(0.3, step / 4)
            for i, c in enumerate(counts, 1):
                p.canvas.rect(p.x(i - 0.5) + gap / 2, p.y(c), step - gap, base - p.y(c), COLOR)
        else:  # one filled outline, not a shape a category: a run of equal counts is one step
            cuts = [0] + [i for i in range(1, n) if counts[i] != counts[i - 1]]
            points = [(p.x(0.5), base)]
            for k, i in enumerate(cuts):
                end = cuts[k + 1] if k + 1 < len(cuts) else n
                points += [(p.x(i + 0.5), p.y(counts[i])), (p.x(end + 0.5), p.y(counts[i]))]
            points.append((p.x(n + 0.5), base))
            p.canvas.path(points, fill=COLOR, closed=True)
        return p.svg()

    @_drawn_once
    def bars(self, labels: list[str], values: list[float], title: str, horizontal: bool = True,
             xlabel: str = "products") -> str | None:
        if not values:
            return None
        labels = [str(t) for t in labels]
        top = max(values) or 1
        if horizontal:
            left = min(320, max(width_of(t, 10) for t in labels)) + 16
            right = max(width_of(f" {v:,}", 9) for v in values) + 16
            k = len(values)
            p = Plot.make(WIDTH, max(160, 28 * k + 80), title, (0, top, False), (-0.6, k - 0.4, False),
                          left=left, right=right)
            rows = list(range(k))[::-1]
            p.axes(xlabel, "", yticks=list(zip(rows, labels)), grid=False)
            h = p.y(0) - p.y(0.8)
            for r, v in zip(rows, values):
                p.canvas.rect(p.x(0), p.y(r) - h / 2, p.x(v) - p.x(0), h, COLOR)
                p.canvas.text(p.x(v) + 3, p.y(r), f"{v:,}", size=9)
            return p.svg()
        k = len(values)
        slot = (WIDTH - 78) / k
        turn = any(width_of(t, 10) > slot for t in labels)
        bottom = (min(180, max(width_of(t, 10) for t in labels)) * 0.5 + 46) if turn else 40
        p = Plot.make(WIDTH, 220 + bottom, title, (-0.6, k - 0.4, False), (0, top * 1.08, False), bottom=bottom)
        p.axes("", xlabel, xticks=[], grid=True)
        w = p.x(0.8) - p.x(0)
        for i, (t, v) in enumerate(zip(labels, values)):
            p.canvas.rect(p.x(i) - w / 2, p.y(v), w, p.y(0) - p.y(v), COLOR)
            p.canvas.line(p.x(i), p.bottom, p.x(i), p.bottom + 4)
            if turn:
                p.canvas.text(p.x(i) + 4, p.bottom + 10, t, size=10, anchor="end", rotate=-30)
            else:
                p.canvas.text(p.x(i), p.bottom + 12, t, size=10, anchor="middle")
        return p.svg()

    @_drawn_once
    def curve(self, xs: list[float], ys: list[float], title: str, xlabel: str, ylabel: str,
              mark: tuple[float, float] | None = None) -> str | None:
        """A line through ``(xs, ys)`` (a precision-recall curve), ``mark`` drawn as a star."""
        if not xs:
            return None
        p = Plot.make(480, 300, title, (0, 1.02, False), (0, 1.02, False))
        p.axes(xlabel, ylabel)
        points = [(p.x(x), p.y(y)) for x, y in zip(xs, ys)]
        p.canvas.path(points, stroke=COLOR, width=1.5)
        for x, y in points:
            p.canvas.circle(x, y, 2.5, COLOR)
        if mark is not None:
            cx, cy = p.x(mark[0]), p.y(mark[1])
            star = [(cx + (7 if i % 2 == 0 else 2.8) * math.sin(i * math.pi / 5),
                     cy - (7 if i % 2 == 0 else 2.8) * math.cos(i * math.pi / 5)) for i in range(10)]
            p.canvas.path(star, fill="black", closed=True)
        return p.svg()

    def histogram(self, name: str, values: list[float], title: str, xlabel: str, bins: int = 30,
                  log_y: bool = False, weights: list[int] | None = None) -> str | None:
        """Counts of ``values`` (each ``weights[i]`` times, else once) in equal bins between the smallest
        and the largest (at most one per distinct value)."""
        if not values:
            return None
        weights = [1] * len(values) if weights is None else weights
        lo, hi = min(values), max(values)
        bins = max(1, min(bins, len(set(values))))
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        width = (hi - lo) / bins
        counts = [0] * bins
        for v, w in zip(values, weights):
            counts[min(int((v - lo) / width), bins - 1)] += w
        return self._bins(name, lo, hi, counts, title, xlabel, log_y)

    @_drawn_once
    def _bins(self, lo: float, hi: float, counts: list[int], title: str, xlabel: str, log_y: bool) -> str | None:
        """A histogram of ``counts`` in equal bins from ``lo`` to ``hi`` (keyed by the bins, not the values)."""
        width = (hi - lo) / len(counts)
        y = (*log_range(counts), True) if log_y else (0, max(counts) * 1.05, False)
        p = Plot.make(WIDTH, 240, title, (lo, hi, False), y)
        p.axes(xlabel, "count")
        for i, c in enumerate(counts):
            if c:
                x0, x1 = p.x(lo + i * width), p.x(lo + (i + 1) * width)
                p.canvas.rect(x0, p.y(c), max(x1 - x0 - 0.5, 0.5), p.bottom - p.y(c), COLOR)
        return p.svg()

    @_drawn_once
    def upset(self, modalities: list[str], combos: list[tuple[tuple[str, ...], int]],
              singles: dict[str, int]) -> str | None:
        """An UpSet-style chart: bars of each exact modality combination over a dot matrix, set sizes on the left."""
        if not combos:
            return None
        combos = combos[:16]
        c = Canvas(720, 380)
        c.text(460, 12, "modality combinations (exact sets)", size=12, anchor="middle", weight="bold")
        left, right, bar_top, bar_bottom = 230, 710, 40, 220
        row_h = 24
        rows_top = bar_bottom + 16
        slot = (right - left) / len(combos)
        xs = [left + slot * (i + 0.5) for i in range(len(combos))]
        counts = [n for _, n in combos]
        y = Scale(0, max(counts) * 1.12 or 1, bar_bottom, bar_top)
        for v, label in y.ticks(integer=True):
            c.line(left - 4, y(v), left, y(v))
            c.text(left - 6, y(v), label, size=9, anchor="end")
        c.text(left - 58, (bar_top + bar_bottom) / 2, "products", anchor="middle", rotate=-90)
        for x, n in zip(xs, counts):
            c.rect(x - slot * 0.4, y(n), slot * 0.8, bar_bottom - y(n), COLOR)
            c.text(x, y(n) - 7, f"{n:,}", size=8, anchor="middle")
        c.line(left, bar_bottom, right, bar_bottom)
        c.line(left, bar_top, left, bar_bottom)
        ys = {m: rows_top + row_h * (r + 0.5) for r, m in enumerate(modalities)}
        for r, m in enumerate(modalities):
            if r % 2 == 0:
                c.rect(left, rows_top + row_h * r, right - left, row_h, "#f4f4f4")
            c.text(left - 6, ys[m], m, size=10, anchor="end")
        for x, (present, _) in zip(xs, combos):
            on = [ys[m] for m in modalities if m in present]
            if on:
                c.line(x, min(on), x, max(on), "#222222", 1.5)
            for m in modalities:
                c.circle(x, ys[m], 4.5 if m in present else 3.5, "#222222" if m in present else "#d0d0d0")
        sets_right, sets_left = left - 62, 20
        sx = Scale(0, max(singles[m] for m in modalities) or 1, sets_right, sets_left)
        for m in modalities:
            c.rect(sx(singles[m]), ys[m] - row_h * 0.35, sets_right - sx(singles[m]), row_h * 0.7, ACCENT)
        axis_y = rows_top + row_h * len(modalities)
        c.line(sets_left, axis_y, sets_right, axis_y)
        for v, label in sx.ticks(integer=True)[::2]:
            c.line(sx(v), axis_y, sx(v), axis_y + 4)
            c.text(sx(v), axis_y + 12, label, size=8, anchor="middle")
        c.text((sets_left + sets_right) / 2, axis_y + 28, "products", anchor="middle")
        return c.svg()

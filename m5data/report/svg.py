"""A small SVG writer for the report's charts: shapes and text on a canvas, value axes with ticks.

What it writes is plain text made only from the values it is given (every coordinate rounded to two
decimals, no ids, dates or random salts), so the same values give the same bytes, in milliseconds
and without a font cache. Text from data is XML-escaped and never markup; a character XML cannot
hold (a control character) is written as U+FFFD. The page shows the SVGs as ``<img>``, which uses
the system's fonts: CJK category names need one (Debian's ``fonts-noto-cjk``).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from ..egress import gate

FONT = "'Noto Sans CJK SC', 'Noto Sans CJK JP', 'WenQuanYi Zen Hei', 'DejaVu Sans', Arial, sans-serif"
SIZE = 11  # the text size, px
SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
INK, GRID = "#333333", "#e6e6e6"


def num(x: float) -> str:
    """A coordinate as short, fixed text: two decimals, no trailing zeros, never ``-0``."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _xml_char(c: str) -> str:
    o = ord(c)
    ok = o in (9, 10, 13) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF
    return c if ok else "\ufffd"


def text_of(value) -> str:
    """``value`` as XML character data: escaped (quotes too), characters XML cannot hold replaced."""
    value = str(value) if isinstance(value, (int, float)) else gate.text(str(value))  # the egress gate's masking
    return escape("".join(_xml_char(c) for c in value), {'"': "&quot;", "'": "&#39;"})


def width_of(text: str, size: float = SIZE) -> float:
    """About how wide ``text`` is drawn: a wide (CJK) character 1 em, another 0.6 em."""
    return sum(size if unicodedata.east_asian_width(c) in "WF" else 0.6 * size for c in str(text))


@dataclass
class Canvas:
    """Shapes in drawing order; :meth:`svg` writes them as one SVG document."""

    width: float
    height: float
    items: list[str] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, fill: str) -> None:
        if w > 0 and h > 0:
            self.items.append(f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" fill="{fill}"/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = INK, width: float = 1) -> None:
        self.items.append(f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" '
                          f'stroke="{stroke}" stroke-width="{num(width)}"/>')

    def path(self, points: list[tuple[float, float]], fill: str = "none", stroke: str = "none",
             width: float = 1, closed: bool = False) -> None:
        d = "M" + " L".join(f"{num(x)} {num(y)}" for x, y in points) + (" Z" if closed else "")
        self.items.append(f'<path d="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{num(width)}"/>')

    def circle(self, x: float, y: float, r: float, fill: str) -> None:
        self.items.append(f'<circle cx="{num(x)}" cy="{num(y)}" r="{num(r)}" fill="{fill}"/>')

    def text(self, x: float, y: float, value, size: float = SIZE, anchor: str = "start", rotate: float = 0,
             weight: str = "normal", fill: str = INK) -> None:
        """``value`` drawn at ``(x, y)``, its middle on ``y`` (``anchor``: start, middle or end)."""
        turn = f' transform="rotate({num(rotate)} {num(x)} {num(y)})"' if rotate else ""
        bold = ' font-weight="bold"' if weight != "normal" else ""
        self.items.append(f'<text x="{num(x)}" y="{num(y + 0.35 * size)}" font-size="{num(size)}" '
                          f'text-anchor="{anchor}"{bold} fill="{fill}"{turn}>{text_of(value)}</text>')

    def svg(self) -> str:
        w, h = num(self.width), num(self.height)
        return ('<?xml version="1.0" encoding="utf-8"?>\n'
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
                f'font-family="{FONT}">\n<rect width="{w}" height="{h}" fill="white"/>\n'
                + "\n".join(self.items) + "\n</svg>\n")


@dataclass
class Scale:
    """Values ``lo``..``hi`` onto pixels ``a``..``b`` (``b < a`` for a y axis), linear or log."""

    lo: float
    hi: float
    a: float
    b: float
    log: bool = False

    def __call__(self, v: float) -> float:
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo))
        else:
            lo, hi = self.lo, self.hi
        return self.a + (v - lo) / ((hi - lo) or 1) * (self.b - self.a)

    def ticks(self, integer: bool = False) -> list[tuple[float, str]]:
        """(value, label) of each tick: the decades of a log scale (10ⁿ), else about six round values."""
        if self.log:
            first, last = math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi) + 1e-9)
            step = max(1, math.ceil((last - first + 1) / 8))
            return [(10.0 ** e, "10" + str(e).translate(SUPERSCRIPT)) for e in range(first, last + 1, step)]
        step = nice_step((self.hi - self.lo) / 6)
        if integer:
            step = max(1.0, round(step))
        digits = max(0, -math.floor(math.log10(step) + 1e-9))
        out, k = [], math.ceil(self.lo / step - 1e-9)
        while k * step <= self.hi + 1e-9 * step:
            v = k * step
            out.append((v, f"{v:,.{digits}f}"))
            k += 1
        return out


def nice_step(raw: float) -> float:
    """The round step (1, 2 or 5 times a power of ten: its labels need no more digits than it) nearest above ``raw``."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))


def log_range(values) -> tuple[float, float]:
    """A log axis from the decade at or below the smallest positive value (half of it when it is a power of
    ten: a count of 1 still shows) to the decade at or above the largest, two decades labelled at least."""
    pos = [v for v in values if v > 0] or [1]
    lo = 10.0 ** math.floor(math.log10(min(pos)) + 1e-9)
    lo = lo / 2 if lo >= min(pos) * (1 - 1e-9) else lo
    hi = 10.0 ** math.ceil(math.log10(max(pos)) - 1e-9)
    return lo, max(hi, 10.0 ** (math.ceil(math.log10(lo) - 1e-9) + 1))  # two decades labelled at least


@dataclass
class Plot:
    """A titled plot area on a canvas: ``x`` and ``y`` scales, axes drawn by :meth:`axes`."""

    canvas: Canvas
    x: Scale
    y: Scale
    left: float
    top: float
    right: float
    bottom: float

    @classmethod
    def make(cls, width: float, height: float, title: str, x: tuple[float, float, bool],
             y: tuple[float, float, bool], left: float = 62, bottom: float = 40, right: float = 16) -> Plot:
        canvas = Canvas(width, height)
        canvas.text(width / 2, 12, title, size=SIZE + 1, anchor="middle", weight="bold")
        top, r, b = 28, width - right, height - bottom
        return cls(canvas, Scale(x[0], x[1], left, r, x[2]), Scale(y[0], y[1], b, top, y[2]), left, top, r, b)

    def axes(self, xlabel: str, ylabel: str, xticks: list[tuple[float, str]] | None = None,
             yticks: list[tuple[float, str]] | None = None, grid: bool = True) -> None:
        c = self.canvas
        for v, label in (self.y.ticks() if yticks is None else yticks):
            py = self.y(v)
            if grid:
                c.line(self.left, py, self.right, py, GRID)
            c.line(self.left - 4, py, self.left, py)
            c.text(self.left - 6, py, label, size=SIZE - 1, anchor="end")
        for v, label in (self.x.ticks() if xticks is None else xticks):
            px = self.x(v)
            c.line(px, self.bottom, px, self.bottom + 4)
            c.text(px, self.bottom + 12, label, size=SIZE - 1, anchor="middle")
        if xlabel:
            c.text((self.left + self.right) / 2, self.bottom + 30, xlabel, anchor="middle")
        if ylabel:
            c.text(14, (self.top + self.bottom) / 2, ylabel, anchor="middle", rotate=-90)

    def svg(self) -> str:
        """The document, the axis lines drawn last (over the bars)."""
        self.canvas.line(self.left, self.bottom, self.right, self.bottom)
        self.canvas.line(self.left, self.top, self.left, self.bottom)
        return self.canvas.svg()

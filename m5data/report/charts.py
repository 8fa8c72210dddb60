"""The report's figures: matplotlib SVG files, deterministic (fixed hash salt, no date), CJK-capable.

Each function draws one figure from plain values and writes ``<name>.svg`` into the figure folder;
it returns the file name, or None when there is nothing to draw. Every figure drawn is keyed by a
hash of what drew it (the function, its values, :data:`STYLE`): a figure whose key is the one the
last report drew it with is copied from that report's folder, not drawn again (matplotlib is
imported only when a figure has to be drawn).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

STYLE = 1  # change it with the look of any figure: every figure is drawn again

# Chinese category names need a CJK font (Debian's fonts-noto-cjk); the fallbacks keep Latin text readable.
FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK", "WenQuanYi Zen Hei", "DejaVu Sans"]
COLOR = "#3b6ea8"
BARS_UP_TO = 100  # a long tail of more categories is drawn as one filled step outline (bars would not show apart)
ACCENT = "#d9822b"


def literal(text) -> str:
    """``text`` drawn as written: every ``$`` escaped, so a category or failure reason such as
    ``$\\undefinedmacro$`` is not mathtext (which would fail the figure, and the report, on an
    unknown macro). Matplotlib shows ``\\$`` as ``$`` in text that holds no unescaped ``$``."""
    return str(text).replace("$", r"\$")


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
        drawn = draw(self, name, *args, **kwargs)
        if drawn is not None:
            self.keys[name] = key
            self.drawn.append(name)
        return drawn
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
        self._mpl = None
        # mathtext stays on: the log axes' tick labels are mathtext ($\mathdefault{10^{2}}$ -> 10²);
        # every text that comes from data goes through literal() instead
        self.rc = {"svg.hashsalt": "m5data-report", "font.family": "sans-serif", "font.sans-serif": FONTS,
                   "axes.unicode_minus": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}

    @property
    def mpl(self):
        """matplotlib, imported on the first figure drawn (pyplot never: its import alone took 0.4 s)."""
        if self._mpl is None:
            import logging

            import matplotlib
            import matplotlib.figure

            logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "font not found" for fallbacks
            self._mpl = matplotlib
        return self._mpl

    def _figure(self, figsize):
        return self.mpl.figure.Figure(figsize=figsize)

    def _save(self, fig, name: str) -> str:
        import warnings

        path = self.folder / f"{name}.svg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Glyph missing" when no CJK font is installed: boxes, not a failure
            fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
        return path.name

    @_drawn_once
    def long_tail(self, name: str, counts: list[int], title: str) -> str | None:
        """Products per category, sorted, log scale (the papers' Figure 3)."""
        if not counts:
            return None
        with self.mpl.rc_context(self.rc):
            fig = self._figure((6.4, 2.6))
            ax = fig.subplots()
            from matplotlib.ticker import MaxNLocator

            if len(counts) <= BARS_UP_TO:
                ax.bar(range(1, len(counts) + 1), counts, width=1.0, color=COLOR, edgecolor="white", linewidth=0.3)
            else:  # one filled outline, not a patch a category: 3,400 bars took 9 s to draw at 100k products
                cuts = [0] + [i for i in range(1, len(counts)) if counts[i] != counts[i - 1]]  # a run of equal counts: one step
                ax.stairs([counts[i] for i in cuts], [i + 0.5 for i in cuts] + [len(counts) + 0.5], fill=True, color=COLOR)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_yscale("log")
            ax.set_xlabel("category rank")
            ax.set_ylabel("products (log)")
            ax.set_title(literal(title))
            return self._save(fig, name)

    @_drawn_once
    def bars(self, name: str, labels: list[str], values: list[float], title: str, horizontal: bool = True,
             xlabel: str = "products") -> str | None:
        if not values:
            return None
        with self.mpl.rc_context(self.rc):
            fig = self._figure((6.4, max(1.6, 0.28 * len(values) + 0.8)) if horizontal else (6.4, 2.6))
            ax = fig.subplots()
            if horizontal:
                y = list(range(len(values)))[::-1]
                ax.barh(y, values, color=COLOR)
                ax.set_yticks(y, [literal(t) for t in labels])
                ax.set_xlabel(literal(xlabel))
                for yy, v in zip(y, values):
                    ax.text(v, yy, f" {v:,}", va="center", fontsize=8)
            else:
                ax.bar([literal(t) for t in labels], values, color=COLOR)
                ax.set_ylabel(literal(xlabel))
            ax.set_title(literal(title))
            return self._save(fig, name)

    @_drawn_once
    def curve(self, name: str, xs: list[float], ys: list[float], title: str, xlabel: str, ylabel: str,
              mark: tuple[float, float] | None = None) -> str | None:
        """A line through ``(xs, ys)`` (a precision-recall curve), ``mark`` drawn as a point."""
        if not xs:
            return None
        with self.mpl.rc_context(self.rc):
            fig = self._figure((4.8, 3.0))
            ax = fig.subplots()
            ax.plot(xs, ys, color=COLOR, marker="o", markersize=3)
            if mark is not None:
                ax.plot([mark[0]], [mark[1]], marker="*", markersize=10, color="black", linestyle="none")
            ax.set_xlim(0, 1.02)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(literal(xlabel))
            ax.set_ylabel(literal(ylabel))
            ax.set_title(literal(title))
            return self._save(fig, name)

    @_drawn_once
    def histogram(self, name: str, values: list[float], title: str, xlabel: str, bins: int = 30,
                  log_y: bool = False) -> str | None:
        if not values:
            return None
        with self.mpl.rc_context(self.rc):
            fig = self._figure((6.4, 2.4))
            ax = fig.subplots()
            import numpy as np

            x = np.asarray(values, dtype=np.float64)  # a list of 100k values took 0.4 s in hist's own reshaping
            ax.hist(x, bins=min(bins, len(np.unique(x))), color=COLOR)
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel(literal(xlabel))
            ax.set_ylabel("count")
            ax.set_title(literal(title))
            return self._save(fig, name)

    @_drawn_once
    def upset(self, name: str, modalities: list[str], combos: list[tuple[tuple[str, ...], int]],
              singles: dict[str, int]) -> str | None:
        """An UpSet-style chart: bars of each exact modality combination over a dot matrix, set sizes on the left."""
        if not combos:
            return None
        combos = combos[:16]
        with self.mpl.rc_context(self.rc):
            fig = self._figure((7.2, 3.6))
            grid = fig.add_gridspec(2, 2, width_ratios=[1, 4], height_ratios=[3, 2], wspace=0.05, hspace=0.05)
            top = fig.add_subplot(grid[0, 1])
            dots = fig.add_subplot(grid[1, 1], sharex=top)
            sets = fig.add_subplot(grid[1, 0], sharey=dots)
            x = list(range(len(combos)))
            counts = [n for _, n in combos]
            top.bar(x, counts, color=COLOR)
            for xx, n in zip(x, counts):
                top.text(xx, n, f"{n:,}", ha="center", va="bottom", fontsize=7)
            top.set_ylabel("products")
            top.tick_params(labelbottom=False)
            top.set_title("modality combinations (exact sets)")
            rows = list(range(len(modalities)))[::-1]
            for xx, (present, _) in zip(x, combos):
                ys = [r for r, m in zip(rows, modalities) if m in present]
                dots.scatter([xx] * len(rows), rows, s=18, color="#d0d0d0", zorder=1)
                if ys:
                    dots.scatter([xx] * len(ys), ys, s=22, color="#222222", zorder=2)
                    dots.plot([xx, xx], [min(ys), max(ys)], color="#222222", lw=1.2, zorder=2)
            dots.set_yticks(rows, [literal(m) for m in modalities])
            dots.tick_params(labelbottom=False, bottom=False, left=False, labelleft=False)
            for spine in dots.spines.values():
                spine.set_visible(False)
            sizes = [singles[m] for m in modalities]
            sets.barh(rows, sizes, color=ACCENT)
            sets.set_yticks(rows, [literal(m) for m in modalities])
            sets.invert_xaxis()
            sets.set_xlabel("products")
            return self._save(fig, name)

"""The report's figures: matplotlib SVG files, deterministic (fixed hash salt, no date), CJK-capable.

Each function draws one figure from plain values and writes ``<name>.svg`` into the figure folder;
it returns the file name, or None when there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path

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


class Charts:
    """Draws into ``folder``; one instance per report."""

    def __init__(self, folder: Path):
        import logging

        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # "font not found" for fallbacks
        self.plt = plt
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        # mathtext stays on: the log axes' tick labels are mathtext ($\mathdefault{10^{2}}$ -> 10²);
        # every text that comes from data goes through literal() instead
        self.rc = {"svg.hashsalt": "m5data-report", "font.family": "sans-serif", "font.sans-serif": FONTS,
                   "axes.unicode_minus": False, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}

    def _save(self, fig, name: str) -> str:
        import warnings

        path = self.folder / f"{name}.svg"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Glyph missing" when no CJK font is installed: boxes, not a failure
            fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
        self.plt.close(fig)
        return path.name

    def long_tail(self, name: str, counts: list[int], title: str) -> str | None:
        """Products per category, sorted, log scale (the papers' Figure 3)."""
        if not counts:
            return None
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(6.4, 2.6))
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

    def bars(self, name: str, labels: list[str], values: list[float], title: str, horizontal: bool = True,
             xlabel: str = "products") -> str | None:
        if not values:
            return None
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(6.4, max(1.6, 0.28 * len(values) + 0.8)) if horizontal else (6.4, 2.6))
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

    def curve(self, name: str, xs: list[float], ys: list[float], title: str, xlabel: str, ylabel: str,
              mark: tuple[float, float] | None = None) -> str | None:
        """A line through ``(xs, ys)`` (a precision-recall curve), ``mark`` drawn as a point."""
        if not xs:
            return None
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(4.8, 3.0))
            ax.plot(xs, ys, color=COLOR, marker="o", markersize=3)
            if mark is not None:
                ax.plot([mark[0]], [mark[1]], marker="*", markersize=10, color="black", linestyle="none")
            ax.set_xlim(0, 1.02)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(literal(xlabel))
            ax.set_ylabel(literal(ylabel))
            ax.set_title(literal(title))
            return self._save(fig, name)

    def histogram(self, name: str, values: list[float], title: str, xlabel: str, bins: int = 30,
                  log_y: bool = False) -> str | None:
        if not values:
            return None
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(6.4, 2.4))
            ax.hist(values, bins=min(bins, max(1, len(set(values)))), color=COLOR)
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel(literal(xlabel))
            ax.set_ylabel("count")
            ax.set_title(literal(title))
            return self._save(fig, name)

    def upset(self, name: str, modalities: list[str], combos: list[tuple[tuple[str, ...], int]],
              singles: dict[str, int]) -> str | None:
        """An UpSet-style chart: bars of each exact modality combination over a dot matrix, set sizes on the left."""
        if not combos:
            return None
        combos = combos[:16]
        with self.plt.rc_context(self.rc):
            fig = self.plt.figure(figsize=(7.2, 3.6))
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

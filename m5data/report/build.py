"""The report stage: the store -> ``<out>/index.html`` with ``figures/*.svg`` and ``assets/*`` beside it.

The page opens from disk with no server and no network (no CDN, no script): every figure is a local
SVG drawn by matplotlib and every gallery image a local copy. Sections render what the store holds
and say which command fills them when their tables are empty.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from .. import config as cfg
from ..storage import StageStats, record_run
from ..storage.schema import TABLES
from . import data
from .charts import Charts
from .page import document, empty, figure, n, pct, table

Progress = Callable[[str], None]


class ReportError(ValueError):
    """The report cannot be written (bad output folder); one line for the user."""


@dataclass
class ReportResult:
    stats: StageStats
    index: Path
    sections: list[str] = field(default_factory=list)  # anchors of every section
    empty_sections: list[str] = field(default_factory=list)  # anchors of sections that only hold guidance
    figures: list[str] = field(default_factory=list)


def check_settings(s: cfg.Settings) -> None:
    if s.report.samples_per_category < 0:
        raise cfg.ConfigError(f"config report.samples_per_category must be >= 0, got {s.report.samples_per_category!r}")
    if s.report.top < 1:
        raise cfg.ConfigError(f"config report.top must be >= 1, got {s.report.top!r}")


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: write the report; see :func:`build` for the arguments."""
    return build(store, settings, **kwargs).stats


def build(store, settings: cfg.Settings, *, out: str | Path, truth: str | Path | None = None,
          train_run: str | Path | None = None, progress: Progress | None = None) -> ReportResult:
    """Write the HTML report of ``store`` into ``out``.

    Args:
        out: the report folder (created; ``index.html``, ``figures/`` and ``assets/`` are replaced).
        truth: a demo shop's ``truth/`` folder: the alignment section then shows align's scores.
        train_run: a training run folder whose ``metrics.json`` fills the training section.
        progress: ``progress(section)`` called before each section.
    """
    check_settings(settings)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"report folder {out} is a file")
    if out.resolve().is_relative_to(store.root.resolve()):
        raise ReportError(f"report folder {out} is inside the store {store.root}: choose a folder outside it")
    stats = StageStats("report")
    figures_dir, assets_dir = out / "figures", out / "assets"
    for folder in (figures_dir, assets_dir):
        shutil.rmtree(folder, ignore_errors=True)
    assets_dir.mkdir(parents=True, exist_ok=True)
    charts = Charts(figures_dir)
    top = settings.report.top
    con = store.connect()
    sections: list[tuple[str, str, str]] = []
    empties: list[str] = []

    def add(anchor: str, title: str, body: str, is_empty: bool = False) -> None:
        sections.append((anchor, title, body))
        if is_empty:
            empties.append(anchor)

    try:
        steps = [
            ("overview", "Overview", lambda: _overview(con)),
            ("long-tail", "Category long tail", lambda: _long_tail(con, charts)),
            ("completeness", "Modality completeness", lambda: _completeness(con, charts)),
            ("distributions", "Video, caption and merchant distributions", lambda: _distributions(con, charts)),
            ("specs", "Spec table: top properties", lambda: _specs(con, top)),
            ("images", "Image size tiers", lambda: _images(con, charts)),
            ("failures", "Media status and failure reasons", lambda: _failures(con, charts)),
            ("match-levels", "Caption match levels", lambda: _match_levels(con, charts)),
            ("duplicates", "Duplicate groups", lambda: _duplicates(con, charts)),
            ("alignment", "Label alignment", lambda: _alignment(con, store, settings, truth, top)),
            ("splits", "Splits", lambda: _splits(con, store)),
            ("training", "Training run", lambda: _training(train_run)),
            ("gallery", "Sample gallery", lambda: _gallery(con, store, assets_dir, settings.report.samples_per_category)),
        ]
        stats.n_in = data.overview(con, []).products
        for anchor, title, make in steps:
            if progress:
                progress(title)
            body, is_empty = make()
            add(anchor, title, body, is_empty)
    finally:
        con.close()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = document("m5data dataset report", f"store {store.root} · written {stamp}", sections)
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    tmp = out / f".index.html.tmp-{os.getpid()}"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, index)
    figures = sorted(p.name for p in figures_dir.glob("*.svg"))
    stats.n_out = len(sections) - len(empties)
    stats.bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    stats.finish("ok")
    record_run(store, stats, {"out": str(out), "truth": str(truth) if truth else None})
    return ReportResult(stats, index, [a for a, _, _ in sections], empties, figures)


# ---------------------------------------------------------------------------------------------- sections
# Each returns (html body, is_empty).

def _overview(con) -> tuple[str, bool]:
    o = data.overview(con, list(TABLES))
    if not o.products:
        return empty("The store holds no products yet.", "m5data crawl --start-url URL (or m5data demo)"), True
    rows = [[name, n(f"table.{name}", count)] for name, count in o.tables.items()]
    platforms = ", ".join(f"{escape(p)} {n(f'platform.{p}', c)}" for p, c in o.platforms)
    body = (f"<p>{n('products', o.products)} products from {n('merchants', o.merchants)} merchants on "
            f"{len(o.platforms)} platform(s) ({platforms}); {n('specs', o.specs)} spec values; {n('media', o.media)} media rows.</p>"
            + table(["table", "rows"], rows, {1}))
    return body, False


def _long_tail(con, charts: Charts) -> tuple[str, bool]:
    tails = data.long_tail(con)
    parts = []
    for level, rows in tails.items():
        if not rows:
            continue
        name = data.LEVELS[level]
        counts = [c for _, c in rows]
        src = charts.long_tail(f"long_tail_level{level}", counts, f"products per {name} ({len(rows)} labels)")
        head = ", ".join(f"{escape(lbl)} ({c:,})" for lbl, c in rows[:3])
        parts.append(f"<h3>Level {level}: {name}</h3>" + figure(src, (
            f"{n(f'long_tail.{level}.labels', len(rows))} {name} labels over {n(f'long_tail.{level}.products', sum(counts))} "
            f"products; largest {n(f'long_tail.{level}.max', counts[0])}, median {n(f'long_tail.{level}.median', sorted(counts)[len(counts) // 2])}, "
            f"smallest {n(f'long_tail.{level}.min', counts[-1])}. Head: {head}.")))
    if parts:
        return "<p>Products per unified category, largest first, log scale (the papers' Figure 3).</p>" + "".join(parts), False
    raw = data.raw_categories(con)
    if not raw:
        return empty("No category labels yet.", "m5data align --mapping FILE"), True
    src = charts.long_tail("long_tail_raw", [c for _, c in raw], f"products per raw category ({len(raw)})")
    return (empty("The store is not aligned yet: showing raw breadcrumbs.", "m5data align --mapping FILE")
            + figure(src, f"{n('long_tail.raw.labels', len(raw))} raw categories."), False)


def _completeness(con, charts: Charts) -> tuple[str, bool]:
    c = data.completeness(con)
    if not c.products:
        return empty("No products yet.", "m5data crawl"), True
    src = charts.upset("completeness_upset", list(data.MODALITIES), c.combos, c.single)
    rows = [[m, n(f"completeness.{m}", c.single[m]), pct(c.single[m], c.products)] for m in data.MODALITIES]
    rows += [["image + caption", n("completeness.image_text", c.image_text), pct(c.image_text, c.products)],
             ["image + caption + table", n("completeness.image_text_table", c.image_text_table), pct(c.image_text_table, c.products)],
             ["all five", n("completeness.all_five", c.all_five), pct(c.all_five, c.products)]]
    body = (f"<p>Of {n('completeness.products', c.products)} products (the papers: 6,230,490 image+text, "
            "6,225,598 image+text+table, 5,050,078 all five of 6,313,067):</p>"
            + table(["modalities", "products", "share"], rows, {1, 2})
            + figure(src, f"Each exact combination of present modalities ({len(c.combos)} combinations); "
                          f"the most common holds {n('completeness.top_combo', c.combos[0][1])} products."))
    return body, False


def _distributions(con, charts: Charts) -> tuple[str, bool]:
    d = data.distributions(con)
    parts = []
    if d.video_seconds:
        src = charts.histogram("video_duration", d.video_seconds, "video duration", "seconds")
        mean = sum(d.video_seconds) / len(d.video_seconds)
        parts.append(figure(src, f"{n('videos', len(d.video_seconds))} videos; mean {n('video.mean_seconds', round(mean, 1), ',.1f')} s, "
                                 f"longest {n('video.max_seconds', round(d.video_seconds[-1], 1), ',.1f')} s."))
    else:
        parts.append(empty("No downloaded videos with a duration.", "m5data download && m5data extract"))
    if d.caption_chars:
        src = charts.histogram("caption_length", d.caption_chars, "caption length", "characters")
        parts.append(figure(src, f"{n('captions', len(d.caption_chars))} captions; median "
                                 f"{n('caption.median_chars', d.caption_chars[len(d.caption_chars) // 2])} characters."))
    if d.merchant_products:
        src = charts.histogram("merchant_products", d.merchant_products, "products per merchant", "products", log_y=True)
        parts.append(figure(src, f"{n('merchants.count', len(d.merchant_products))} merchants; the largest lists "
                                 f"{n('merchants.max_products', d.merchant_products[-1])} products."))
    is_empty = not (d.video_seconds or d.caption_chars or d.merchant_products)
    return "<p>Like the papers' supplementary Figure 9.</p>" + "".join(parts), is_empty


def _specs(con, top: int) -> tuple[str, bool]:
    rows = data.top_properties(con, top)
    if not rows:
        return empty("No spec rows yet.", "m5data crawl"), True
    total = data.one(con, "SELECT count(DISTINCT property) FROM specs")
    body = (f"<p>{n('specs.properties', total)} distinct properties; the {len(rows)} most used:</p>"
            + table(["property", "rows", "distinct values", "most common values"],
                    [[p, n(f"specs.rows.{p}", r), n(f"specs.distinct.{p}", d), common] for p, r, d, common in rows], {1, 2}))
    return body, False


def _images(con, charts: Charts) -> tuple[str, bool]:
    tiers = data.image_tiers(con)
    if not tiers:
        return empty("No images with a size tier yet.", "m5data extract --kinds image"), True
    src = charts.bars("image_tiers", [t for t, _ in tiers], [c for _, c in tiers], "images per quality tier", horizontal=False)
    cap = "; ".join(f"tier {escape(t)}: {n(f'image_tier.{t[0]}', c)}" for t, c in tiers)
    return figure(src, f"Quality groups by the original's shorter side (M5Product's three groups): {cap}."), False


def _failures(con, charts: Charts) -> tuple[str, bool]:
    status = data.media_status(con)
    if not status:
        return empty("No media rows yet.", "m5data crawl && m5data download"), True
    fails = data.media_failures(con)
    body = table(["kind", "status", "media"], [[k, s, n(f"media.{k}.{s}", c)] for k, s, c in status], {2})
    if fails:
        labels = [f"{k} {s}: {r}"[:60] for k, s, r, _ in fails[:15]]
        src = charts.bars("media_failures", labels, [c for *_, c in fails[:15]], "media that failed, by reason")
        body += figure(src, f"{n('media.failed', sum(c for *_, c in fails))} media rows are not ok "
                            f"({len(fails)} distinct kind/status/reason).")
    else:
        body += "<p>No media failed.</p>"
    return body, False


def _match_levels(con, charts: Charts) -> tuple[str, bool]:
    levels = data.match_levels(con)
    if not levels:
        return empty("No caption match levels yet.", "m5data annotate match-level"), True
    src = charts.bars("match_levels", [lv for lv, _ in levels], [c for _, c in levels], "captions per match level", horizontal=False)
    cap = "; ".join(f"{escape(lv)} {n(f'match_level.{lv}', c)}" for lv, c in levels)
    return figure(src, f"Caption match levels (well, partially, poorly matched): {cap}."), False


def _duplicates(con, charts: Charts) -> tuple[str, bool]:
    d = data.duplicates(con)
    if not d.products:
        return empty("No duplicate groups yet.", "m5data annotate dedup"), True
    src = charts.bars("duplicate_groups", [str(s) for s, _ in d.sizes], [g for _, g in d.sizes],
                      "groups by size (products per group)", horizontal=False, xlabel="groups")
    rules = ", ".join(f"{escape(r)} {n(f'dedup.rule.{r}', c)}" for r, c in d.rules) or "none"
    return (f"<p>{n('dedup.groups', d.groups)} groups of two or more hold {n('dedup.grouped', d.grouped)} of "
            f"{n('dedup.products', d.products)} products. Joined by: {rules}.</p>" + figure(src, "Duplicate group sizes.")), False


def _alignment(con, store, settings: cfg.Settings, truth, top: int) -> tuple[str, bool]:
    review = Path(settings.align.review_file) if settings.align.review_file else store.root / "derived" / "align" / "review.csv"
    a = data.alignment(con, review, top)
    if not a.methods:
        return empty("No label alignment yet.", "m5data align --mapping FILE"), True
    body = ("<p>" + ", ".join(f"level {lv}: {n(f'taxonomy.level{lv}', c)} unified labels" for lv, c in a.unified.items()) + "</p>"
            + table(["method", "raw category paths"], [[m, n(f"label_map.{m}", c)] for m, c in a.methods], {1}))
    cols = ["class_name", "platform_a", "sub_class_a", "platform_b", "sub_class_b", "s_label", "s_content", "final"]

    def cells(pair: dict) -> list:
        return [_short(pair.get(c, "")) if c.startswith("s_") else pair.get(c, "") for c in cols]

    if a.merged:
        body += "<h3>Merged pairs</h3>" + table(cols, [cells(p) for p in a.merged])
    if a.borderline:
        body += "<h3>Borderline pairs (closest to the thresholds)</h3>" + table(cols, [cells(p) for p in a.borderline])
    elif a.review_file is None:
        body += empty("No review file found.", "m5data align --mapping FILE")
    if truth:
        from ..align.score import score_against

        score = score_against(store, truth)
        body += (f"<p>Against the truth in {escape(str(truth))}: precision {n('align.precision', round(score.precision, 4), '.2f')}, "
                 f"recall {n('align.recall', round(score.recall, 4), '.2f')}.</p>")
    return body, False


def _short(value: str) -> str:
    """A score from the review file with three decimals (it stores full precision)."""
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return value


def _splits(con, store) -> tuple[str, bool]:
    s = data.splits(con, store.root)
    if s.version is None:
        return empty("No splits yet.", "m5data build-splits"), True
    body = (f"<p>Version <code>{escape(s.version)}</code>.</p>"
            + table(["split", "products", "sub-classes"], [[sp, n(f"split.{sp}", c), k] for sp, c, k in s.sizes], {1, 2}))
    body += "<h3>Modality completeness per split</h3>" + table(
        ["split", *data.MODALITIES, "all five"], [[r[0], *r[1:]] for r in s.completeness], set(range(1, 7)))
    if s.manifest is None:
        body += '<p class="muted">No manifest file found for this version.</p>'
    return body, False


def _training(train_run) -> tuple[str, bool]:
    metrics = data.training_metrics(Path(train_run) if train_run else None)
    if not metrics:
        return empty("No training run given.", "m5data train ... && m5data evaluate ..., then m5data report --train-run RUN"), True
    rows = metrics.get("rows") if isinstance(metrics, dict) else metrics
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        from m5data.train.evaluate import format_cell, shown_columns

        order = metrics.get("columns") if isinstance(metrics, dict) and metrics.get("columns") else list(rows[0])
        header = shown_columns(order, rows)
        cells = [[format_cell(r.get(h)) for h in header] for r in rows]
        note = '<p class="muted">Retrieval, accuracy and clustering figures in percent.</p>'
        return note + table(header, cells, {i for i, h in enumerate(header) if h not in ("model", "modalities")}), False
    items = sorted(metrics.items()) if isinstance(metrics, dict) else []
    return table(["metric", "value"], [[k, v] for k, v in items]), False


def _gallery(con, store, assets: Path, per_category: int) -> tuple[str, bool]:
    samples = data.gallery(con, store.root, per_category) if per_category else []
    if not samples:
        return empty("No products with a downloaded image yet.", "m5data download && m5data extract"), True
    cards = []
    for sample in samples:
        img = _asset(store.root, sample.image, assets)
        frames = [f for f in (_asset(store.root, fr, assets) for fr in sample.frames) if f]
        specs = table(["property", "value"], [[p, v] for p, v in sample.specs]) if sample.specs else '<p class="muted">no spec table</p>'
        cards.append(
            '<div class="card">'
            + (f'<img class="main" src="assets/{img}" alt="main image of {escape(sample.product_id, quote=True)}">' if img else "")
            + f'<div class="title">{escape(sample.title)}</div><div class="cat">{escape(sample.product_id)} · {escape(sample.category)}</div>'
            + (('<div class="frames">' + "".join(f'<img src="assets/{f}" alt="video frame">' for f in frames) + "</div>") if frames else "")
            + specs + "</div>")
    return f"<p>{len(samples)} products from the largest categories.</p><div class=\"cards\">{''.join(cards)}</div>", False


def _asset(root: Path, rel: str | None, assets: Path) -> str | None:
    """Copy a store file beside the page under a name derived from its path; None when it is missing."""
    if not rel:
        return None
    src = root / rel
    if not src.is_file():
        return None
    name = hashlib.sha1(rel.encode()).hexdigest()[:16] + src.suffix.lower()
    dst = assets / name
    if not dst.exists():
        shutil.copyfile(src, dst)
    return name

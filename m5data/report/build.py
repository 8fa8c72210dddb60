"""The report stage: the store -> ``<out>/index.html`` with ``figures/*.svg`` and ``assets/*`` beside it.

The page opens from disk with no server and no network (no CDN, no script): every figure is a local
SVG drawn by matplotlib and every gallery image a local copy. Sections render what the store holds
and say which command fills them when their tables are empty.

Store rows, the review file and a run's ``metrics.json`` are untrusted: their text reaches the page
only through :mod:`.page`'s builders (escaped), and a blob path is opened only through
:func:`~m5data.storage.blobs.resolve_blob`. The output folder is handled by :mod:`.folder`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import config as cfg
from ..storage import StageStats, record_run
from ..storage.blobs import BlobPathError, resolve_blob
from ..storage.schema import TABLES
from . import data, folder
from .charts import Charts
from .page import Html, document, empty, figure, html, join, n, pct, table

Progress = Callable[[str], None]
BAD_BLOB = "blob path outside the store"  # the failure reason counted for each refused blob path


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
        out: the report folder: new, empty or written by an earlier report (anything else is refused
            with :class:`ReportError`); the report is built beside it and swapped in.
        truth: a demo shop's ``truth/`` folder: the alignment section then shows align's scores.
        train_run: a training run folder whose ``metrics.json`` fills the training section.
        progress: ``progress(section)`` called before each section.
    """
    check_settings(settings)
    try:
        out = folder.check(Path(out), store.root)
    except folder.FolderError as exc:
        raise ReportError(str(exc)) from None
    stats = StageStats("report")
    staging = folder.staging(out)
    try:
        sections, empties = _sections(store, settings, stats, staging, truth, train_run, progress)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        page = document("m5data dataset report", f"store {store.root} · written {stamp}", sections)
        (staging / "index.html").write_text(page, encoding="utf-8")
        figures = sorted(p.name for p in (staging / "figures").glob("*.svg"))
        folder.publish(staging, out)
    except folder.FolderError as exc:
        raise ReportError(str(exc)) from None
    finally:
        folder.discard(staging)
    stats.n_out = len(sections) - len(empties)
    stats.bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    stats.finish("ok")
    record_run(store, stats, {"out": str(out), "truth": str(truth) if truth else None})
    return ReportResult(stats, out / "index.html", [a for a, _, _ in sections], empties, figures)


# The report reads ``media`` about fifteen times. Each read of the store's view re-does its
# newest-row-per-key window over every part: 2 s a read on a crawl's store of 600 uncompacted media
# parts (30k products), most of the report's time. Past this many parts, the columns the report reads
# are held once in a table of the report's own connection (DuckDB spills it past its memory limit).
HOLD_MEDIA_PARTS = 64
REPORT_MEDIA_COLUMNS = ("product_id", "media_id", "source_media_id", "kind", "role", "position", "status", "blob",
                        "quality_tier", "duration", "error")


def _hold_media(store, con) -> None:
    if len(store.parts("media")) <= HOLD_MEDIA_PARTS:
        return
    con.execute(f"CREATE TABLE report_media AS SELECT {', '.join(REPORT_MEDIA_COLUMNS)} FROM media")
    con.execute("DROP VIEW media")
    con.execute("ALTER TABLE report_media RENAME TO media")


def _sections(store, settings: cfg.Settings, stats: StageStats, into: Path, truth, train_run,
              progress: Progress | None) -> tuple[list[tuple[str, str, Html]], list[str]]:
    """Every section's (anchor, title, body), figures and gallery images written under ``into``."""
    assets_dir = into / "assets"
    assets_dir.mkdir()
    charts = Charts(into / "figures")
    top = settings.report.top
    con = store.connect()
    _hold_media(store, con)
    sections: list[tuple[str, str, Html]] = []
    empties: list[str] = []

    def add(anchor: str, title: str, body: Html, is_empty: bool = False) -> None:
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
            ("gallery", "Sample gallery", lambda: _gallery(con, store, assets_dir, settings.report.samples_per_category, stats)),
        ]
        stats.n_in = data.overview(con, []).products
        for anchor, title, make in steps:
            if progress:
                progress(title)
            body, is_empty = make()
            add(anchor, title, body, is_empty)
    finally:
        con.close()
    return sections, empties


# ---------------------------------------------------------------------------------------------- sections
# Each returns (html body, is_empty).
# Each returns (html body, is_empty). Markup comes only from page's builders; data goes in as arguments.

def _overview(con) -> tuple[Html, bool]:
    o = data.overview(con, list(TABLES))
    if not o.products:
        return empty("The store holds no products yet.", "m5data crawl --start-url URL (or m5data demo)"), True
    rows = [[name, n(f"table.{name}", count)] for name, count in o.tables.items()]
    platforms = join((html("{} {}", p, n(f"platform.{p}", c)) for p, c in o.platforms), ", ")
    body = (html("<p>{} products from {} merchants on {} platform(s) ({}); {} spec values; {} media rows.</p>",
                 n("products", o.products), n("merchants", o.merchants), len(o.platforms), platforms,
                 n("specs", o.specs), n("media", o.media))
            + table(["table", "rows"], rows, {1}))
    return body, False


def _long_tail(con, charts: Charts) -> tuple[Html, bool]:
    tails = data.long_tail(con)
    parts = []
    for level, rows in tails.items():
        if not rows:
            continue
        name = data.LEVELS[level]
        counts = [c for _, c in rows]
        src = charts.long_tail(f"long_tail_level{level}", counts, f"products per {name} ({len(rows)} labels)")
        head = join((html("{} ({})", lbl, f"{c:,}") for lbl, c in rows[:3]), ", ")
        parts.append(html("<h3>Level {}: {}</h3>", level, name) + figure(src, html(
            "{} {} labels over {} products; largest {}, median {}, smallest {}. Head: {}.",
            n(f"long_tail.{level}.labels", len(rows)), name, n(f"long_tail.{level}.products", sum(counts)),
            n(f"long_tail.{level}.max", counts[0]), n(f"long_tail.{level}.median", sorted(counts)[len(counts) // 2]),
            n(f"long_tail.{level}.min", counts[-1]), head)))
    if parts:
        return html("<p>Products per unified category, largest first, log scale (the papers' Figure 3).</p>") + join(parts), False
    raw = data.raw_categories(con)
    if not raw:
        return empty("No category labels yet.", "m5data align --mapping FILE"), True
    src = charts.long_tail("long_tail_raw", [c for _, c in raw], f"products per raw category ({len(raw)})")
    return (empty("The store is not aligned yet: showing raw breadcrumbs.", "m5data align --mapping FILE")
            + figure(src, html("{} raw categories.", n("long_tail.raw.labels", len(raw))))), False


def _completeness(con, charts: Charts) -> tuple[Html, bool]:
    c = data.completeness(con)
    if not c.products:
        return empty("No products yet.", "m5data crawl"), True
    src = charts.upset("completeness_upset", list(data.MODALITIES), c.combos, c.single)
    rows = [[m, n(f"completeness.{m}", c.single[m]), pct(c.single[m], c.products)] for m in data.MODALITIES]
    rows += [["image + caption", n("completeness.image_text", c.image_text), pct(c.image_text, c.products)],
             ["image + caption + table", n("completeness.image_text_table", c.image_text_table), pct(c.image_text_table, c.products)],
             ["all five", n("completeness.all_five", c.all_five), pct(c.all_five, c.products)]]
    body = (html("<p>Of {} products (the papers: 6,230,490 image+text, 6,225,598 image+text+table, "
                 "5,050,078 all five of 6,313,067):</p>", n("completeness.products", c.products))
            + table(["modalities", "products", "share"], rows, {1, 2})
            + figure(src, html("Each exact combination of present modalities ({} combinations); the most common holds {} products.",
                               len(c.combos), n("completeness.top_combo", c.combos[0][1]))))
    return body, False


def _distributions(con, charts: Charts) -> tuple[Html, bool]:
    d = data.distributions(con)
    parts = []
    v, c, m = d.video_seconds, d.caption_chars, d.merchant_products
    if v.count:
        src = charts.histogram("video_duration", v.values, "video duration", "seconds")
        parts.append(figure(src, html("{} videos; mean {} s, longest {} s.", n("videos", v.count),
                                      n("video.mean_seconds", round(v.mean, 1), ",.1f"),
                                      n("video.max_seconds", round(v.max, 1), ",.1f"))))
    else:
        parts.append(empty("No downloaded videos with a duration.", "m5data download && m5data extract"))
    if c.count:
        src = charts.histogram("caption_length", c.values, "caption length", "characters")
        parts.append(figure(src, html("{} captions; median {} characters.", n("captions", c.count),
                                      n("caption.median_chars", c.median))))
    if m.count:
        src = charts.histogram("merchant_products", m.values, "products per merchant", "products", log_y=True)
        parts.append(figure(src, html("{} merchants; the largest lists {} products.", n("merchants.count", m.count),
                                      n("merchants.max_products", m.max))))
    is_empty = not (v.count or c.count or m.count)
    return html("<p>Like the papers' supplementary Figure 9.</p>") + join(parts), is_empty


def _specs(con, top: int) -> tuple[Html, bool]:
    rows = data.top_properties(con, top)
    if not rows:
        return empty("No spec rows yet.", "m5data crawl"), True
    total = data.one(con, "SELECT count(DISTINCT property) FROM specs")
    body = (html("<p>{} distinct properties; the {} most used:</p>", n("specs.properties", total), len(rows))
            + table(["property", "rows", "distinct values", "most common values"],
                    [[p, n(f"specs.rows.{p}", r), n(f"specs.distinct.{p}", d), common] for p, r, d, common in rows], {1, 2}))
    return body, False


def _images(con, charts: Charts) -> tuple[Html, bool]:
    tiers = data.image_tiers(con)
    if not tiers:
        return empty("No images with a size tier yet.", "m5data extract --kinds image"), True
    src = charts.bars("image_tiers", [t for t, _ in tiers], [c for _, c in tiers], "images per quality tier", horizontal=False)
    cap = join((html("tier {}: {}", t, n(f"image_tier.{t[0]}", c)) for t, c in tiers), "; ")
    return figure(src, html("Quality groups by the original's shorter side (M5Product's three groups): {}.", cap)), False


def _failures(con, charts: Charts) -> tuple[Html, bool]:
    status = data.media_status(con)
    if not status:
        return empty("No media rows yet.", "m5data crawl && m5data download"), True
    fails = data.media_failures(con)
    body = table(["kind", "status", "media"], [[k, s, n(f"media.{k}.{s}", c)] for k, s, c in status], {2})
    if fails:
        labels = [cut_at_word(f"{k} {s}: {r}", 60) for k, s, r, _ in fails[:15]]
        src = charts.bars("media_failures", labels, [c for *_, c in fails[:15]], "media that failed, by reason")
        body += figure(src, html("{} media rows are not ok ({} distinct kind/status/reason).",
                                 n("media.failed", sum(c for *_, c in fails)), len(fails)))
    else:
        body += html("<p>No media failed.</p>")
    return body, False


def cut_at_word(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut after its last whole word that fits, with "…"
    (mid-word only when the first word alone is too long)."""
    if len(text) <= limit:
        return text
    head = text[:limit]  # one more than fits with the ellipsis: a space there means the word before is whole
    space = head.rfind(" ")
    kept = head[:space] if space > 0 else head[:limit - 1]
    return kept.rstrip(" ,;:") + "…"


def _match_levels(con, charts: Charts) -> tuple[Html, bool]:
    levels = data.match_levels(con)
    if not levels:
        return empty("No caption match levels yet.", "m5data annotate match-level"), True
    src = charts.bars("match_levels", [lv for lv, _ in levels], [c for _, c in levels], "captions per match level", horizontal=False)
    cap = join((html("{} {}", lv, n(f"match_level.{lv}", c)) for lv, c in levels), "; ")
    return figure(src, html("Caption match levels (well, partially, poorly matched): {}.", cap)), False


def _duplicates(con, charts: Charts) -> tuple[Html, bool]:
    d = data.duplicates(con)
    if not d.products:
        return empty("No duplicate groups yet.", "m5data annotate dedup"), True
    src = charts.bars("duplicate_groups", [str(s) for s, _ in d.sizes], [g for _, g in d.sizes],
                      "groups by size (products per group)", horizontal=False, xlabel="groups")
    rules = join((html("{} {}", r, n(f"dedup.rule.{r}", c)) for r, c in d.rules), ", ") or "none"
    return (html("<p>{} groups of two or more hold {} of {} products. Joined by: {}.</p>", n("dedup.groups", d.groups),
                 n("dedup.grouped", d.grouped), n("dedup.products", d.products), rules)
            + figure(src, "Duplicate group sizes.")), False


def _alignment(con, store, settings: cfg.Settings, truth, top: int) -> tuple[Html, bool]:
    a = data.alignment(con, _review_file(store, settings), top)
    if not a.methods:
        return empty("No label alignment yet.", "m5data align --mapping FILE"), True
    body = (html("<p>{}</p>", join((html("level {}: {} unified labels", lv, n(f"taxonomy.level{lv}", c))
                                     for lv, c in a.unified.items()), ", "))
            + table(["method", "raw category paths"], [[m, n(f"label_map.{m}", c)] for m, c in a.methods], {1}))
    cols = ["class_name", "platform_a", "sub_class_a", "platform_b", "sub_class_b", "s_label", "s_content", "final"]

    def cells(pair: dict) -> list:
        return [_short(pair.get(c, "")) if c.startswith("s_") else pair.get(c, "") for c in cols]

    if a.merged:
        body += html("<h3>Merged pairs</h3>") + table(cols, [cells(p) for p in a.merged])
    if a.borderline:
        body += html("<h3>Borderline pairs (closest to the thresholds)</h3>") + table(cols, [cells(p) for p in a.borderline])
    elif a.review_file is None:
        body += empty("No review file found.", "m5data align --mapping FILE")
    if truth:
        from ..align.score import score_against

        score = score_against(store, truth)
        body += html("<p>Against the truth in {}: precision {}, recall {}.</p>", str(truth),
                     n("align.precision", round(score.precision, 4), ".2f"), n("align.recall", round(score.recall, 4), ".2f"))
    return body, False


def _review_file(store, settings: cfg.Settings) -> Path:
    """The review file to show: the configured one, else align's default in the store (only if it is really there)."""
    if settings.align.review_file:
        return Path(settings.align.review_file)
    try:  # the store's own file: a symlink out of the store would show someone else's file
        return resolve_blob(store.root, "derived/align/review.csv")
    except BlobPathError:
        return store.root / "derived" / "align" / "missing-review.csv"


def _short(value: str) -> str:
    """A score from the review file with three decimals (it stores full precision)."""
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return value


def _splits(con, store) -> tuple[Html, bool]:
    s = data.splits(con, store.root)
    if s.version is None:
        return empty("No splits yet.", "m5data build-splits"), True
    body = (html("<p>Version <code>{}</code>.</p>", s.version)
            + table(["split", "products", "sub-classes"], [[sp, n(f"split.{sp}", c), k] for sp, c, k in s.sizes], {1, 2}))
    body += html("<h3>Modality completeness per split</h3>") + table(
        ["split", *data.MODALITIES, "all five"], [[r[0], *r[1:]] for r in s.completeness], set(range(1, 7)))
    if s.manifest is None:
        body += html('<p class="muted">No manifest file found for this version.</p>')
    return body, False


def _training(train_run) -> tuple[Html, bool]:
    metrics = data.training_metrics(Path(train_run) if train_run else None)
    if not metrics:
        return empty("No training run given.", "m5data train ... && m5data evaluate ..., then m5data report --train-run RUN"), True
    rows = metrics.get("rows") if isinstance(metrics, dict) else metrics
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        from m5data.train.evaluate import format_cell, shown_columns

        columns = metrics.get("columns") if isinstance(metrics, dict) else None
        order = [str(c) for c in columns] if isinstance(columns, list) and columns else list(rows[0])
        header = shown_columns(order, rows)
        cells = [[format_cell(r.get(h)) for h in header] for r in rows]
        note = html('<p class="muted">Retrieval, accuracy and clustering figures in percent.</p>')
        return note + table(header, cells, {i for i, h in enumerate(header) if h not in ("model", "modalities")}), False
    items = sorted(metrics.items(), key=lambda kv: str(kv[0])) if isinstance(metrics, dict) else []
    return table(["metric", "value"], [[k, v] for k, v in items]), False


def _gallery(con, store, assets: Path, per_category: int, stats: StageStats) -> tuple[Html, bool]:
    samples = data.gallery(con, per_category) if per_category else []
    if not samples:
        return empty("No products with a downloaded image yet.", "m5data download && m5data extract"), True
    refused = stats.failures[BAD_BLOB]
    cards = []
    for sample in samples:
        img = _asset(store.root, sample.image, assets, stats)
        frames = [f for f in (_asset(store.root, fr, assets, stats) for fr in _frames(store.root, sample.frames, stats)) if f]
        specs = table(["property", "value"], [[p, v] for p, v in sample.specs]) if sample.specs else html('<p class="muted">no spec table</p>')
        cards.append(html(
            '<div class="card">{img}<div class="title">{title}</div><div class="cat">{pid} · {cat}</div>{frames}{specs}</div>',
            img=html('<img class="main" src="assets/{}" alt="main image of {}">', img, sample.product_id) if img else "",
            title=sample.title, pid=sample.product_id, cat=sample.category, specs=specs,
            frames=html('<div class="frames">{}</div>', join(html('<img src="assets/{}" alt="video frame">', f) for f in frames))
            if frames else ""))
    refused = stats.failures[BAD_BLOB] - refused
    note = html('<p class="muted">{} media paths outside the store were skipped.</p>', refused) if refused else ""
    return html('<p>{} products from the largest categories.</p>{}<div class="cards">{}</div>', len(samples), note, join(cards)), False


def _frames(root: Path, rel: str | None, stats: StageStats) -> list[str]:
    """Up to four frame files (relative to the store) of a frames folder, evenly spaced."""
    if not rel:
        return []
    try:
        path = resolve_blob(root, rel)
    except BlobPathError:
        stats.fail(BAD_BLOB)
        return []
    files = sorted(path.glob("*.jpg")) if path.is_dir() else []
    step = max(1, len(files) // 4)
    # the listed names (not their link targets) go on to _asset, which checks each file again
    return [f"{rel.rstrip('/')}/{f.name}" for f in files[::step][:4]]


def _asset(root: Path, rel: str | None, assets: Path, stats: StageStats) -> str | None:
    """Copy a store file beside the page under a name derived from its path; None when it is missing or refused."""
    if not rel:
        return None
    try:
        src = resolve_blob(root, rel)
    except BlobPathError:
        stats.fail(BAD_BLOB)
        return None
    if not src.is_file():
        return None
    suffix = src.suffix.lower()
    # the name is ours: a hash and, only when it is a plain extension, the blob's (no quote or space can reach the page)
    name = hashlib.sha1(rel.encode()).hexdigest()[:16] + (suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else "")
    dst = assets / name
    if not dst.exists():
        shutil.copyfile(src, dst)
    return name

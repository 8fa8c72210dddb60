"""The report's sections, one builder each: store tables (through :mod:`.data`) -> (html body, is_empty).

A section with nothing to show says which command fills it. Markup comes only from :mod:`.page`'s
builders; data goes in as arguments (escaped). The gallery, which copies files, is :mod:`.gallery`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from .. import config as cfg
from ..storage.blobs import BlobPathError, resolve_blob
from ..storage.schema import TABLES
from . import data, run_data, splits_data
from .charts import Charts
from .page import Html, empty, figure, html, join, n, pct, table

__all__ = ["alignment", "completeness", "cut_at_word", "distributions", "duplicates", "failures", "images",
           "long_tail", "match_levels", "overview", "specs", "splits", "training"]



def overview(con, store=None, rows: dict[str, int] | None = None,
             parts: dict[str, list[str]] | None = None) -> tuple[Html, bool]:
    o = data.overview(con, list(TABLES), store, rows, parts)
    if not o.products:
        return empty("The store holds no products yet.", "m5data crawl --start-url URL (or m5data demo)"), True
    rows = [[name, n(f"table.{name}", count)] for name, count in o.tables.items()]
    platforms = join((html("{} {}", p, n(f"platform.{p}", c)) for p, c in o.platforms), ", ")
    body = (html("<p>{} products from {} merchants on {} platform(s) ({}); {} spec values; {} media rows.</p>",
                 n("products", o.products), n("merchants", o.merchants), len(o.platforms), platforms,
                 n("specs", o.specs), n("media", o.media))
            + table(["table", "rows"], rows, {1}))
    return body, False


def long_tail(con, charts: Charts) -> tuple[Html, bool]:
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


def completeness(con, charts: Charts) -> tuple[Html, bool]:
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


def distributions(con, charts: Charts) -> tuple[Html, bool]:
    d = data.distributions(con)
    parts = []
    v, c, m = d.video_seconds, d.caption_chars, d.merchant_products
    if v.count:
        src = charts.histogram("video_duration", v.values, "video duration", "seconds", weights=v.weights)
        parts.append(figure(src, html("{} videos; mean {} s, longest {} s.", n("videos", v.count),
                                      n("video.mean_seconds", round(v.mean, 1), ",.1f"),
                                      n("video.max_seconds", round(v.max, 1), ",.1f"))))
    else:
        parts.append(empty("No downloaded videos with a duration.", "m5data download && m5data extract"))
    if c.count:
        src = charts.histogram("caption_length", c.values, "caption length", "characters", weights=c.weights)
        parts.append(figure(src, html("{} captions; median {} characters.", n("captions", c.count),
                                      n("caption.median_chars", c.median))))
    if m.count:
        src = charts.histogram("merchant_products", m.values, "products per merchant", "products", log_y=True,
                                 weights=m.weights)
        parts.append(figure(src, html("{} merchants; the largest lists {} products.", n("merchants.count", m.count),
                                      n("merchants.max_products", m.max))))
    is_empty = not (v.count or c.count or m.count)
    return html("<p>Like the papers' supplementary Figure 9.</p>") + join(parts), is_empty


def specs(con, top: int) -> tuple[Html, bool]:
    rows = data.top_properties(con, top)
    if not rows:
        return empty("No spec rows yet.", "m5data crawl"), True
    total = data.one(con, "SELECT count(DISTINCT property) FROM report_spec_values")
    body = (html("<p>{} distinct properties; the {} most used:</p>", n("specs.properties", total), len(rows))
            + table(["property", "rows", "distinct values", "most common values"],
                    [[p, n(f"specs.rows.{p}", r), n(f"specs.distinct.{p}", d), common] for p, r, d, common in rows], {1, 2}))
    return body, False


def images(con, charts: Charts) -> tuple[Html, bool]:
    return _counts_section(charts, data.image_tiers(con), IMAGE_TIERS)


def failures(con, charts: Charts) -> tuple[Html, bool]:
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


class CountChart(NamedTuple):
    """A section that is one column chart of (label, count) rows."""

    none: tuple[str, str]  # the message and the command that fills the section when there are no rows
    name: str  # the figure's file name
    title: str
    part: Callable[[str, int], Html]  # one row in the caption
    caption: str  # "{}" takes the rows' parts, "; " between


IMAGE_TIERS = CountChart(("No images with a size tier yet.", "m5data extract --kinds image"), "image_tiers",
                         "images per quality tier", lambda t, c: html("tier {}: {}", t, n(f"image_tier.{t[0]}", c)),
                         "Quality groups by the original's shorter side (M5Product's three groups): {}.")
MATCH_LEVELS = CountChart(("No caption match levels yet.", "m5data annotate match-level"), "match_levels",
                          "captions per match level", lambda lv, c: html("{} {}", lv, n(f"match_level.{lv}", c)),
                          "Caption match levels (well, partially, poorly matched): {}.")


def _counts_section(charts: Charts, rows: list[tuple[str, int]], spec: CountChart) -> tuple[Html, bool]:
    if not rows:
        return empty(*spec.none), True
    src = charts.bars(spec.name, [label for label, _ in rows], [c for _, c in rows], spec.title, horizontal=False)
    return figure(src, html(spec.caption, join((spec.part(label, c) for label, c in rows), "; "))), False


def cut_at_word(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else cut after its last whole word that fits, with "…"
    (mid-word only when the first word alone is too long)."""
    if len(text) <= limit:
        return text
    head = text[:limit]  # one more than fits with the ellipsis: a space there means the word before is whole
    space = head.rfind(" ")
    kept = head[:space] if space > 0 else head[:limit - 1]
    return kept.rstrip(" ,;:") + "…"


def match_levels(con, charts: Charts) -> tuple[Html, bool]:
    return _counts_section(charts, data.match_levels(con), MATCH_LEVELS)


def duplicates(con, charts: Charts, store=None) -> tuple[Html, bool]:
    d = data.duplicates(con)
    if not d.products:
        return empty("No duplicate groups yet.", "m5data annotate dedup"), True
    src = charts.bars("duplicate_groups", [str(s) for s, _ in d.sizes], [g for _, g in d.sizes],
                      "groups by size (products per group)", horizontal=False, xlabel="groups")
    rules = join((html("{} {}", r, n(f"dedup.rule.{r}", c)) for r, c in d.rules), ", ") or "none"
    body = (html("<p>{} groups of two or more hold {} of {} products. Joined by: {}.</p>", n("dedup.groups", d.groups),
                 n("dedup.grouped", d.grouped), n("dedup.products", d.products), rules)
            + figure(src, "Duplicate group sizes."))
    m = run_data.dedup_matcher(store) if store is not None else None
    return body + (_matcher(m, charts) if m is not None else html("")), False


def _matcher(m: run_data.DedupMatcher, charts: Charts) -> Html:
    """How the learned matcher changed the groups, and its precision-recall curve on held-out crowd labels."""
    body = html("<p>Matcher used: {}. It added {} pairs to the rules' pairs: {} groups of two or more, {} from the "
                "rules' pairs alone.</p>", m.used, n("dedup.matcher.added", m.added), n("dedup.matcher.groups", m.groups),
                n("dedup.matcher.groups_rules", m.groups_rules))
    if m.model is None:
        return body
    v = m.model["validation"]
    curve = v.get("pr_curve") or []
    src = charts.curve("matcher_pr", [float(r) for r, _ in curve], [float(p) for _, p in curve],
                       "matcher: precision-recall, held-out folds", "recall", "precision",
                       mark=(float(v.get("recall", 0)), float(v.get("precision", 0))))
    caption = html("Matcher {} on {} held-out crowd-labelled pairs ({} matches): at its threshold {} precision {}, "
                   "recall {} (the star); AUC {}.", m.model["version"], n("matcher.pairs", int(v.get("pairs", 0))),
                   n("matcher.matches", int(v.get("matches", 0))), n("matcher.threshold", m.model["threshold"], ".4f"),
                   n("matcher.precision", float(v.get("precision", 0)), ".4f"),
                   n("matcher.recall", float(v.get("recall", 0)), ".4f"), n("matcher.auc", float(v.get("auc", 0)), ".4f"))
    return body + figure(src, caption)


def alignment(con, store, settings: cfg.Settings, truth, top: int) -> tuple[Html, bool]:
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
    """The review file to show: the configured one (``review.file``, shared with align, which writes it: not
    the path align's runs row recorded, which the store could set to any local file), else align's default
    in the store (only if it is really there)."""
    if settings.review.file:
        return Path(settings.review.file)
    root = store.local_copy(["derived/align/review.csv"])  # on object storage: a local copy
    try:  # the store's own file: a symlink out of the store would show someone else's file
        return resolve_blob(root, "derived/align/review.csv")
    except BlobPathError:
        return root / "derived" / "align" / "missing-review.csv"


def _short(value: str) -> str:
    """A score from the review file with three decimals (it stores full precision)."""
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return value


def splits(con, store) -> tuple[Html, bool]:
    versions = splits_data.split_versions(con, store)
    s = splits_data.splits(con, store.local_copy([f"derived/splits/{v}/manifest.json" for v in versions]), versions)
    if s.version is None:
        return empty("No splits yet.", "m5data build-splits"), True
    body = (html("<p>Version <code>{}</code>.</p>", s.version)
            + table(["split", "products", "sub-classes"], [[sp, n(f"split.{sp}", c), k] for sp, c, k in s.sizes], {1, 2}))
    body += html("<h3>Modality completeness per split</h3>") + table(
        ["split", *data.MODALITIES, "all five"], [[r[0], *r[1:]] for r in s.completeness], set(range(1, 7)))
    if s.manifest is None:
        body += html('<p class="muted">No manifest file found for this version.</p>')
    return body, False


def training(train_run) -> tuple[Html, bool]:
    metrics = run_data.training_metrics(Path(train_run) if train_run else None)
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

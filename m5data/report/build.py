"""The report stage: the store -> ``<out>/index.html`` with ``figures/*.svg`` and ``assets/*`` beside it.

The page opens from disk with no server and no network (no CDN, no script): every figure is a local
SVG written by :mod:`.charts` and every gallery image a local copy. Sections render what the store holds
and say which command fills them when their tables are empty.

Store rows, the review file and a run's ``metrics.json`` are untrusted: their text reaches the page
only through :mod:`.page`'s builders (escaped), and a blob path is opened only through
:func:`~m5data.storage.blobs.resolve_blob`. This module runs the stage; the sections are built by
:mod:`.sections`, the gallery by :mod:`.gallery`, and the output folder is handled by :mod:`.folder`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import config as cfg
from ..egress import gate
from ..errors import UserError
from ..stages import StageRun, opened
from ..storage import StageStats
from . import compliance, compliance_facts, data, facts, folder, incremental
from . import sections as builders
from .charts import Charts
from .gallery import BAD_BLOB, gallery
from .page import Html, document
from .sections import cut_at_word

__all__ = ["BAD_BLOB", "HOLD_MEDIA_PARTS", "REPORT_MEDIA_COLUMNS", "Progress", "ReportError", "ReportResult", "build",
           "check_settings", "cut_at_word", "run"]

Progress = Callable[[str], None]


class ReportError(UserError, ValueError):
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
          train_run: str | Path | None = None, full: bool = False, progress: Progress | None = None,
          run: StageRun | None = None) -> ReportResult:
    """Write the HTML report of ``store`` into ``out``.

    Args:
        out: the report folder: new, empty or written by an earlier report (anything else is refused
            with :class:`ReportError`); the report is built beside it and swapped in.
        truth: a demo shop's ``truth/`` folder: the alignment section then shows align's scores.
        train_run: a training run folder whose ``metrics.json`` fills the training section.
        full: write the report even when nothing it reads changed since its last complete run
            (default: then do nothing, see ``incremental.py``).
        progress: ``progress(section)`` called before each section.
        run: the run the contract opened (``stage.py``'s ``run(ctx, run)``: its ``full`` is the run's, its
            options name these arguments); None: opened here through the contract (``stages.opened``),
            once the settings and the folder are checked.
    """
    check_settings(settings)
    try:
        out = folder.check(Path(out), store.local_copy())
    except folder.FolderError as exc:
        raise ReportError(str(exc)) from None
    with (contextlib.nullcontext(run) if run is not None else
          opened(incremental.STAGE, store, settings, out=out, truth=truth, train_run=train_run, full=full)) as run:
        return _build(run, settings, out, truth, train_run, progress)


def _build(run: StageRun, settings: cfg.Settings, out: Path, truth, train_run, progress: Progress | None) -> ReportResult:
    store, stats, state, marks = run.store, run.stats, run.state, run.marks
    if run.unchanged() and incremental.untouched(state, out):
        return _unchanged(run, out)
    last = incremental.Last.of(run, out)
    staging = folder.staging(out)
    try:
        # on object storage the facts are a local copy, written back when the block ends
        with store.kept(facts.KEPT, lazy=("facts/*.parquet", f"facts/*{facts.TOTAL_SUFFIX}")) as kept:
            made = _sections(store, settings, stats, staging, truth, train_run, progress, kept, last, marks)
        sections, empties = made.sections, made.empties
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
    result = ReportResult(stats, out / "index.html", [a for a, _, _ in sections], empties, figures)
    run.complete({"out": str(out), "truth": str(truth) if truth else None, "full": run.full}, "ok", summary={
        "sections": result.sections, "empty_sections": empties, "figures": figures,
        "products": stats.n_in, "n_out": stats.n_out, **made.memo}, folder=incremental.tree_stamp(out))
    return result


def _unchanged(run: StageRun, out: Path) -> ReportResult:
    """Nothing the report reads changed since its last complete run: the page in ``out`` stands."""
    s = run.state.get("summary") or {}
    run.skip(int(s.get("products", 0)), out=str(out))
    return ReportResult(run.stats, out / "index.html", list(s.get("sections", [])), list(s.get("empty_sections", [])),
                        list(s.get("figures", [])))


# The report reads ``media`` about fifteen times. Each read of the store's view re-does its
# newest-row-per-key window over every part: 2 s a read on a crawl's store of 600 uncompacted media
# parts (30k products), most of the report's time. Past this many parts, the columns the report reads
# are held once in a table of the report's own connection (DuckDB spills it past its memory limit).
HOLD_MEDIA_PARTS = 64
REPORT_MEDIA_COLUMNS = ("product_id", "media_id", "source_media_id", "kind", "role", "position", "status", "blob",
                        "quality_tier", "duration", "error")


# The tables the sections read through the report's connection's views; the others are only
# counted (``Store.count``), so their views are not made: the view of every part of ``pools`` (5M
# rows in 14 parts at 100k products) is not planned and bound each run.
VIEWS = ("label_map", "taxonomy")
# The large tables, read only to make facts of every row (the first and full runs; an incremental run on
# object storage) and for the gallery's new picks: their views are made on first use, in a connection of
# their own (:class:`Large`), so an incremental run with no new pick does not plan and bind them.
LARGE = ("products", "media", "specs", "dedup", "caption_match", "faces", "licenses", "captions")


class Large:
    """The connection with the views of :data:`LARGE`, made on first use (``large()``); closed by ``close``."""

    def __init__(self, store):
        self.store, self.con, self.picked = store, None, []

    def __call__(self):
        if self.con is None:
            self.con = self.store.connect(only=LARGE, cursor=True)  # a cursor of the read database: TEMP views
            _hold_media(self.store, self.con)
        return self.con

    def of(self, report_con, ids: list[str]):
        """A connection whose products, media and specs hold only the view's rows of the products
        ``ids`` (their media rows found by the media facts in ``report_con``; ``store.read_groups``:
        only the parts holding them are read), for the gallery's new picks: no scan of every part
        (3.3 s of CPU at 1M products)."""
        import pyarrow as pa

        from ..storage.readdb import read_cursor

        report_con.register("report_picked", pa.table({"product_id": pa.array(ids, pa.string())}))
        try:
            media = [m for m, in report_con.execute(f"SELECT media_id FROM {facts.KEPT_VIEWS['media']} "
                                                    "WHERE product_id IN (SELECT product_id FROM report_picked)"
                                                    ).fetchall()]
        finally:
            report_con.unregister("report_picked")
        con = read_cursor()  # a cursor of the process's read database (a new one costs 12-15 ms)
        self.picked.append(con)
        for table, values in (("products", ids), ("specs", ids), ("media", media)):
            con.register(table, self.store.read_groups(table, values))
        return con

    def close(self) -> None:
        for con in [self.con, *self.picked]:
            if con is not None:
                con.close()


def _hold_media(store, con) -> None:
    if len(store.parts("media")) <= HOLD_MEDIA_PARTS:
        return
    con.execute(f"CREATE TEMP TABLE report_media AS SELECT {', '.join(REPORT_MEDIA_COLUMNS)} FROM media")
    con.execute("DROP VIEW media")
    con.execute("ALTER TABLE report_media RENAME TO media")


# the withheld products a report's state lists (more: their facts are all made again on any change)
MAX_WITHHELD_KEPT = 100_000
RUNS = "runs"  # not among the tables the report reads (incremental.READS): only its rows are counted
TOTALLED = ("products", "specs", "media", "dedup", "caption_match")  # their rows counted by their totals (data.overview)


def _counted(store, last: incremental.Last, marks: dict[str, int]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Each table's rows as the last run counted them (with the parts it counted), for the tables not
    written since, and counted on from them (``store.count_grown``: the parts written since) for the
    others that allow it, and ``runs`` (which every stage writes) counted on likewise; the rest are counted
    by the overview."""
    counts, counted = last.summary.get("rows") or {}, last.summary.get("row_parts") or {}
    rows: dict[str, int] = {}
    parts: dict[str, list[str]] = {}
    for t, n in counts.items():
        if t == RUNS and t in counted:  # every stage writes a run: counted on from the parts it counted
            grown = store.count_grown(t, int(n), list(counted[t]))  # (its 50 parts by their sidecars: 0.05 s)
            if grown is not None:
                rows[t], parts[t] = grown
            continue
        if t not in marks or t not in last.watermarks or t in TOTALLED:  # those: their totals' sums
            continue  # (which leave out the egress gate's withheld products: data.overview)
        if marks[t] <= int(last.watermarks[t]):
            rows[t] = int(n)
            if t in counted:
                parts[t] = list(counted[t])
        elif t in counted and t not in TOTALLED:
            grown = store.count_grown(t, int(n), list(counted[t]))
            if grown is not None:
                rows[t], parts[t] = grown
    return rows, parts


@dataclass
class Made:
    sections: list[tuple[str, str, Html]]  # every section's (anchor, title, body)
    empties: list[str]  # anchors of sections that only hold guidance
    memo: dict  # what the next run keeps (facts files, figure keys, gallery samples): the state's summary


def _sections(store, settings: cfg.Settings, stats: StageStats, into: Path, truth, train_run,
              progress: Progress | None, kept, last: incremental.Last, marks: dict[str, int]) -> Made:
    """Every section's (anchor, title, body), figures and gallery images written under ``into``."""
    assets_dir = into / "assets"
    assets_dir.mkdir()
    charts = Charts(into / "figures", last.figures, last.summary.get("charts"))
    top = settings.report.top
    con = store.connect(only=VIEWS, cursor=True)  # a cursor of the process's read database: its views are TEMP
    large = Large(store)
    sections: list[tuple[str, str, Html]] = []
    empties: list[str] = []
    memo: dict = {}

    def add(anchor: str, title: str, body: Html, is_empty: bool = False) -> None:
        sections.append((anchor, title, body))
        if is_empty:
            empties.append(anchor)

    def sample_gallery():
        body, is_empty, memo["gallery"] = gallery(con, large, store, assets_dir, settings.report.samples_per_category, stats,
                                                  last.summary.get("gallery"), None if set(f.whole) & set(facts.FLAG_TABLES) else f.touched,
                                                  f.after, last.assets)
        return body, is_empty

    def comply():
        totals, counts, files, memo["compliance"] = compliance_facts.update(store, con, large, kept, f, last, marks)
        f.files.update(files)
        totals = compliance_facts.without_withheld(con, totals, gone)  # the licences the page names
        return compliance.section_of(compliance.domains_of(totals, counts))

    rows, parts = _counted(store, last, marks)
    try:
        # the egress gate's withheld products have no fact: those withheld since the last run have theirs
        # taken away as changed groups; when one it withheld is withheld no more (or its list is unknown)
        # every fact is made again
        gone = gate.withheld_ids(store)
        memo["withheld"] = sorted(gone) if len(gone) <= MAX_WITHHELD_KEPT else None
        was = last.summary.get("withheld", [])
        was = None if was is None else frozenset(was)
        again = was is None or bool(was - gone)
        f = facts.update(store, con, large, kept, None if again else last.facts, last.watermarks, marks, gone,
                         frozenset() if again else gone - was)
        steps = [
            ("overview", "Overview", lambda: builders.overview(con, store, rows, parts)),
            ("long-tail", "Category long tail", lambda: builders.long_tail(con, charts)),
            ("completeness", "Modality completeness", lambda: builders.completeness(con, charts)),
            ("distributions", "Video, caption and merchant distributions", lambda: builders.distributions(con, charts)),
            ("specs", "Spec table: top properties", lambda: builders.specs(con, top)),
            ("images", "Image size tiers", lambda: builders.images(con, charts)),
            ("failures", "Media status and failure reasons", lambda: builders.failures(con, charts)),
            ("match-levels", "Caption match levels", lambda: builders.match_levels(con, charts)),
            ("duplicates", "Duplicate groups", lambda: builders.duplicates(con, charts, store)),
            ("alignment", "Label alignment", lambda: builders.alignment(con, store, settings, truth, top)),
            ("splits", "Splits", lambda: builders.splits(con, store)),
            ("compliance", "Compliance by source domain", comply),
            ("training", "Training run", lambda: builders.training(train_run)),
            ("gallery", "Sample gallery", sample_gallery),
        ]
        stats.n_in = data.product_count(con)
        stats.details["changes"] = incremental.product_counts(store, f, last.state, stats.n_in)
        stats.details["facts"] = f.made
        for anchor, title, make in steps:
            if progress:
                progress(title)
            body, is_empty = make()
            add(anchor, title, body, is_empty)
        facts.forget_others(kept, f.files, last.kept_facts)  # the state in force names the latter until saved
    finally:
        con.close()
        large.close()
    stats.details["figures_drawn"] = charts.drawn
    memo.update(facts=f.files, facts_version=facts.VERSION, charts=charts.keys,
                rows={t: n for t, n in rows.items() if t in marks or t == RUNS},
                row_parts={t: p for t, p in parts.items() if t in marks or t == RUNS})
    return Made(sections, empties, memo)

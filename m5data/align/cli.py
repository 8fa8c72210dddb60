"""``m5data align``: build the unified taxonomy, write the review file, optionally score against a truth.

Exit codes: 0 done (unmapped level-1 names and review-file problems are warnings); 1 a bad option,
mapping file, review file or truth file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..console import esc
from ..verbs import one_line_errors


def align(
    ctx: typer.Context,
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="Level-1 mapping file (TOML/YAML); default align.mapping."),
    review: Optional[Path] = typer.Option(None, "--review", help="Re-apply a reviewed file (accept/reject/rename) without recomputing its scores."),
    review_out: Optional[Path] = typer.Option(None, "--review-out", help="Where to write the review file (.csv or .parquet); default align.review_file."),
    engine: Optional[str] = typer.Option(None, "--engine", help="S_content engine: bulk (sparse matrix, default) or simtext (the library, pair by pair; audits)."),
    weighting: Optional[str] = typer.Option(None, "--weighting", help="binary (simtext's Sim_Cosine, default) or counts (the paper's term frequencies)."),
    label_threshold: Optional[float] = typer.Option(None, "--label-threshold", help="Merge when S_label >= this (default 0.50)."),
    content_threshold: Optional[float] = typer.Option(None, "--content-threshold", help="... and S_content > this (default 0.75)."),
    content_chars: Optional[int] = typer.Option(None, "--content-chars", help="Characters of titles per sub-class (default 22,000)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for jieba segmentation (0 = cores)."),
    renumber: bool = typer.Option(False, "--renumber", help="Number ids afresh instead of keeping the previous run's ids."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth alignment (demo shop truth folder or file): print merge precision/recall."),
) -> None:
    """Align the platforms' category labels into one 3-level taxonomy (MEP-3M method): taxonomy, label_map, review file."""
    import logging

    import jieba

    from ..config import ConfigError
    from ..console import StepProgress, console, stage_summary
    from ..verbs import open_store
    from .mapping import MappingError
    from .review import ReviewError
    from .run import AlignError
    from .run import align as run_align

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines would break the progress bars
    store, s = open_store(ctx, **{
        "align.mapping": str(mapping) if mapping else None, "align.engine": engine, "align.weighting": weighting,
        "align.label_threshold": label_threshold, "align.content_threshold": content_threshold,
        "align.content_chars": content_chars, "align.workers": workers,
    })
    with one_line_errors(AlignError, ConfigError, MappingError, ReviewError):
        with StepProgress("align") as progress:
            report = run_align(store, s, review=review, review_out=review_out, renumber=renumber, progress=progress)
    console.print(stage_summary(report.stats))
    console.print(summary_table(report))
    for title, table in warning_tables(report):
        console.print(table)
    console.print(f"review file: [bold]{esc(str(report.review_path))}[/] (borderline pairs first)")
    if score_against is not None:
        from .score import score_against as run_score

        with one_line_errors(FileNotFoundError, ValueError):
            score = run_score(store, score_against)
        console.print(score_table(score, score_against))


def summary_table(report):
    from ..console import Table

    t = Table(title="alignment")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for name, value in [
        ("platform sub-classes", report.n_subclasses), ("unified sub-classes", report.n_groups),
        ("level-3 labels", report.n_children), ("candidate pairs", report.n_pairs),
        ("pairs scored this run", report.n_scored), ("pairs from the review file", report.n_pairs - report.n_scored),
    ]:
        t.add_row(name, f"{value:,}")
    for reason, n in sorted(report.merges.items()):
        t.add_row(f"  merged: {reason}", f"{n:,}")
    for kind, n in sorted(report.overrides.items()):
        t.add_row(f"  review: {kind}", f"{n:,}")
    return t


def warning_tables(report):
    """Tables for what a person must look at: unmapped level-1 names, untitled sub-classes, problems."""
    from ..console import Table

    out = []
    if report.unmapped:
        t = Table(title="unmapped level-1 names (add them to the mapping file)", style="yellow")
        for col in ("platform", "level-1 name", "products"):
            t.add_column(col)
        for (platform, name), n in sorted(report.unmapped.items(), key=lambda kv: -kv[1]):
            t.add_row(platform, name, f"{n:,}")
        out.append(("unmapped", t))
    if report.untitled:
        t = Table(title="sub-classes without titles (not merged by name alone; align.merge_empty_by_name)", style="yellow")
        for col in ("platform", "level-1 name", "sub-class"):
            t.add_column(col)
        for key in report.untitled[:50]:
            t.add_row(*key)
        if len(report.untitled) > 50:
            t.caption = f"50 of {len(report.untitled)} shown"
        out.append(("untitled", t))
    if report.problems:
        t = Table(title="review file problems", style="yellow")
        t.add_column("problem")
        for line in report.problems[:50]:
            t.add_row(line)
        out.append(("problems", t))
    return out


def score_table(score, truth):
    from ..console import Table

    t = Table(title=f"score against {truth}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("merge precision", f"{score.precision:.4f}")
    t.add_row("merge recall", f"{score.recall:.4f}")
    t.add_row("merge F1", f"{score.f1:.4f}")
    t.add_row("pairs merged by align / by truth / both", f"{score.predicted_pairs:,} / {score.true_pairs:,} / {score.correct_pairs:,}")
    t.add_row("level-1 class accuracy", f"{score.class_accuracy:.4f}")
    t.add_row("merges across truth classes", f"{score.cross_class_merges:,}")
    t.add_row("platform sub-classes scored / not in store", f"{score.units:,} / {score.missing:,}")
    for kind, (found, total) in score.recall_by_kind.items():
        t.add_row(f"  recall of {kind or '?'} pairs", f"{found:,} / {total:,}")
    t.add_row("level-3 precision / recall", f"{score.level3_precision:.4f} / {score.level3_recall:.4f} ({score.level3_units:,} labels)")
    for a, b in score.false_merges:
        t.add_row("  false merge", f"{a}  ~  {b}")
    for a, b, kind in score.missed_merges:
        t.add_row(f"  missed ({kind})", f"{a}  ~  {b}")
    return t

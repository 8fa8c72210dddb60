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
    review_out: Optional[Path] = typer.Option(None, "--review-out", help="Where to write the review file (.csv or .parquet); default review.file."),
    engine: Optional[str] = typer.Option(None, "--engine", help="S_content engine: bulk (sparse matrix, default) or simtext (the library, pair by pair; audits)."),
    weighting: Optional[str] = typer.Option(None, "--weighting", help="binary (simtext's Sim_Cosine, default) or counts (the paper's term frequencies)."),
    label_threshold: Optional[float] = typer.Option(None, "--label-threshold", help="Merge when S_label >= this (default 0.50)."),
    content_threshold: Optional[float] = typer.Option(None, "--content-threshold", help="... and S_content > this (default 0.75)."),
    content_chars: Optional[int] = typer.Option(None, "--content-chars", help="Characters of titles per sub-class (default 22,000)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes for jieba segmentation (0 = cores)."),
    renumber: bool = typer.Option(False, "--renumber", help="Number ids afresh instead of keeping the previous run's ids."),
    full: bool = typer.Option(False, "--full", help="Score every pair again (default: only sub-classes new or changed since the last complete run; nothing when no product was written)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth alignment (demo shop truth folder or file): print merge precision/recall."),
) -> None:
    """Align the platforms' category labels into one 3-level taxonomy (MEP-3M method): taxonomy, label_map, review file.

    \b
    Examples:
      m5data --store st align --mapping level1_mapping.toml
      m5data --store st align --mapping m.toml --review review.csv
    """
    import logging

    import jieba

    from ..console import console
    from ..verbs import run_stage, stage_context

    jieba.setLogLevel(logging.WARNING)  # its "Building prefix dict" lines would break the progress bars
    rctx = stage_context(ctx, progress=True, options={"review": review, "review_out": review_out, "renumber": renumber, "full": full}, **{
        "align.mapping": str(mapping) if mapping else None, "align.engine": engine, "align.weighting": weighting,
        "align.label_threshold": label_threshold, "align.content_threshold": content_threshold,
        "align.content_chars": content_chars, "align.workers": workers,
    })
    details = run_stage("align", rctx).details
    console.print(summary_table(details))
    for table in warning_tables(details):
        console.print(table)
    console.print(f"review file: [bold]{esc(details['review_file'])}[/] (borderline pairs first)")
    if score_against is not None:
        from .score import score_against as run_score

        with one_line_errors(FileNotFoundError, ValueError):
            score = run_score(rctx.store, score_against)
        console.print(score_table(score, score_against))


def summary_table(details: dict):
    """Align's counts, from its stage run's ``details``."""
    from ..console import measures

    pairs, scored = details["candidate_pairs"], details["scored_pairs"]
    rows = [("platform sub-classes", details["subclasses"]), ("unified sub-classes", details["unified_subclasses"]),
            ("level-3 labels", details["level3_labels"]), ("candidate pairs", pairs),
            ("pairs scored this run", scored), ("pairs from the review file", pairs - scored)]
    rows += [(f"  merged: {reason}", n) for reason, n in sorted(details["merged_pairs"].items())]
    rows += [(f"  review: {kind}", n) for kind, n in sorted(details["overrides"].items())]
    return measures("alignment", [(name, f"{n:,}") for name, n in rows])


def warning_tables(details: dict):
    """Tables for what a person must look at: unmapped level-1 names, untitled sub-classes, problems."""
    from ..console import Table

    out = []
    if details["unmapped"]:
        t = Table(title="unmapped level-1 names (add them to the mapping file)", style="yellow")
        for col in ("platform", "level-1 name", "products"):
            t.add_column(col)
        for platform, name, n in details["unmapped"]:
            t.add_row(platform, name, f"{n:,}")
        out.append(t)
    if details["untitled"]:
        t = Table(title="sub-classes without titles (not merged by name alone; align.merge_empty_by_name)", style="yellow")
        for col in ("platform", "level-1 name", "sub-class"):
            t.add_column(col)
        for key in details["untitled"]:
            t.add_row(*key)
        if details["untitled_subclasses"] > len(details["untitled"]):
            t.caption = f"{len(details['untitled'])} of {details['untitled_subclasses']} shown"
        out.append(t)
    if details["problems"]:
        t = Table(title="review file problems", style="yellow")
        t.add_column("problem")
        for line in details["problems"]:
            t.add_row(line)
        out.append(t)
    return out


def score_table(score, truth):
    from ..console import measures, precision_recall

    rows = precision_recall(score, "merge") + [
        ("pairs merged by align / by truth / both", f"{score.predicted_pairs:,} / {score.true_pairs:,} / {score.correct_pairs:,}"),
        ("level-1 class accuracy", f"{score.class_accuracy:.4f}"),
        ("merges across truth classes", f"{score.cross_class_merges:,}"),
        ("platform sub-classes scored / not in store", f"{score.units:,} / {score.missing:,}")]
    rows += [(f"  recall of {kind or '?'} pairs", f"{found:,} / {total:,}") for kind, (found, total) in score.recall_by_kind.items()]
    rows.append(("level-3 precision / recall", f"{score.level3_precision:.4f} / {score.level3_recall:.4f} ({score.level3_units:,} labels)"))
    rows += [("  false merge", f"{a}  ~  {b}") for a, b in score.false_merges]
    rows += [(f"  missed ({kind})", f"{a}  ~  {b}") for a, b, kind in score.missed_merges]
    return measures(f"score against {truth}", rows)

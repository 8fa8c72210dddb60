"""``m5data annotate match-level``: caption match levels, optionally scored against a truth.

Exit codes: 0 done; 1 a bad setting or an unreadable truth file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..verbs import one_line_errors


def match_level(
    ctx: typer.Context,
    well: Optional[float] = typer.Option(None, "--well", help="Level well at score >= this (default 0.6)."),
    partial: Optional[float] = typer.Option(None, "--partial", help="Level partial at score >= this, poor below (default 0.3)."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Cross-fitting folds of the caption classifier (default 5)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth folder of a demo shop (products.parquet with caption_mismatched): print ROC AUC and the 3x3 confusion."),
) -> None:
    """Score how well each caption matches its product (category, spec values, image) into caption_match."""
    import logging

    import jieba

    from ..config import ConfigError
    from ..console import console, stage_summary
    from ..verbs import open_store
    from .match_level import match_level as run_match_level

    jieba.setLogLevel(logging.WARNING)
    store, s = open_store(ctx, **{"annotate.match_well": well, "annotate.match_partial": partial,
                                  "annotate.match_folds": folds})
    truth = None
    if score_against is not None:
        from .dedup import read_truth_products

        with one_line_errors(FileNotFoundError, ValueError):
            truth = read_truth_products(score_against)
    with one_line_errors(ConfigError):
        with console.status("[bold]match-level[/] scoring captions") as status:
            report = run_match_level(store, s, progress=lambda step, done, total: status.update(
                f"[bold]match-level[/] {step} {done}/{total}"))
    console.print(stage_summary(report.stats))
    console.print(summary_table(report))
    if truth is not None:
        from .match_level import score_levels

        score = score_levels(report.rows, truth)
        console.print(score_table(score, score_against))
        console.print(f"ROC AUC {score.auc:.4f} (mismatched captions: {score.positives:,} of {score.products:,} "
                      f"scored; {score.unscored_mismatched:,} without a score)", highlight=False)


def summary_table(report):
    from ..console import Table

    t = Table(title="caption match levels")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for level, n in report.levels.items():
        t.add_row(f"level {level}", f"{n:,}")
    for reason, n in sorted(report.reasons.items(), key=lambda kv: -kv[1]):
        t.add_row(f"  missing evidence: {reason}", f"{n:,}")
    return t


def score_table(score, truth):
    from ..console import Table

    t = Table(title=f"score against {truth}: rows truth, columns predicted")
    t.add_column("truth \\ predicted")
    for level in ("well", "partial", "poor"):
        t.add_column(level, justify="right")
    for level, row in score.confusion.items():
        t.add_row(level, *(f"{n:,}" for n in row.values()))
    return t

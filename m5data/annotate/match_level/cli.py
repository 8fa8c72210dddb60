"""``m5data annotate match-level``: caption match levels, optionally scored against a truth.

Exit codes: 0 done; 1 a bad setting or an unreadable truth file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...console import measures


def match_level(
    ctx: typer.Context,
    well: Optional[float] = typer.Option(None, "--well", help="Level well at score >= this (default 0.6)."),
    partial: Optional[float] = typer.Option(None, "--partial", help="Level partial at score >= this, poor below (default 0.3)."),
    folds: Optional[int] = typer.Option(None, "--folds", help="Cross-fitting folds of the caption classifier (default 5)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth folder of a demo shop (products.parquet with caption_mismatched): print ROC AUC and the 3x3 confusion."),
    full: bool = typer.Option(False, "--full", help="Score every product and fit the kept classifier again (default: score only what changed since the last complete run)."),
) -> None:
    """Score how well each caption matches its product (category, spec values, image) into caption_match.

    \b
    Examples:
      m5data --store st annotate match-level
      m5data --store st annotate match-level --full
    """
    import logging

    import jieba

    from ...console import console
    from ...verbs import run_stage, stage_context

    jieba.setLogLevel(logging.WARNING)
    rctx = stage_context(ctx, progress=True, options={"full": full},
                         **{"match_level.well": well, "match_level.partial": partial, "match_level.folds": folds})
    truth = _truth(score_against)  # before the work: a wrong path fails at once
    d = run_stage("match_level", rctx).details
    rows = [(f"level {level}", f"{n:,}") for level, n in d["levels"].items()]
    rows += [(f"  missing evidence: {reason}", f"{n:,}") for reason, n in sorted(d["reasons"].items(), key=lambda kv: -kv[1])]
    console.print(measures("caption match levels", rows))
    how = f"fitted again ({d['refit']})" if d.get("refit") else "kept classifier"
    console.print(f"scored {d.get('scored', 0):,} products: {how}", highlight=False)
    if truth is not None:
        from .job import score_levels

        score = score_levels(rctx.store.read("caption_match").to_pylist(), truth)
        console.print(score_table(score, score_against))
        console.print(f"ROC AUC {score.auc:.4f} (mismatched captions: {score.positives:,} of {score.products:,} "
                      f"scored; {score.unscored_mismatched:,} without a score)", highlight=False)


def _truth(path: Path | None) -> list[dict] | None:
    """The demo shop's truth products (``--score-against``: the file, the truth folder or the shop), or None
    without one; a bad path or a file without ``product_id`` is one line, exit 1."""
    if path is None:
        return None
    from ...storage.truth_files import truth_rows
    from ...verbs import one_line_errors

    with one_line_errors(FileNotFoundError, ValueError):  # plain text: the path is the user's
        rows = truth_rows(path, "products.parquet")
        if rows and "product_id" not in rows[0]:
            raise ValueError(f"truth {path} has no product_id column")
    return rows


def score_table(score, truth):
    from ...console import Table

    t = Table(title=f"score against {truth}: rows truth, columns predicted")
    t.add_column("truth \\ predicted")
    for level in ("well", "partial", "poor"):
        t.add_column(level, justify="right")
    for level, row in score.confusion.items():
        t.add_row(level, *(f"{n:,}" for n in row.values()))
    return t

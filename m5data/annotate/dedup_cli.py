"""``m5data annotate dedup``: duplicate groups, optionally scored against a truth.

Exit codes: 0 done; 1 a bad setting or an unreadable truth file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..verbs import one_line_errors


def dedup(
    ctx: typer.Context,
    phash_threshold: Optional[int] = typer.Option(None, "--phash-threshold", help="Near-duplicate images: pHash Hamming distance <= this (default 6)."),
    minhash_threshold: Optional[float] = typer.Option(None, "--minhash-threshold", help="Near-duplicate titles: estimated Jaccard of character shingles >= this (default 0.7)."),
    spec_min_shared: Optional[int] = typer.Option(None, "--spec-min-shared", help="Spec rule: properties besides the brand both pages list, all equal (default 2)."),
    no_spec_veto: bool = typer.Option(False, "--no-spec-veto", help="Accept phash/minhash pairs even when brands or spec values disagree."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth folder of a demo shop (products.parquet with instance_id): print pair precision/recall."),
) -> None:
    """Group exact and near-duplicate listings (same image, title, pHash, MinHash, spec values) into the dedup table."""
    from ..config import ConfigError
    from ..console import console, fail, stage_summary
    from ..verbs import open_store
    from .dedup import dedup as run_dedup

    store, s = open_store(ctx, **{
        "annotate.dedup_phash_threshold": phash_threshold, "annotate.dedup_minhash_threshold": minhash_threshold,
        "annotate.dedup_spec_min_shared": spec_min_shared, "annotate.dedup_spec_veto": False if no_spec_veto else None,
    })
    truth = None
    if score_against is not None:
        from .dedup import read_truth_products

        try:
            truth = read_truth_products(score_against)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))  # plain text: the path is the user's, the message may quote the file
    with one_line_errors(ConfigError):
        with console.status("[bold]dedup[/] finding duplicate groups"):
            report = run_dedup(store, s)
    console.print(stage_summary(report.stats))
    console.print(summary_table(report))
    if truth is not None:
        from .dedup import score_groups

        console.print(score_table(score_groups(report.rows, truth), score_against))


def summary_table(report):
    from ..console import Table

    t = Table(title="duplicate groups")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("products", f"{report.n_products:,}")
    t.add_row("groups of 2+ / products in them", f"{report.n_groups:,} / {report.n_grouped:,}")
    for rule, n in report.pairs.items():
        t.add_row(f"  pairs accepted: {rule}", f"{n:,}")
    for index, n in report.candidates.items():
        t.add_row(f"  candidates checked: {index}", f"{n:,}")
    for rule, n in report.vetoed.items():
        why = "as likely by chance" if rule == "spec" else "by the spec veto"
        t.add_row(f"  rejected {why}: {rule}", f"{n:,}")
    return t


def score_table(score, truth):
    """Pair precision/recall; product ids (from crawled pages) and the truth path printed as text
    (the console's Table never reads a cell or title as markup)."""
    from ..console import Table

    t = Table(title=f"score against {truth}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("pair precision", f"{score.precision:.4f}")
    t.add_row("pair recall", f"{score.recall:.4f}")
    t.add_row("pair F1", f"{score.f1:.4f}")
    t.add_row("pairs predicted / true / both", f"{score.predicted_pairs:,} / {score.true_pairs:,} / {score.correct_pairs:,}")
    t.add_row("products scored", f"{score.products:,}")
    for a, b in score.examples_false:
        t.add_row("  false pair", f"{a} ~ {b}")
    for a, b in score.examples_missed:
        t.add_row("  missed pair", f"{a} ~ {b}")
    return t

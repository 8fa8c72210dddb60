"""``m5data annotate dedup``: duplicate groups, optionally scored against a truth.

Exit codes: 0 done; 1 a bad setting or an unreadable truth file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def dedup(
    ctx: typer.Context,
    phash_threshold: Optional[int] = typer.Option(None, "--phash-threshold", help="Near-duplicate images: pHash Hamming distance <= this (default 6)."),
    minhash_threshold: Optional[float] = typer.Option(None, "--minhash-threshold", help="Near-duplicate titles: estimated Jaccard of character shingles >= this (default 0.7)."),
    spec_min_shared: Optional[int] = typer.Option(None, "--spec-min-shared", help="Spec rule: properties besides the brand both pages list, all equal (default 2)."),
    no_spec_veto: bool = typer.Option(False, "--no-spec-veto", help="Accept phash/minhash pairs even when brands or spec values disagree."),
    matcher: Optional[str] = typer.Option(None, "--matcher", help="rules, or learned: also pairs the trained matcher accepts among wider candidates (default learned; rules when no model)."),
    full: bool = typer.Option(False, "--full", help="Group every product even when nothing it reads changed since the last complete run (default: then its groups stand)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Truth folder of a demo shop (products.parquet with instance_id): print pair precision/recall."),
) -> None:
    """Group exact and near-duplicate listings (same image, title, pHash, MinHash, spec values) into the dedup table.

    \b
    Examples:
      m5data --store st annotate dedup
      m5data --store st annotate dedup --score-against demo-out/shop/truth
    """
    from ...console import console
    from ...verbs import run_stage, stage_context

    rctx = stage_context(ctx, progress=True, options={"full": full}, **{
        "dedup.phash_threshold": phash_threshold, "dedup.minhash_threshold": minhash_threshold,
        "dedup.spec_min_shared": spec_min_shared, "dedup.spec_veto": False if no_spec_veto else None,
        "dedup.matcher": matcher,
    })
    truth = _truth(score_against)  # before the work: a wrong path fails at once
    d = run_stage("dedup", rctx).details
    if d.get("unchanged"):
        console.print("nothing dedup reads changed since its last complete run: its groups stand (--full groups again)")
    console.print(summary_table(d))
    if truth is not None:
        from .score import score_groups

        console.print(score_table(score_groups(rctx.store.read("dedup").to_pylist(), truth), score_against))


def _truth(path: Path | None) -> list[dict] | None:
    """The demo shop's truth products (``--score-against``: the file, the truth folder or the shop), their
    ``product_id`` and ``instance_id``; None without one; a bad path or file is one line, exit 1."""
    if path is None:
        return None
    from ...storage.truth_files import truth_rows
    from ...verbs import one_line_errors

    with one_line_errors(FileNotFoundError, ValueError):  # plain text: the path is the user's
        return truth_rows(path, "products.parquet", ["product_id", "instance_id"])


def summary_table(details: dict):
    """The duplicate groups a dedup run found, from its stage run's ``details``."""
    from ...console import measures

    rows = [("products", f"{details['n_products']:,}"), ("matcher", details.get("matcher", "rules")),
            ("groups of 2+ / products in them", f"{details['n_groups']:,} / {details['n_grouped']:,}")]
    if details.get("n_groups_rules", details["n_groups"]) != details["n_groups"]:
        rows.append(("  groups of the rules' pairs alone", f"{details['n_groups_rules']:,}"))
    rows += [(f"  pairs accepted: {rule}", f"{n:,}") for rule, n in details["pairs"].items()]
    rows += [(f"  candidates checked: {index}", f"{n:,}") for index, n in details["candidates"].items()]
    for rule, n in details["vetoed"].items():
        why = "as likely by chance" if rule == "spec" else "by the spec veto"
        rows.append((f"  rejected {why}: {rule}", f"{n:,}"))
    return measures("duplicate groups", rows)


def score_table(score, truth):
    """Pair precision/recall; product ids (from crawled pages) and the truth path printed as text
    (the console's Table never reads a cell or title as markup)."""
    from ...console import measures, precision_recall

    rows = precision_recall(score, "pair") + [
        ("pairs predicted / true / both", f"{score.predicted_pairs:,} / {score.true_pairs:,} / {score.correct_pairs:,}"),
        ("products scored", f"{score.products:,}")]
    rows += [("  false pair", f"{a} ~ {b}") for a, b in score.examples_false]
    rows += [("  missed pair", f"{a} ~ {b}") for a, b in score.examples_missed]
    return measures(f"score against {truth}", rows)

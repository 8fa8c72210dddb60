"""``m5data annotate tasks | import | simulate | aggregate``: labelling tasks out, crowd judgements in -> accepted matches.

Exit codes: 0 done; 1 a bad option, file or truth folder, or no pools / judgements to work on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...console import esc
from ...verbs import one_line_errors


def import_judgements(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV or JSONL: query_id, candidate_id, worker_id, label (match/mismatch/uncertain), is_gold, [gold_label]."),
) -> None:
    """Import worker judgements into annotations (bad rows are skipped with a reason and line number;
    one worker's two different labels of a pair, or two gold_label values of a pair, keep neither).

    \b
    Examples:
      m5data --store st annotate import judgements.csv
    """

    from ...console import console, stage_summary
    from ...verbs import open_store
    from .judgement_import import import_judgements as run_import

    store, s = open_store(ctx)
    with one_line_errors():
        report = run_import(store, s, file)
    console.print(stage_summary(report.stats))
    console.print(f"{report.n_rows:,} rows read; {report.stats.n_out:,} judgements kept "
                  f"({report.n_written:,} new or changed), {report.n_gold_answers:,} gold answers")
    for line, reason in report.rejects:
        console.print(f"  [yellow]line {line}[/]: {esc(str(reason))}", highlight=False, soft_wrap=True)
    for c in report.conflicts:
        what, kept = ("gold_label values", "no known answer kept") if c.kind == "gold_label" else ("labels", "none kept")
        console.print(f"  [yellow]conflict[/] {esc(c.key)}: lines {', '.join(map(str, c.lines))} give different {what} "
                      f"({esc(', '.join(c.labels))}): {kept}", highlight=False, soft_wrap=True)


def simulate(
    ctx: typer.Context,
    truth: Path = typer.Option(..., "--truth", help="Demo shop folder (or its truth folder): true instances of the products."),
    top: int = typer.Option(0, "--top", help="Simulate the top N candidates of each pool only (0 = all pairs)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Simulated worker pool (default 40)."),
    per_pair: Optional[int] = typer.Option(None, "--per-pair", help="Judgements per pair (default 5, as the papers)."),
    gold: Optional[float] = typer.Option(None, "--gold", help="Share of pairs used as gold questions (default 0.05)."),
) -> None:
    """Write synthetic judgements of the pools' pairs (mixed reliability, spammers, one adversarial, gold).

    \b
    Examples:
      m5data --store st annotate simulate --truth demo-out/shop --top 50
    """
    from ...console import console, stage_summary
    from ...verbs import open_store
    from .simulate import simulate as run_simulate

    store, s = open_store(ctx, **{"crowd.workers": workers, "crowd.workers_per_pair": per_pair,
                                  "crowd.gold": gold})
    with one_line_errors():
        report = run_simulate(store, s, truth, top=top)
    console.print(stage_summary(report.stats))
    kinds: dict[str, int] = {}
    for w in report.workers.values():
        kinds[w["kind"]] = kinds.get(w["kind"], 0) + 1
    console.print(f"{report.n_judgements:,} judgements of {report.n_pairs:,} pairs ({report.n_true_matches:,} true matches, "
                  f"{report.n_gold:,} gold) by {len(report.workers)} workers: "
                  + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    console.print(f"simulated abilities: [bold]{esc(str(report.truth_file))}[/]")


def aggregate(
    ctx: typer.Context,
    method: Optional[str] = typer.Option(None, "--method", help="glad (default: weighted GLAD with gold), majority or dawid_skene."),
    accept: Optional[float] = typer.Option(None, "--accept", help="Accept a pair when P(match) >= this (default 0.5)."),
    score_against: Optional[Path] = typer.Option(None, "--score-against", help="Demo shop (or truth folder): print accuracy of every method, and the Spearman of abilities with the simulated ones."),
) -> None:
    """Aggregate the judgements into matches (P(match), accepted) and workers (ability).

    \b
    Examples:
      m5data --store st annotate aggregate
      m5data --store st annotate aggregate --method majority
    """
    from ...console import Table, console
    from ...verbs import run_stage, stage_context
    from .score import score_methods

    rctx = stage_context(ctx, progress=True, options={},
                         **{"crowd.method": method, "crowd.accept": accept})
    store, s = rctx.store, rctx.settings
    d = run_stage("crowd", rctx).details
    console.print(f"{d['method']}: {d['n_pairs']:,} pairs, {d['n_judgements']:,} judgements, "
                  f"{d['n_workers']:,} workers, {d['n_gold']:,} gold pairs, {d['n_uncertain']:,} uncertain; "
                  f"{d['n_accepted']:,} accepted matches ({d['iterations']} iterations, {d['seconds']:.2f} s, "
                  f"prior {d['prior']:.3f})")
    if score_against is not None:
        with one_line_errors(FileNotFoundError):
            scores = score_methods(store, s, score_against)
        t = Table(title=f"against the truth ({next(iter(scores.values()))['pairs']:,} non-gold pairs)")
        for col in ("method", "accuracy", "match precision", "match recall", "ability Spearman", "seconds"):
            t.add_column(col, justify="right" if col != "method" else "left")
        for m, r in scores.items():
            sp = r.get("ability_spearman")
            t.add_row(m, f"{r['accuracy']:.4f}", f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                      "" if sp is None else f"{sp:.4f}", f"{r['seconds']:.2f}")
        console.print(t)


def tasks(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Folder for tasks.jsonl, tasks.json, tasks.csv and label_config.xml."),
    top: int = typer.Option(0, "--top", help="Candidates per query (0 = the whole pool)."),
    queries: int = typer.Option(0, "--queries", help="Only the first N queries by id (0 = all)."),
    image_prefix: Optional[str] = typer.Option(None, "--image-prefix", help="Prefix for image paths relative to the store (e.g. a URL); default absolute paths."),
    uncertain: int = typer.Option(0, "--uncertain", help="Only N unjudged pairs, those active learning asks next: the trained matcher's least sure of each of N clusters of their features, or from 100 crowd labels on a committee of trees' largest disagreement x density; 0 = all."),
) -> None:
    """Export labelling tasks (query + candidate, images and captions) as JSONL, JSON and CSV for labelling tools.

    \b
    Examples:
      m5data --store st annotate tasks --out tasks/ --top 50
    """
    from ...console import console
    from ...verbs import open_store
    from .tasks import export_tasks

    store, s = open_store(ctx)
    with one_line_errors():
        report = export_tasks(store, out, top=top, queries=queries, image_prefix=image_prefix, uncertain=uncertain, settings=s)
    console.print(f"{report.n_tasks:,} tasks of {report.n_queries:,} queries -> [bold]{esc(str(report.out_dir))}[/] "
                  "(tasks.jsonl, tasks.json, tasks.csv, label_config.xml)")
    if report.no_image or report.empty_caption:
        console.print(f"  sides without an image: {report.no_image:,}; with an empty caption: {report.empty_caption:,}")

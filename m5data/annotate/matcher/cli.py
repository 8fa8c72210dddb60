"""``m5data annotate matcher train|score``: the learned same-product matcher's verbs.

Exit codes: 0 done; 1 a bad setting, a bad labels or pairs file (every bad line named), no model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ...verbs import one_line_errors

app = typer.Typer(no_args_is_help=True, help="The learned same-product matcher: train it on labelled pairs, score pairs.")


@app.command("train")
def train(
    ctx: typer.Context,
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV a,b,label (two stored product ids, 1 same / 0 not); default: the crowd's matches table."),
    precision: Optional[float] = typer.Option(None, "--precision", help="Held-out precision the saved threshold reaches (default 0.9)."),
    text_model: Optional[str] = typer.Option(None, "--text-model", help="Local sentence-transformers folder for the embedding features (default none)."),
) -> None:
    """Train the matcher (cross-validated; threshold chosen on held-out folds) and save it as a new version.

    \b
    Examples:
      m5data --store st annotate matcher train
      m5data --store st annotate matcher train --labels known-pairs.csv
    """
    from ...console import console
    from ...verbs import run_stage, stage_context

    rctx = stage_context(ctx, progress=True, options={"labels": labels},
                         **{"matcher.precision": precision, "annotate.text_model": text_model})
    console.print(validation_table(run_stage("matcher", rctx).details))


@app.command("score")
def score(
    ctx: typer.Context,
    pairs: Path = typer.Option(..., "--pairs", help="CSV with a header; product ids in columns a and b (else the first two)."),
    out: Path = typer.Option(..., "--out", help="Where to write the pairs with a score column (P(same product))."),
    model: Optional[str] = typer.Option(None, "--model", help="Model version (derived/matcher/<version>) or model.json path; default the newest."),
) -> None:
    """Score pairs of stored products: P(same product) in a new score column.

    \b
    Examples:
      m5data --store st annotate matcher score --pairs audit.csv --out scored.csv
    """
    from ...console import console, esc
    from ...verbs import open_store
    from .job import score_file

    store, s = open_store(ctx)
    with one_line_errors():
        report = score_file(store, s, pairs, out, model)
    console.print(f"{report.n_pairs:,} pairs scored with matcher {esc(report.model.version)} in {report.seconds:.2f} s; "
                  f"{report.n_accepted:,} at or above its threshold {report.model.threshold:.4f}: [bold]{esc(str(out))}[/]")


def validation_table(d: dict):
    """The held-out figures saved with the model (the matcher stage's ``details``); paths printed as text,
    never markup."""
    from ...console import Table

    v = d["validation"]
    t = Table(title=f"matcher {d['version']} (held-out, {v['folds']} folds)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("labels", d["source"])
    t.add_row("pairs / matches", f"{v['pairs']:,} / {v['matches']:,}")
    for reason, n in d["n_skipped"].items():
        t.add_row(f"  left out: {reason}", f"{n:,}")
    t.add_row("threshold", f"{d['threshold']:.4f}")
    reached = "" if v["target_reached"] else " (not reached: the most precise threshold)"
    t.add_row("precision (target)", f"{v['precision']:.4f} ({v['target_precision']}){reached}")
    t.add_row("recall / F1", f"{v['recall']:.4f} / {v['f1']:.4f}")
    t.add_row("AUC / best F1", f"{v['auc']:.4f} / {v['best_f1']:.4f}")
    t.add_row("features used", f"{d['features']}")
    t.add_row("seconds: features / fit", f"{d['seconds_features']:.2f} / {d['seconds_fit']:.2f}")
    t.add_row("model", d["path"])
    return t

"""The matcher stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``, training the
learned same-product matcher into a new model version."""

from __future__ import annotations

from ...stages import RunContext
from ...storage import StageStats


def run(ctx: RunContext) -> StageStats:
    """Train the matcher (:func:`.job.train`) on the crowd's ``matches``, or ``options["labels"]`` (a CSV
    of labelled pairs). ``details``: the model's version, threshold, features and held-out validation,
    where it went, its labels' source and what was left out."""
    import contextlib

    from .job import train

    if ctx.progress:
        from ...console import console

        shown = console.status("[bold]matcher[/] computing pair features and cross-validating")
    else:
        shown = contextlib.nullcontext()
    with shown:
        report = train(ctx.store, ctx.settings, ctx.options.get("labels"))
    model = report.model
    report.stats.details.update(
        version=model.version, threshold=model.threshold, features=len(model.features),
        validation=dict(model.validation), path=str(report.path), source=report.source, n_pairs=report.n_pairs,
        n_skipped=dict(report.n_skipped), seconds_features=report.seconds_features, seconds_fit=report.seconds_fit)
    return report.stats

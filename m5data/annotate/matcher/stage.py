"""The matcher stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, training the
learned same-product matcher into a new model version."""

from __future__ import annotations

from ...stages import RunContext, StageRun
from ...storage import StageStats


def check(settings, options: dict) -> None:
    """The ``[matcher]`` settings are usable (ConfigError naming the key) and ``options["labels"]``, when given,
    is a file (MatcherError)."""
    from pathlib import Path

    from .errors import MatcherError
    from .job import check_settings

    check_settings(settings)
    labels = options.get("labels")
    if labels and not Path(labels).is_file():
        raise MatcherError(f"no such file: {labels}")


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Train the matcher (:func:`.job.train`, in the contract's ``run``) on the crowd's ``matches``, or ``options["labels"]`` (a CSV
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
        report = train(ctx.store, ctx.settings, ctx.options.get("labels"), run=run)
    model = report.model
    report.stats.details.update(
        version=model.version, threshold=model.threshold, features=len(model.features),
        validation=dict(model.validation), path=str(report.path), source=report.source, n_pairs=report.n_pairs,
        n_skipped=dict(report.n_skipped), seconds_features=report.seconds_features, seconds_fit=report.seconds_fit)
    return report.stats

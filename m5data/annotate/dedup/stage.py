"""The dedup stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, and what
beside the tables it reads (:data:`.job.READS`) decides its groups (:func:`inputs`)."""

from __future__ import annotations

from collections.abc import Iterable

from ...stages import RunContext, StageRun
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[dedup]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def inputs(ctx: RunContext) -> Iterable:
    """The settings and the matcher that decide the groups (:func:`.job.inputs`)."""
    from .job import inputs

    return inputs(ctx.store, ctx.settings)


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Find the duplicate groups (:func:`.job.dedup`) in the run the contract opened; ``options["full"]``
    (``run.full``): group every product again even when nothing it reads changed. The job's report is in
    ``details``."""
    from .job import dedup

    return run_job(ctx, "dedup", dedup, run=run, status="finding duplicate groups")

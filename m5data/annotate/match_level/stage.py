"""The match-level stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, and
what beside the tables it reads (:data:`.kept_model.READS`) decides its scores (:func:`inputs`)."""

from __future__ import annotations

from collections.abc import Iterable

from ...stages import RunContext, StageRun
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[match_level]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def inputs(ctx: RunContext) -> Iterable:
    """The settings that decide the scores (:func:`.kept_model.inputs`)."""
    from .kept_model import inputs

    return inputs(ctx.settings)


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Score each caption's match level (:func:`.job.match_level`) in the run the contract opened;
    ``options["full"]`` (``run.full``): every product again, the classifier fitted again. The job's report
    is in ``details``."""
    from .job import match_level

    return run_job(ctx, "match_level", match_level, run=run, status="scoring captions")

"""The match-level stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``."""

from __future__ import annotations

from ...stages import RunContext
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[match_level]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def run(ctx: RunContext) -> StageStats:
    """Score each caption's match level (:func:`.job.match_level`); ``options["full"]``: every product
    again, the classifier fitted again. The job's report is in ``details``."""
    from .job import match_level

    return run_job(ctx, "match_level", match_level, status="scoring captions", full=bool(ctx.options.get("full")))

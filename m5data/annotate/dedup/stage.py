"""The dedup stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``."""

from __future__ import annotations

from ...stages import RunContext
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[dedup]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def run(ctx: RunContext) -> StageStats:
    """Find the duplicate groups (:func:`.job.dedup`); ``options["full"]``: group every product again
    even when nothing it reads changed. The job's report is in ``details``."""
    from .job import dedup

    return run_job(ctx, "dedup", dedup, status="finding duplicate groups", full=bool(ctx.options.get("full")))

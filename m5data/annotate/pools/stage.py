"""The pools stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``."""

from __future__ import annotations

from ...stages import RunContext
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[pools]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def run(ctx: RunContext) -> StageStats:
    """Build the candidate pools (:func:`.job.build_pools`). Options: ``full`` (embed and search
    everything again), and the verb's ``split_version``, ``fresh`` and ``ann_check``. The job's report
    is in ``details``."""
    from .job import build_pools

    o = ctx.options
    return run_job(ctx, "pools", build_pools, bar=True, full=bool(o.get("full")), split_version=o.get("split_version"),
                   fresh=bool(o.get("fresh")), ann_check=int(o.get("ann_check") or 0))

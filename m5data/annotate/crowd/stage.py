"""The crowd stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, the aggregation
of the judgements in ``annotations`` into ``matches`` and ``workers``."""

from __future__ import annotations

import functools

from ...stages import RunContext, StageRun
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[crowd]`` settings are usable (ConfigError naming the key) and ``options["method"]``, when given,
    is a method (CrowdError)."""
    from .glad import METHODS
    from .job import CrowdError, check_settings

    check_settings(settings)
    method = options.get("method")
    if method and method not in METHODS:
        raise CrowdError(f"unknown method {method!r} ({', '.join(METHODS)})")


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Aggregate the judgements (:func:`.job.aggregate`) in the contract's ``run``; ``options["method"]``:
    glad, majority or dawid_skene (default ``crowd.method``). The job's report is in ``details``."""
    from .job import aggregate

    return run_job(ctx, "crowd", functools.partial(aggregate, run=run), method=ctx.options.get("method"))

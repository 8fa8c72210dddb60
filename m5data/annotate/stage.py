"""The annotate stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats`` for one job.

The flow runs the jobs of ``flows.annotate_jobs`` in order, one task each (``options["job"]``).
No retries: the jobs are deterministic global jobs over the store; a failure would fail again.
"""

from __future__ import annotations

import importlib

from ..stages import RunContext
from ..storage import StageStats

JOBS = ("dedup", "match_level", "pools", "crowd")


def run(ctx: RunContext) -> StageStats:
    """Run the annotate job ``options["job"]`` (dedup, match_level, pools or crowd) on the store."""
    job = ctx.options.get("job")
    if job not in JOBS:
        raise ValueError(f"unknown annotate job {job!r} (jobs: {', '.join(JOBS)})")
    return importlib.import_module(f"m5data.annotate.{job}").run(ctx.store, ctx.settings,
                                                                 **(ctx.options.get("job_options") or {}))

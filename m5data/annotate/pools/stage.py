"""The pools stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats``, and what
beside the tables it reads (:data:`.next_run.READS`) decides its pools (:func:`inputs`)."""

from __future__ import annotations

from collections.abc import Iterable

from ...stages import RunContext, StageRun
from ...storage import StageStats
from ..stage_job import run_job


def check(settings, options: dict) -> None:
    """The ``[pools]`` settings are usable (:func:`.job.check_settings`: ConfigError naming the key)."""
    from .job import check_settings

    check_settings(settings)


def inputs(ctx: RunContext) -> Iterable:
    """The settings, the code and the split version that decide the pools (:func:`.next_run.inputs`)."""
    from .image_vectors import resolve
    from .job import RUN_VERSION
    from .next_run import inputs

    model = resolve(ctx.store, ctx.settings)  # pools.image = vectors: its model's identity (refused: none, several)
    return inputs(ctx.settings, ctx.options.get("split_version"), RUN_VERSION, model.name if model else "")


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Build the candidate pools (:func:`.job.build_pools`) in the run the contract opened. Options: ``full``
    (``run.full``: embed and search everything again), and the verb's ``split_version``, ``fresh`` and
    ``ann_check``. The job's report is in ``details``."""
    from .job import build_pools

    o = ctx.options
    return run_job(ctx, "pools", build_pools, run=run, bar=True, split_version=o.get("split_version"),
                   fresh=bool(o.get("fresh")), ann_check=int(o.get("ann_check") or 0))

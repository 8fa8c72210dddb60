"""The annotate stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats`` for one job.

The flow runs the jobs of ``flows.annotate_jobs`` in order, one task each (``options["job"]``);
``m5data annotate dedup | match-level | pools | aggregate`` run one job each through the same
``run``. No retries: the jobs are deterministic global jobs over the store; a failure would fail again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path

from ..stages import RunContext
from ..storage import StageStats

JOBS = ("dedup", "match_level", "pools", "crowd")

# each job's function (in m5data/annotate/<job>/job.py) whose report the job's details come from
REPORTS = {"dedup": "dedup", "match_level": "match_level", "pools": "build_pools", "crowd": "aggregate"}


INCREMENTAL_JOBS = ("dedup", "match_level", "pools")  # jobs that do only what changed (dedup: nothing when nothing did) unless ``full``


def run(ctx: RunContext) -> StageStats:
    """Run the annotate job ``options["job"]`` (dedup, match_level, pools or crowd) on the store.

    ``options["job_options"]``: the job function's own arguments (pools: ``split_version``,
    ``fresh``, ``ann_check``; crowd: ``method``). The job's report (its counts beyond the stage
    counts) goes into ``details``; with ``ctx.progress`` its steps are shown.
    """
    job = ctx.options.get("job")
    if job not in JOBS:
        raise ValueError(f"unknown annotate job {job!r} (jobs: {', '.join(JOBS)})")
    work = getattr(importlib.import_module(f"m5data.annotate.{job}.job"), REPORTS[job])
    kwargs = dict(ctx.options.get("job_options") or {})
    if job in INCREMENTAL_JOBS and ctx.options.get("full"):
        kwargs["full"] = True
    with _progress(job) if ctx.progress else contextlib.nullcontext(None) as progress:
        if progress is not None:
            kwargs["progress"] = progress
        report = work(ctx.store, ctx.settings, **kwargs)
    report.stats.details.update(report_details(report))
    return report.stats


def report_details(report) -> dict:
    """A job report's fields as plain values for ``details`` (its stats and written rows left out)."""
    out = {}
    for f in dataclasses.fields(report):
        value = getattr(report, f.name)
        if f.name in ("stats", "table"):
            continue
        if isinstance(value, Mapping):
            value = {str(k): v for k, v in value.items()}
        elif isinstance(value, Path):
            value = str(value)
        out[f.name] = value
    return out


@contextlib.contextmanager
def _progress(job: str):
    """The job's steps: bars for the pools' embedding and search blocks, a status line for the others;
    crowd's aggregation has no steps (None)."""
    from ..console import StepProgress, console

    if job == "crowd":
        yield None
    elif job == "pools":
        with StepProgress("pools", transient=True) as bar:
            yield bar
    else:
        label = job.replace("_", "-")
        with console.status(f"[bold]{label}[/] {STATUS[job]}") as status:
            yield lambda step, done, total: status.update(f"[bold]{label}[/] {step} {done}/{total}")


STATUS = {"dedup": "finding duplicate groups", "match_level": "scoring captions"}

"""How the pipeline flow runs a stage: one generic task over the registry (m5data/stages.py).

:func:`run_stage_task` is the one Prefect task of every stage: it calls the registry entry's
``run(ctx) -> StageStats``. :func:`run_stage` runs one stage the way its entry says: one task, or
``plan.shards`` tasks through the flow's task runner (a sharded stage; crawl by groups of hosts).
It returns the stage's entry for the flow's summary, ``ok`` or
``fatal``, and never raises for a task failure. :func:`shards_flow` is the subflow that holds the
task runner of ``flows.runner`` (Dask, Ray) while the sharded stages run; :func:`stage_flow` runs
one stage alone as a one-task flow.
"""

from __future__ import annotations

import copy
import uuid

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from ..errors import UserError
from ..stages import RunContext, Stage, call, get
from ..storage.runs import changes_note
from .retry import transient


def split_list(text: str) -> list[str]:
    """A comma- or newline-separated setting (``flows.start_urls``, ``flows.stages``) as a list."""
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


# ------------------------------------------------------------------------------------ stage runs
@task(name="stage", retries=0, cache_policy=NO_CACHE)
def run_stage_task(name: str, ctx: RunContext):
    """The one task of every stage: the registry entry ``name``'s ``run(ctx)``; returns its StageStats.

    Retries come from the entry (:func:`stage_task`); ``ctx.attempt`` tells the stage whether this
    is Prefect's retry (download and extract then redo only what failed).
    """
    from prefect.runtime import task_run

    ctx = RunContext(ctx.settings, ctx.run_id, ctx.progress, ctx.options, ctx.create, task_run.run_count or 1)
    return call(name, ctx)


def stage_task(stage: Stage, settings, run_name: str | None = None):
    """:func:`run_stage_task` with the stage's name and retries (``retry_delay`` None: ``flows.retry_delay``)."""
    delay = settings.flows.retry_delay if stage.retry_delay is None else stage.retry_delay
    options = {"name": stage.name, "retries": stage.retries, "retry_delay_seconds": delay}
    if stage.transient_only:
        options["retry_condition_fn"] = transient
    if run_name:
        options["task_run_name"] = run_name
    task_ = run_stage_task.with_options(**options)
    # Dask names a submitted task's key after its __name__: "download_task-<hash>" says on the
    # dashboard (and to the cluster tests) which stage a worker runs
    task_.__name__ = f"{stage.name}_task"
    return task_


_PLAIN = (str, int, float, bool, dict, list, type(None))  # what of a stage's details the summary keeps


def stage_entry(stage: str, status: str, message: str = "", stats=None, **extra) -> dict:
    """One stage's summary: the counts of its StageStats plus the flow's verdict ``status``."""
    from ..storage.redact import redact

    out = {"stage": stage, "status": status, "message": redact(message),  # it goes to Prefect's database: redacted
           "n_in": 0, "n_out": 0, "n_failed": 0, "bytes": 0, "seconds": 0.0, "failures": {},
           "run_status": None, "run_id": None, "details": {}}
    if stats is not None:
        out.update(n_in=stats.n_in or 0, n_out=stats.n_out or 0, n_failed=stats.n_failed or 0,
                   bytes=stats.bytes or 0, seconds=round(stats.seconds, 3), failures=dict(stats.failures),
                   run_status=stats.status, run_id=stats.run_id,
                   details={k: v for k, v in stats.details.items() if isinstance(v, _PLAIN)})
    out.update(extra)
    if not out["message"]:  # the summary's note: new / changed / unchanged, where the stage counts them
        out["message"] = changes_note(out["details"])
    return out


def _from_state(stage: str, state, extra: dict | None = None) -> dict:
    """A stage entry from a finished task state: ok with its StageStats, or fatal with the exception's message."""
    if state.is_completed():
        return stage_entry(stage, "ok", stats=state.result(), **(extra or {}))
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, UserError):  # the user's to fix: its message says it all (m5data/errors.py)
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (state.message or state.name)
    return stage_entry(stage, "fatal", message=message.splitlines()[0] if message else "", **(extra or {}))


def _merge(stage: str, entries: list[dict]) -> dict:
    """Add up the entries of a stage run in shards."""
    from collections import Counter

    failures: Counter = Counter()
    changes: Counter = Counter()
    for e in entries:
        failures.update(e["failures"])
        changes.update((e.get("details") or {}).get("changes") or {})
    bad = [e for e in entries if e["status"] == "fatal"]
    merged = stage_entry(stage, "fatal" if bad else "ok", message="; ".join(e["message"] for e in bad),
                    n_in=sum(e["n_in"] for e in entries), n_out=sum(e["n_out"] for e in entries),
                    n_failed=sum(e["n_failed"] for e in entries), bytes=sum(e["bytes"] for e in entries),
                    seconds=max((e["seconds"] for e in entries), default=0.0), failures=dict(failures),
                    **({"details": {"changes": dict(changes)}} if changes else {}))
    merged["parts"] = entries
    return merged


def _shards_entry(stage: str, futures: list, settings) -> dict:
    """Wait for a stage's shard tasks; their merged entry, or a fatal one when the scheduler went away."""
    from .faults import wait_shards

    lost = wait_shards(futures, stage, settings.flows.scheduler_timeout)
    if lost:  # the shards' outcome is unknown: the stage is fatal, the store resumes (faults.py)
        return stage_entry(stage, "fatal", message=lost[0], lost_shards=lost[1])
    return _merge(stage, [_from_state(stage, f.state, {"shard": i}) for i, f in enumerate(futures)])


def stage_options(stage: Stage, values: dict, previous: dict | None) -> dict:
    """What of the plan ``stage`` gets in ``ctx.options`` (``Stage.options``); ``previous``: the details so far."""
    details = {name: e.get("details", {}) for name, e in (previous or {}).items()}
    return {key: details if key == "previous" else values.get(key) for key in stage.options}


def run_stage(name: str, ctx: RunContext, values: dict, shards: int = 1, previous: dict | None = None) -> dict:
    """Run one stage's task(s) and return its entry (``status`` ok or fatal); never raises for a task failure.

    Args:
        name: a registry entry; its retries, sharding and options come from there.
        ctx: the flow run's context (settings, run id, progress), without the stage's options.
        values: the plan's values a stage may ask for (start_urls, refresh, full).
        shards: shards of a sharded stage (1: one task).
        previous: the entries of the stages run before it in this flow run.
    """
    stage = get(name)
    ctx = ctx.with_options(**stage_options(stage, values, previous))
    if not stage.sharded or shards <= 1:
        ctx.create = stage.creates_store
        return _from_state(name, stage_task(stage, ctx.settings)(name, ctx, return_state=True))
    parts = _shard_contexts(stage, ctx, shards)
    futures = [stage_task(stage, ctx.settings, f"{name}-shard-{i}-of-{len(parts)}").submit(name, part)
               for i, part in enumerate(parts)]
    return _shards_entry(name, futures, ctx.settings)


def _shard_contexts(stage: Stage, ctx: RunContext, shards: int) -> list[RunContext]:
    """One context per shard: by groups of hosts (crawl), or ``shard=[i, n]`` of the pending rows."""
    if stage.shard_by == "hosts":
        from ..crawler.checks import check_start_urls
        from ..crawler.crawl import shard_start_urls

        # one Scrapy process per host group, each on a worker: a host's pages never in two shards
        groups = shard_start_urls(check_start_urls(ctx.options.get("start_urls") or []), shards)
        return [ctx.with_options(start_urls=urls, shard=[i, len(groups)]) for i, urls in enumerate(groups)]
    settings = copy.deepcopy(ctx.settings)
    for key, value in stage.shard_settings:
        settings.set(key, value, "flag")
    one = RunContext(settings, ctx.run_id, False, ctx.options)
    return [one.with_options(shard=[i, shards]) for i in range(shards)]


@flow(name="m5data-stage")
def stage_flow(name: str, store_path: str, overrides: dict | None = None, config_file: str | None = None,
               options: dict | None = None):
    """One stage as a one-task flow, with its retries: its StageStats (a failure raises)."""
    from ..config import load

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    stage = get(name)
    ctx = RunContext(settings, options=dict(options or {}), create=stage.creates_store)
    return stage_task(stage, settings)(name, ctx)


# the sharded block's context, handed from the pipeline flow to its subflow in this process: a
# subflow's parameters are stored by the Prefect server, and the settings may hold secrets
_HANDOFF: dict[str, tuple[RunContext, dict]] = {}


@flow(name="m5data-shards")
def shards_flow(stages: list[str], shards: int, handoff: str) -> dict:
    """Run the sharded stages in ``shards`` tasks each, through this flow's task runner.

    Crawl: one task per group of hosts of the start URLs (at most ``shards``); download and
    extract: ``shards`` tasks over their pending rows.

    A subflow, so that the task runner of ``flows.runner`` (a Dask or Ray cluster) lives only while
    the per-item stages run, and comes from the settings the same way for ``m5data run``, a served
    schedule and a work-pool deployment. Stops at the first fatal stage. ``handoff`` names the
    pipeline flow's context and plan values (:data:`_HANDOFF`).
    """
    ctx, values = _HANDOFF[handoff]
    out: dict[str, dict] = {}
    for stage in stages:
        out[stage] = run_stage(stage, RunContext(ctx.settings, ctx.run_id, False), values, shards=shards)
        if out[stage]["status"] == "fatal":
            break
    return out


def run_sharded(stages: list[str], ctx: RunContext, values: dict, shards: int) -> dict:
    """``shards_flow`` with the task runner of ``flows.runner``, its workers pointed at this run's API."""
    from .faults import quiet_lost_client, record_lost_run
    from .runners import api_for_workers, task_runner

    settings = ctx.settings
    runner = task_runner(settings)
    sub = shards_flow if runner is None else shards_flow.with_options(task_runner=runner)
    handoff = uuid.uuid4().hex
    _HANDOFF[handoff] = (ctx, values)
    try:
        with api_for_workers(settings.flows.runner), quiet_lost_client():
            state = sub(stages, shards, handoff, return_state=True)
    finally:
        _HANDOFF.pop(handoff, None)
    if state.is_completed():
        results = state.result()
        for stage, entry in results.items():
            if entry.get("lost_shards"):  # the flow's own runs row of the run it gave up on
                record_lost_run(str(settings.store_path), stage, entry["message"], len(entry["lost_shards"]), settings)
        return results
    exc = state.result(raise_on_failure=False)  # the cluster did not start, a worker died ...
    message = f"{type(exc).__name__}: {exc}".splitlines()[0] if isinstance(exc, BaseException) else (state.message or "")
    return {stages[0]: stage_entry(stages[0], "fatal", message=f"{settings.flows.runner} runner: {message}")}

"""The whole pipeline as one Prefect flow: crawl -> download -> extract -> align -> annotate -> splits -> export
-> report (-> train, optional).

Every stage is declared once in m5data/stages.py (``REGISTRY``) and runs through one generic task,
:func:`run_stage_task`, which calls the stage's ``run(ctx) -> StageStats`` with a ``RunContext``
(the settings, built once per flow run; the store; the stage's options): a flow run does exactly
what the CLI verbs do, and the flow knows no stage by name. Each stage resumes: running the flow
again (on a schedule, or after a crash) crawls only new pages, fetches only media not yet ok,
extracts only what has no derived output yet, and re-runs the global stages (align, annotate,
splits, export) on the new state.

A stage is *fatal* when its task ends failed after its retries (see :func:`run_stage`): the stages
after it do not run, the flow run ends ``Failed`` and ``m5data run`` exits 1. Per-item failures
(a 404 image, a corrupt video) are counted in ``runs``, never fatal. docs/flows.md lists which
failure of which stage is fatal and which is retried.

An annotate job of ``flows.annotate_jobs`` whose module is not there is skipped with a message.
``m5data run`` (m5data/flows/cli.py) validates everything with :func:`check_plan`
before any work; the flow validates again, so a deployment's bad parameters fail at once too.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from ..stages import SHARDED, STAGES, RunContext, Stage, StageError, get
from .retry import transient
from .runners import PipelineError

ARTIFACT_KEY = "m5data-pipeline"


@dataclass
class Plan:
    """A validated pipeline run: what the flow gets as parameters."""

    store_path: str
    stages: list[str]
    start_urls: list[str] = field(default_factory=list)
    mapping: str | None = None
    kinds: str = "video,audio,image,text"
    shards: int = 1
    refresh: bool = False

    def parameters(self, overrides: dict | None = None, config_file: str | None = None,
                   progress: bool = False) -> dict:
        """The flow's parameters (JSON-serialisable: they also go into deployments)."""
        return {"store_path": self.store_path, "start_urls": self.start_urls, "stages": self.stages,
                "mapping": self.mapping, "kinds": self.kinds, "shards": self.shards, "refresh": self.refresh,
                "overrides": overrides or {}, "config_file": config_file, "progress": progress}


def secrets_out_of_band(plan: Plan, settings, overrides: dict, environ=None) -> bool:
    """Keep the crawl's secrets out of the flow's parameters (Prefect stores them in its database).

    A start URL's ``user:pass`` leaves the URL (it becomes its host's ``Authorization`` header) and a
    ``crawl.headers`` flag leaves ``overrides``; the effective headers go to the tasks through
    ``M5DATA_CRAWL_HEADERS`` in ``environ`` (this process's environment: the tasks run here, or in
    workers and flow-run processes started from it). True when there was such a secret.
    """
    import json
    import os

    from ..crawler import session

    environ = os.environ if environ is None else environ
    plan.start_urls, url_auth = session.split_credentials(plan.start_urls)
    flagged = overrides.pop("crawl.headers", None) is not None
    if not (url_auth or flagged):
        return False
    try:
        headers = session.merge(session.parse_headers(settings.crawl.headers), url_auth)
    except session.SessionError as exc:
        raise PipelineError(f"crawl: {exc}") from None
    session.register_headers(headers)
    environ["M5DATA_CRAWL_HEADERS"] = json.dumps(headers)
    return True


def parse_stages(stages: str | list[str] | None) -> list[str]:
    """``"crawl,download"`` -> ["crawl", "download"], in pipeline order; unknown names are a PipelineError."""
    if stages is None:
        return list(STAGES)
    items = [s.strip().lower() for s in (stages.split(",") if isinstance(stages, str) else stages) if s.strip()]
    unknown = [s for s in items if s not in STAGES]
    if unknown:
        raise PipelineError(f"unknown stage(s) {', '.join(unknown)}; the stages are {', '.join(STAGES)}")
    if not items:
        raise PipelineError(f"no stage given; the stages are {', '.join(STAGES)}")
    return [s for s in STAGES if s in items]


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


def check_plan(settings, start_urls: list[str] | None = None, stages: str | list[str] | None = None,
               mapping: str | None = None, shards: int | None = None) -> Plan:
    """Validate a pipeline run against ``settings`` (``[flows]`` gives every default); raise PipelineError.

    Args:
        settings: the effective settings (store.path, the [flows] section, align.mapping).
        start_urls: crawl start URLs (default: ``flows.start_urls``).
        stages: stages to run (default: ``flows.stages``).
        mapping: align's level-1 mapping (default: ``flows.mapping``, then ``align.mapping``).
        shards: shards of the sharded stages (default: from the runner, see :func:`shard_count`).
    """
    from ..crawler.crawl import check_start_urls
    from ..extract.run import ExtractError, parse_kinds
    from .runners import check_runner, shard_count

    fl = settings.flows
    wanted = parse_stages(stages if stages is not None else fl.stages)
    urls = list(start_urls) if start_urls else _split(fl.start_urls)
    if "crawl" in wanted:
        try:
            urls = check_start_urls(urls)
        except ValueError as exc:
            raise PipelineError(f"crawl: {exc} (or set flows.start_urls)") from None
    mapping = mapping or fl.mapping or settings.align.mapping or None
    if "align" in wanted:
        if not mapping:
            raise PipelineError("align: give --mapping FILE (the level-1 mapping; or set flows.mapping / align.mapping),"
                                " or leave align out of --stages")
        if not Path(mapping).is_file():
            raise PipelineError(f"align: mapping file not found: {mapping}")
    if "extract" in wanted:
        try:
            parse_kinds(fl.kinds)
        except ExtractError as exc:
            raise PipelineError(f"extract: {exc} (flows.kinds)") from None
    if "crawl" not in wanted and not (settings.store_path / "store.json").is_file():
        raise PipelineError(f"no store at {settings.store_path}: run the crawl stage first (or `m5data init`)")
    if fl.retry_delay < 0:
        raise PipelineError(f"flows.retry_delay must be >= 0, got {fl.retry_delay}")
    check_runner(settings)
    n = shards if shards is not None else shard_count(settings)
    if n < 1:
        raise PipelineError(f"shards must be >= 1, got {n}")
    return Plan(store_path=str(settings.store_path.absolute()), stages=wanted, start_urls=urls,
                mapping=str(Path(mapping).absolute()) if mapping else None, kinds=fl.kinds, shards=n,
                refresh=fl.refresh)


def missing_jobs(stage: Stage, settings) -> str | None:
    """Why a stage run once per job (annotate) has nothing to run here, or None when it has."""
    if not stage.jobs:
        return None
    jobs = _split(getattr(settings.flows, stage.jobs))
    if not jobs or all(_job_missing(stage, job) for job in jobs):
        where = stage.job_module.format(job="<job>")
        return f"no {stage.name} job of {', '.join(jobs) or '(none)'} is installed ({where})"
    return None


def _job_missing(stage: Stage, job: str) -> bool:
    try:
        return importlib.util.find_spec(stage.job_module.format(job=job)) is None
    except (ModuleNotFoundError, ValueError):
        return True


# ------------------------------------------------------------------------------------ stage runs
@task(name="stage", retries=0, cache_policy=NO_CACHE)
def run_stage_task(name: str, ctx: RunContext):
    """The one task of every stage: the registry entry ``name``'s ``run(ctx)``; returns its StageStats.

    Retries come from the entry (:func:`stage_task`); ``ctx.attempt`` tells the stage whether this
    is Prefect's retry (download and extract then redo only what failed).
    """
    from prefect.runtime import task_run

    ctx = RunContext(ctx.settings, ctx.run_id, ctx.progress, ctx.options, ctx.create, task_run.run_count or 1)
    return get(name).load()(ctx)


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


def _entry(stage: str, status: str, message: str = "", stats=None, **extra) -> dict:
    """One stage's summary: the counts of its StageStats plus the flow's verdict ``status``."""
    from ..redact import redact

    out = {"stage": stage, "status": status, "message": redact(message),  # it goes to Prefect's database: redacted
           "n_in": 0, "n_out": 0, "n_failed": 0, "bytes": 0, "seconds": 0.0, "failures": {},
           "run_status": None, "run_id": None, "details": {}}
    if stats is not None:
        out.update(n_in=stats.n_in or 0, n_out=stats.n_out or 0, n_failed=stats.n_failed or 0,
                   bytes=stats.bytes or 0, seconds=round(stats.seconds, 3), failures=dict(stats.failures),
                   run_status=stats.status, run_id=stats.run_id,
                   details={k: v for k, v in stats.details.items() if isinstance(v, _PLAIN)})
    out.update(extra)
    return out


def _from_state(stage: str, state, extra: dict | None = None) -> dict:
    """A stage entry from a finished task state: ok with its StageStats, or fatal with the exception's message."""
    if state.is_completed():
        return _entry(stage, "ok", stats=state.result(), **(extra or {}))
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, StageError):
        message = str(exc)
    else:
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else (state.message or state.name)
    return _entry(stage, "fatal", message=message.splitlines()[0] if message else "", **(extra or {}))


def _merge(stage: str, entries: list[dict]) -> dict:
    """Add up the entries of a stage run in shards (or of several annotate jobs)."""
    from collections import Counter

    failures: Counter = Counter()
    for e in entries:
        failures.update(e["failures"])
    bad = [e for e in entries if e["status"] == "fatal"]
    merged = _entry(stage, "fatal" if bad else "ok", message="; ".join(e["message"] for e in bad),
                    n_in=sum(e["n_in"] for e in entries), n_out=sum(e["n_out"] for e in entries),
                    n_failed=sum(e["n_failed"] for e in entries), bytes=sum(e["bytes"] for e in entries),
                    seconds=max((e["seconds"] for e in entries), default=0.0), failures=dict(failures))
    merged["parts"] = entries
    return merged


def _shards_entry(stage: str, futures: list, settings) -> dict:
    """Wait for a stage's shard tasks; their merged entry, or a fatal one when the scheduler went away."""
    from .faults import wait_shards

    lost = wait_shards(futures, stage, settings.flows.scheduler_timeout)
    if lost:  # the shards' outcome is unknown: the stage is fatal, the store resumes (faults.py)
        return _entry(stage, "fatal", message=lost[0], lost_shards=lost[1])
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
        values: the plan's values a stage may ask for (start_urls, refresh, mapping, kinds).
        shards: shards of a sharded stage (1: one task).
        previous: the entries of the stages run before it in this flow run.
    """
    stage = get(name)
    ctx = ctx.with_options(**stage_options(stage, values, previous))
    if stage.jobs:
        return _run_jobs(stage, ctx)
    if not stage.sharded or shards <= 1:
        ctx.create = stage.creates_store
        return _from_state(name, stage_task(stage, ctx.settings)(name, ctx, return_state=True))
    parts = _shard_contexts(stage, ctx, shards)
    futures = [stage_task(stage, ctx.settings, f"{name}-shard-{i}-of-{len(parts)}").submit(name, part)
               for i, part in enumerate(parts)]
    return _shards_entry(name, futures, ctx.settings)


def _shard_contexts(stage: Stage, ctx: RunContext, shards: int) -> list[RunContext]:
    """One context per shard: crawl by groups of hosts, the others by ``shard=[i, n]`` of their pending rows."""
    if "start_urls" in stage.options:
        from ..crawler.crawl import check_start_urls, shard_start_urls

        # one Scrapy process per host group, each on a worker: a host's pages never in two shards
        groups = shard_start_urls(check_start_urls(ctx.options.get("start_urls") or []), shards)
        return [ctx.with_options(start_urls=urls, shard=[i, len(groups)]) for i, urls in enumerate(groups)]
    # one process per shard already: no pool of processes inside a worker (daemonic on Dask)
    settings = copy.deepcopy(ctx.settings)
    settings.set("extract.workers", 1, "flag")
    settings.set("download.pool", "thread", "flag")
    one = RunContext(settings, ctx.run_id, False, ctx.options)
    return [one.with_options(shard=[i, shards]) for i in range(shards)]


def _run_jobs(stage: Stage, ctx: RunContext) -> dict:
    """A stage run once per job, in order (annotate); stops at the first fatal job."""
    entries = []
    for job in _split(getattr(ctx.settings.flows, stage.jobs)):
        if _job_missing(stage, job):
            entries.append(_entry(stage.name, "skipped", job=job,
                                  message=f"job {job}: {stage.job_module.format(job=job)} is not installed"))
            continue
        state = stage_task(stage, ctx.settings, f"{stage.name}-{job}")(stage.name, ctx.with_options(job=job),
                                                                        return_state=True)
        entries.append(_from_state(stage.name, state, {"job": job}))
        if entries[-1]["status"] == "fatal":
            break  # the later jobs read what this one writes
    merged = _merge(stage.name, [e for e in entries if e["status"] != "skipped"])
    merged["parts"] = entries
    return merged


@flow(name="m5data-stage")
def stage_flow(name: str, store_path: str, overrides: dict | None = None, config_file: str | None = None,
               options: dict | None = None):
    """One stage as a one-task flow, with its retries: its StageStats (a failure raises)."""
    from ..config import load

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    stage = get(name)
    ctx = RunContext(settings, options=dict(options or {}), create=stage.creates_store)
    return stage_task(stage, settings)(name, ctx)


def report_folder(settings) -> str:
    """Where the report stage writes the HTML report: ``flows.report_out``, else beside the store."""
    from ..report.stage import report_folder as folder

    return folder(settings)


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


def _run_sharded(stages: list[str], ctx: RunContext, values: dict, shards: int) -> dict:
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
    return {stages[0]: _entry(stages[0], "fatal", message=f"{settings.flows.runner} runner: {message}")}


def summary_markdown(store_path: str, results: dict, fatal: str | None) -> str:
    """The run's per-stage counts as Markdown (the Prefect artifact of the run)."""
    lines = [f"# m5data pipeline: {'FAILED at ' + fatal if fatal else 'completed'}", "",
             f"store: `{store_path}`", "",
             "| stage | status | in | out | failed | seconds | failed by reason / note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for stage, e in results.items():
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(e.get("failures", {}).items(), key=lambda kv: -kv[1])[:6])
        note = "; ".join(x for x in (reasons, e.get("message", "")) if x).replace("|", "\\|")
        lines.append(f"| {stage} | {e['status']} | {e.get('n_in', 0):,} | {e.get('n_out', 0):,} | "
                     f"{e.get('n_failed', 0):,} | {e.get('seconds', 0):.1f} | {note} |")
    return "\n".join(lines) + "\n"


def _artifact(store_path: str, results: dict, fatal: str | None, logger) -> None:
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(summary_markdown(store_path, results, fatal), key=ARTIFACT_KEY,
                                 description=f"m5data pipeline over {store_path}: counts per stage")
    except Exception as exc:  # the summary is also in `runs` and on the terminal: never fail a run for it
        logger.warning(f"could not write the run's artifact: {exc}")


def _quiet_jieba() -> None:
    """jieba sets its logger to DEBUG when imported; under a flow those lines reach Prefect's console handler."""
    try:
        import jieba

        jieba.setLogLevel(logging.INFO)
    except ImportError:
        pass


@flow(name="m5data-pipeline")
def pipeline_flow(store_path: str, start_urls: list[str] | None = None, stages: list[str] | None = None,
                  mapping: str | None = None, kinds: str = "video,audio,image,text", shards: int = 1,
                  refresh: bool = False, overrides: dict | None = None, config_file: str | None = None,
                  progress: bool = False) -> dict:
    """Run the pipeline's stages over one store; returns each stage's entry, by stage name.

    Args:
        store_path: the store (created if missing).
        start_urls: listing pages, sitemaps or robots.txt URLs to crawl (needed when crawl runs).
        stages: stages to run (default: ``flows.stages``); always run in pipeline order.
        mapping: the level-1 mapping file for align (needed when align runs).
        kinds: what extract produces (video, audio, image, text).
        shards: split download and extract into this many shards of their pending rows, and crawl
            into at most this many groups of hosts of ``start_urls``, run as concurrent tasks through
            the flow's task runner (1: run each stage in one task).
        refresh: crawl product pages already stored again (changed products).
        overrides: settings as ``{"section.key": value}`` (a shop on loopback needs
            ``{"crawl.allow_private": True, "download.allow_private": True}``).
        config_file: a TOML settings file.
        progress: show the verbs' progress bars (for a terminal; the CLI sets it).

    Returns:
        ``{stage: entry}``; an entry has status (ok, fatal, skipped, not run), n_in, n_out,
        n_failed, failures, seconds, message and details (the task's own counts). The flow run
        ends Failed (with the same dict as its data) when a stage is fatal.
    """
    from prefect import get_run_logger
    from prefect.runtime import flow_run
    from prefect.states import Failed

    from ..config import load
    from ..redact import install_log_redaction
    from ..storage import Store

    install_log_redaction()  # log rows go to Prefect's database: no credential in them
    logger = get_run_logger()
    _quiet_jieba()
    overrides = {k: v for k, v in (overrides or {}).items() if k != "store.path"}
    settings = load(config_file, {**overrides, "store.path": store_path})  # once: every task gets this object
    ctx = RunContext(settings, run_id=str(flow_run.id or uuid.uuid4().hex), progress=progress)
    values = {"start_urls": list(start_urls or []), "refresh": refresh, "mapping": mapping, "kinds": kinds}
    wanted = parse_stages(stages if stages is not None else settings.flows.stages)
    if "crawl" in wanted:
        Store.open(store_path, create=True)
    results: dict[str, dict] = {}
    fatal = None
    started = time.time()
    for i, stage in enumerate(wanted):
        if stage in results:  # done in a sharded block below
            continue
        if fatal:
            results[stage] = _entry(stage, "not run", message=f"after fatal {fatal}")
            continue
        why = missing_jobs(get(stage), settings)
        if why:
            logger.warning(f"{stage}: skipped: {why}")
            results[stage] = _entry(stage, "skipped", message=why)
            continue
        if stage in SHARDED and shards > 1:  # crawl, download and extract together: one cluster for all
            block = [s for s in wanted[i:i + len(SHARDED)] if s in SHARDED]
            entries = _run_sharded(block, ctx, values, shards)
        else:
            entries = {stage: run_stage(stage, ctx, values, previous=results)}
        for name, entry in entries.items():
            results[name] = entry
            logger.info(f"{name}: {entry['status']}: in {entry['n_in']}, out {entry['n_out']}, "
                        f"failed {entry['n_failed']}" + (f" ({entry['message']})" if entry["message"] else ""))
            if entry["status"] == "fatal":
                fatal = name
    _artifact(store_path, results, fatal, logger)
    logger.info(f"pipeline over {store_path}: {'fatal at ' + fatal if fatal else 'completed'} "
                f"in {time.time() - started:.1f} s")
    if fatal:
        return Failed(message=f"stage {fatal} is fatal: {results[fatal]['message']}", data=results)
    return results

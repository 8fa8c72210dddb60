"""The whole pipeline as one Prefect flow: crawl -> download -> extract -> align -> annotate -> splits -> export
-> report (-> train, optional).

Every task is a thin wrapper over its stage's run function (see the sibling modules), so a flow run
does exactly what the CLI verbs do. Each stage resumes: running the flow again (on a schedule, or
after a crash) crawls only new pages, fetches only media not yet ok, extracts only what has no
derived output yet, and re-runs the global stages (align, annotate, splits, export) on the new state.

A stage is *fatal* when its task ends failed after its retries (see :func:`run_stage`): the stages
after it do not run, the flow run ends ``Failed`` and ``m5data run`` exits 1. Per-item failures
(a 404 image, a corrupt video) are counted in ``runs``, never fatal. docs/flows.md lists which
failure of which stage is fatal and which is retried.

Stages whose code is not installed (annotate, splits, export are optional modules) are skipped
with a message. ``m5data run`` (m5data/flows/cli.py) validates everything with :func:`check_plan`
before any work; the flow validates again, so a deployment's bad parameters fail at once too.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow

from .runners import PipelineError

STAGES = ("crawl", "download", "extract", "align", "annotate", "splits", "export", "report", "train")
SHARDED = ("crawl", "download", "extract")  # the stages a task runner fans out in shards (crawl: by host)
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


def missing_code(stage: str, annotate_jobs: list[str] | None = None) -> str | None:
    """Why ``stage`` cannot run here (its module is not installed), or None when it can."""
    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except ModuleNotFoundError:
            return True

    if stage == "annotate":
        jobs = annotate_jobs or []
        if not jobs or all(absent(f"m5data.annotate.{job}") for job in jobs):
            return f"no annotate job of {', '.join(jobs) or '(none)'} is installed (m5data.annotate.<job>)"
        return None
    if stage in ("splits", "export", "report", "train"):
        for module in (f"m5data.flows.{stage}", f"m5data.{stage}"):
            if absent(module):
                return f"module {module} is not installed"
    return None


# ------------------------------------------------------------------------------------ stage runs
def _entry(stage: str, status: str, message: str = "", row: dict | None = None, **extra) -> dict:
    """One stage's summary: the counts of its ``runs`` row(s) plus the flow's verdict ``status``."""
    from ..redact import redact

    row = dict(row or {})  # the message goes to Prefect's database (state, artifact, log rows): redacted
    out = {"stage": stage, "status": status, "message": redact(message),
           "n_in": row.pop("n_in", 0) or 0, "n_out": row.pop("n_out", 0) or 0,
           "n_failed": row.pop("n_failed", 0) or 0, "bytes": row.pop("bytes", 0) or 0,
           "seconds": row.pop("seconds", 0.0) or 0.0, "failures": row.pop("failures", {}) or {}}
    if isinstance(out["failures"], str):
        import json

        out["failures"] = json.loads(out["failures"] or "{}")
    out["run_status"] = row.pop("status", None)
    out["run_id"] = row.pop("run_id", None)
    for key in ("started_at", "ended_at", "config", "stage"):
        row.pop(key, None)
    out["details"] = {k: v for k, v in row.items() if isinstance(v, (str, int, float, bool, dict, list, type(None)))}
    out.update(extra)
    return out


def _from_state(stage: str, state, extra: dict | None = None) -> dict:
    """A stage entry from a finished task state: ok with its row, or fatal with the exception's message."""
    if state.is_completed():
        result = state.result()
        return _entry(stage, "ok", row=result if isinstance(result, dict) else {"result": result}, **(extra or {}))
    exc = state.result(raise_on_failure=False)
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
                    row={"n_in": sum(e["n_in"] for e in entries), "n_out": sum(e["n_out"] for e in entries),
                         "n_failed": sum(e["n_failed"] for e in entries), "bytes": sum(e["bytes"] for e in entries),
                         "seconds": max((e["seconds"] for e in entries), default=0.0), "failures": dict(failures)})
    merged["parts"] = entries
    return merged


def _shards_entry(stage: str, futures: list, settings) -> dict:
    """Wait for a stage's shard tasks; their merged entry, or a fatal one when the scheduler went away."""
    from .faults import wait_shards

    lost = wait_shards(futures, stage, settings.flows.scheduler_timeout)
    if lost:  # the shards' outcome is unknown: the stage is fatal, the store resumes (faults.py)
        return _entry(stage, "fatal", message=lost[0], lost_shards=lost[1])
    return _merge(stage, [_from_state(stage, f.state, {"shard": i}) for i, f in enumerate(futures)])


def run_stage(stage: str, store_path: str, settings, *, start_urls: list[str], mapping: str | None, kinds: str,
              shards: int, refresh: bool, overrides: dict, config_file: str | None, progress: bool,
              previous: dict | None = None) -> dict:
    """Run one stage's task(s) and return its entry (``status`` ok or fatal); never raises for a task failure.

    Retries: crawl, download and extract retry once after ``flows.retry_delay`` seconds when the
    failure is transient (``retry.transient``); align, annotate, splits and export never retry.
    """
    from .align import align_task
    from .crawl import crawl_task
    from .download import download_task
    from .extract import extract_task

    delay = settings.flows.retry_delay
    common = {"overrides": overrides, "config_file": config_file}
    if stage == "crawl":
        task = crawl_task.with_options(retry_delay_seconds=delay)
        if shards <= 1:
            return _from_state(stage, task(store_path, start_urls, refresh=refresh, progress=progress,
                                           return_state=True, **common))
        from ..crawler.crawl import check_start_urls, shard_start_urls

        # one Scrapy process per host group, each on a worker: a host's pages never in two shards
        groups = shard_start_urls(check_start_urls(start_urls), shards)
        futures = [task.with_options(task_run_name=f"crawl-shard-{i}-of-{len(groups)}")
                   .submit(store_path, urls, refresh=refresh, shard=[i, len(groups)], **common)
                   for i, urls in enumerate(groups)]
        return _shards_entry(stage, futures, settings)
    if stage in SHARDED:
        base = download_task if stage == "download" else extract_task
        task = base.with_options(retry_delay_seconds=delay)
        args = {"kinds": kinds} if stage == "extract" else {}
        if shards <= 1:
            return _from_state(stage, task(store_path, progress=progress, return_state=True, **args, **common))

        # one process per shard already: no pool of processes inside a worker (daemonic on Dask)
        shard_overrides = {**overrides, "extract.workers": 1, "download.pool": "thread"}
        futures = [task.with_options(task_run_name=f"{stage}-shard-{i}-of-{shards}")
                   .submit(store_path, shard=[i, shards], **args, overrides=shard_overrides, config_file=config_file)
                   for i in range(shards)]
        return _shards_entry(stage, futures, settings)
    if stage == "align":
        return _from_state(stage, align_task(store_path, mapping, return_state=True, **common))
    if stage == "annotate":
        from .annotate import annotate_task

        entries = []
        for job in _split(settings.flows.annotate_jobs):
            if missing_code("annotate", [job]):
                entries.append(_entry(stage, "skipped", message=f"job {job}: m5data.annotate.{job} is not installed",
                                      job=job))
                continue
            entries.append(_from_state(stage, annotate_task(store_path, job, return_state=True, **common), {"job": job}))
            if entries[-1]["status"] == "fatal":
                break  # the later jobs read what this one writes
        merged = _merge(stage, [e for e in entries if e["status"] != "skipped"])
        merged["parts"] = entries
        return merged
    if stage == "splits":
        from ..storage import Store
        from .splits import incremental_version, splits_task

        # a later run on a grown store writes a new version and keeps the old ones intact
        version = incremental_version(Store.open(store_path), settings.splits.version)
        return _from_state(stage, splits_task(store_path, version=version, return_state=True, **common))
    if stage == "export":
        from .export import export_task

        fl = settings.flows
        return _from_state(stage, export_task(store_path, split=fl.export_split, fmt=fl.export_format,
                                              return_state=True, **common))
    if stage == "report":
        from .report import report_task

        return _from_state(stage, report_task(store_path, report_folder(settings), return_state=True, **common))
    if stage == "train":
        from .train import train_task

        fl = settings.flows
        exported = ((previous or {}).get("export") or {}).get("details", {})
        shards_dir = fl.train_shards or exported.get("out")
        if not shards_dir or (exported and exported.get("format", "webdataset") != "webdataset"):
            return _entry(stage, "fatal", message="train needs WebDataset shards: run the export stage with "
                                                  "flows.export_format = webdataset, or set flows.train_shards")
        out = fl.train_out or str(Path(store_path).absolute().parent / "m5data-train")
        return _from_state(stage, train_task(shards_dir, out, config=fl.train_config, epochs=fl.train_epochs,
                                             max_steps=fl.train_max_steps or None, store_path=store_path,
                                             evaluate=True, return_state=True))
    raise PipelineError(f"unknown stage {stage!r}")


def report_folder(settings) -> str:
    """Where the report stage writes the HTML report: ``flows.report_out``, else beside the store."""
    return settings.flows.report_out or str(settings.store_path.absolute().parent / "m5data-report")


@flow(name="m5data-shards")
def shards_flow(stages: list[str], store_path: str, kinds: str, shards: int, overrides: dict,
                config_file: str | None = None, start_urls: list[str] | None = None, refresh: bool = False) -> dict:
    """Run the sharded stages in ``shards`` tasks each, through this flow's task runner.

    Crawl: one task per group of hosts of ``start_urls`` (at most ``shards``); download and
    extract: ``shards`` tasks over their pending rows.

    A subflow, so that the task runner of ``flows.runner`` (a Dask or Ray cluster) lives only while
    the per-item stages run, and comes from the settings the same way for ``m5data run``, a served
    schedule and a work-pool deployment. Stops at the first fatal stage.
    """
    from ..config import load

    settings = load(config_file, {**overrides, "store.path": store_path})
    out: dict[str, dict] = {}
    for stage in stages:
        out[stage] = run_stage(stage, store_path, settings, start_urls=list(start_urls or []), mapping=None,
                               kinds=kinds, shards=shards, refresh=refresh, overrides=overrides,
                               config_file=config_file, progress=False)
        if out[stage]["status"] == "fatal":
            break
    return out


def _run_sharded(stages: list[str], store_path: str, settings, kinds: str, shards: int, overrides: dict,
                 config_file: str | None, start_urls: list[str] | None = None, refresh: bool = False) -> dict:
    """``shards_flow`` with the task runner of ``flows.runner``, its workers pointed at this run's API."""
    from .faults import quiet_lost_client, record_lost_run
    from .runners import api_for_workers, task_runner

    runner = task_runner(settings)
    sub = shards_flow if runner is None else shards_flow.with_options(task_runner=runner)
    with api_for_workers(settings.flows.runner), quiet_lost_client():
        state = sub(stages, store_path, kinds, shards, overrides, config_file, start_urls=start_urls, refresh=refresh,
                    return_state=True)
    if state.is_completed():
        results = state.result()
        for stage, entry in results.items():
            if entry.get("lost_shards"):  # the flow's own runs row of the run it gave up on
                record_lost_run(store_path, stage, entry["message"], len(entry["lost_shards"]), settings)
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
    from prefect.states import Failed

    from ..config import load
    from ..storage import Store

    from ..redact import install_log_redaction

    install_log_redaction()  # log rows go to Prefect's database: no credential in them
    logger = get_run_logger()
    _quiet_jieba()
    overrides = {k: v for k, v in (overrides or {}).items() if k != "store.path"}
    settings = load(config_file, {**overrides, "store.path": store_path})
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
        why = missing_code(stage, _split(settings.flows.annotate_jobs))
        if why:
            logger.warning(f"{stage}: skipped: {why}")
            results[stage] = _entry(stage, "skipped", message=why)
            continue
        if stage in SHARDED and shards > 1:  # crawl, download and extract together: one cluster for all
            block = [s for s in wanted[i:i + len(SHARDED)] if s in SHARDED]
            entries = _run_sharded(block, store_path, settings, kinds, shards, overrides, config_file,
                                   start_urls=list(start_urls or []), refresh=refresh)
        else:
            entries = {stage: run_stage(stage, store_path, settings, start_urls=list(start_urls or []), mapping=mapping,
                                        kinds=kinds, shards=shards, refresh=refresh, overrides=overrides,
                                        config_file=config_file, progress=progress, previous=results)}
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

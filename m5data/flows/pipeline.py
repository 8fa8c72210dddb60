"""The whole pipeline as one Prefect flow: crawl -> download -> extract -> align -> annotate -> splits -> export
-> report (-> train, optional).

Every stage is declared once in m5data/stages.py (``REGISTRY``) and runs through one generic task,
``run_stage_task`` (m5data/flows/executor.py), which calls the stage's ``run(ctx) -> StageStats`` with a ``RunContext``
(the settings, built once per flow run; the store; the stage's options): a flow run does exactly
what the CLI verbs do, and the flow knows no stage by name. Each stage resumes: running the flow
again (on a schedule, or after a crash) crawls only new pages, fetches only media not yet ok,
extracts only what has no derived output yet, and re-runs the global stages (align, annotate,
splits, export) on the new state.

A stage is *fatal* when its task ends failed after its retries (see ``executor.run_stage``): the stages
after it do not run, the flow run ends ``Failed`` and ``m5data run`` exits 1. Per-item failures
(a 404 image, a corrupt video) are counted in ``runs``, never fatal. docs/flows.md lists which
failure of which stage is fatal and which is retried.

``annotate`` in the stages is the group of curation stages dedup, match_level and pools (``stages.GROUPS``).
``m5data run`` (m5data/flows/cli.py) validates everything with :func:`check_plan`
before any work; the flow validates again, so a deployment's bad parameters fail at once too.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from prefect import flow

from ..errors import UserError
from ..stages import GROUPS, REGISTRY, SHARDED, STAGES, RunContext, check, get
from ..storage.location import local_folder
from .executor import run_sharded, run_stage, split_list, stage_entry, stage_options
from .runners import PipelineError

ARTIFACT_KEY = "m5data-pipeline"


@dataclass
class Plan:
    """A validated pipeline run: what the flow gets as parameters."""

    store_path: str
    stages: list[str]
    start_urls: list[str] = field(default_factory=list)
    shards: int = 1
    refresh: bool = False
    full: bool = False  # global stages rebuild in full (default: only what changed)

    def parameters(self, overrides: dict | None = None, config_file: str | None = None,
                   progress: bool = False) -> dict:
        """The flow's parameters (JSON-serialisable: they also go into deployments)."""
        return {"store_path": self.store_path, "start_urls": self.start_urls, "stages": self.stages,
                "shards": self.shards, "refresh": self.refresh,
                "full": self.full, "overrides": overrides or {}, "config_file": config_file, "progress": progress}


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
    settings.set("crawl.headers", environ["M5DATA_CRAWL_HEADERS"], "env")  # as a flow that loads them reads them
    return True


def parse_stages(stages: str | list[str] | None) -> list[str]:
    """``"crawl,download"`` -> ["crawl", "download"], in pipeline order; a group (``annotate``) stands for its
    stages (``stages.GROUPS``); unknown names are a PipelineError."""
    if stages is None:
        return list(STAGES)
    named = [s.strip().lower() for s in (stages.split(",") if isinstance(stages, str) else stages) if s.strip()]
    items = [s for name in named for s in GROUPS.get(name, (name,))]
    known = ", ".join([*STAGES, *(f"{g} ({', '.join(m)})" for g, m in GROUPS.items())])
    unknown = [s for s in items if s not in STAGES]
    if unknown:
        raise PipelineError(f"unknown stage(s) {', '.join(unknown)}; the stages are {known}")
    if not items:
        raise PipelineError(f"no stage given; the stages are {known}")
    return [s for s in STAGES if s in items]


def check_plan(settings, start_urls: list[str] | None = None, stages: str | list[str] | None = None,
               shards: int | None = None) -> Plan:
    """Validate a pipeline run against ``settings`` (``[flows]`` gives the flow's defaults); raise PipelineError.

    Each selected stage checks its own options and settings (its ``Stage.check``, through
    ``stages.check``, as its verb does); its error becomes a PipelineError naming the stage.

    Args:
        settings: the effective settings (store.path, the [flows] section, each stage's own section).
        start_urls: crawl start URLs (default: ``flows.start_urls``).
        stages: stages to run (default: ``flows.stages``).
        shards: shards of the sharded stages (default: from the runner, see :func:`shard_count`).
    """
    from .runners import check_runner, shard_count

    fl = settings.flows
    wanted = parse_stages(stages if stages is not None else fl.stages)
    urls = [u.strip() for u in start_urls] if start_urls else split_list(fl.start_urls)
    values = {"start_urls": urls, "refresh": fl.refresh, "full": fl.full}
    for name in wanted:
        try:
            check(name, settings, stage_options(get(name), values, None))
        except (ValueError, UserError) as exc:  # the stage's own errors (a crawl's start URLs: a ValueError)
            raise PipelineError(f"{name}: {exc}") from None
    creators = [s.name for s in REGISTRY if s.creates_store]
    if not set(creators) & set(wanted) and not _store_exists(settings.store_path):
        raise PipelineError(f"no store at {settings.store_path}: run the {' or '.join(creators)} stage first "
                            "(or `m5data init`)")
    if fl.retry_delay < 0:
        raise PipelineError(f"flows.retry_delay must be >= 0, got {fl.retry_delay}")
    check_runner(settings)
    n = shards if shards is not None else shard_count(settings)
    if n < 1:
        raise PipelineError(f"shards must be >= 1, got {n}")
    folder = local_folder(settings.store_path)
    return Plan(store_path=str(settings.store_path if folder is None else folder.absolute()), stages=wanted,
                start_urls=urls, shards=n, refresh=fl.refresh, full=fl.full)


def _store_exists(path) -> bool:
    """A store folder with its marker, or a store on object storage whose marker is there."""
    if (folder := local_folder(path)) is not None:
        return (folder / "store.json").is_file()
    from ..storage import Store, StoreError

    try:
        Store.open(path)
    except StoreError:
        return False
    return True


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


# the settings ``m5data run`` built, handed to its flow in this process (run_pipeline): a flow's
# parameters are stored by the Prefect server, and the settings may hold secrets. A served or
# deployed flow runs in another process: it builds them from its parameters (once, in the flow)
_SETTINGS: dict[str, object] = {}


def flow_settings(store_path: str, overrides: dict | None, config_file: str | None, handoff: str | None):
    """The flow run's settings: the object handed over in this process under ``handoff``, else
    loaded once from ``overrides`` and ``config_file`` (the store at ``store_path``)."""
    if handoff and handoff in _SETTINGS:
        return _SETTINGS[handoff]
    from ..config import load

    overrides = {k: v for k, v in (overrides or {}).items() if k != "store.path"}
    return load(config_file, {**overrides, "store.path": store_path})


def _quiet_jieba() -> None:
    """jieba sets its logger to DEBUG when imported; under a flow those lines reach Prefect's console handler."""
    try:
        import jieba

        jieba.setLogLevel(logging.INFO)
    except ImportError:
        pass


@flow(name="m5data-pipeline")
def pipeline_flow(store_path: str, start_urls: list[str] | None = None, stages: list[str] | None = None,
                  shards: int = 1, refresh: bool = False, overrides: dict | None = None, config_file: str | None = None,
                  progress: bool = False, settings_handoff: str | None = None, full: bool = False,
                  mapping: str | None = None, kinds: str | None = None) -> dict:
    """Run the pipeline's stages over one store; returns each stage's entry, by stage name.

    Args:
        store_path: the store (created if missing).
        start_urls: listing pages, sitemaps or robots.txt URLs to crawl (needed when crawl runs).
        stages: stages to run (default: ``flows.stages``); always run in pipeline order.
        shards: split download and extract into this many shards of their pending rows, and crawl
            into at most this many groups of hosts of ``start_urls``, run as concurrent tasks through
            the flow's task runner (1: run each stage in one task).
        refresh: crawl product pages already stored again (changed products).
        full: align, splits and report rebuild in full (default: only what changed since their last
            complete run, read from the store; ``m5data serve`` runs incrementally unless ``--full``).
        overrides: settings as ``{"section.key": value}`` (a shop on loopback needs
            ``{"crawl.allow_private": True, "download.allow_private": True}``).
        config_file: a TOML settings file.
        progress: show the verbs' progress bars (for a terminal; the CLI sets it).
        mapping, kinds: the parameters of a deployment made before ``align.mapping`` and ``extract.kinds``
            were the only route (they set those keys; kept for one release).
        settings_handoff: names the settings ``m5data run`` built in this process (:data:`_SETTINGS`);
            without it (a served or deployed run) they are built here from ``overrides`` and ``config_file``.

    Returns:
        ``{stage: entry}``; an entry has status (ok, fatal, skipped, not run), n_in, n_out,
        n_failed, failures, seconds, message and details (the task's own counts). The flow run
        ends Failed (with the same dict as its data) when a stage is fatal.
    """
    from prefect import get_run_logger
    from prefect.runtime import flow_run
    from prefect.states import Failed

    from ..storage import Store
    from ..storage.redact import install_log_redaction

    install_log_redaction()  # log rows go to Prefect's database: no credential in them
    logger = get_run_logger()
    _quiet_jieba()
    old = {"align.mapping": mapping, "extract.kinds": kinds}
    overrides = {**(overrides or {}), **{key: value for key, value in old.items() if value is not None}}
    settings = flow_settings(store_path, overrides, config_file, settings_handoff)  # every task gets this object
    ctx = RunContext(settings, run_id=str(flow_run.id or uuid.uuid4().hex), progress=progress)
    values = {"start_urls": list(start_urls or []), "refresh": refresh, "full": full}
    wanted = parse_stages(stages if stages is not None else settings.flows.stages)
    for name in wanted:  # every stage's check again, before the first stage: a served or deployed run's
        try:             # parameters were never through m5data run's check_plan
            check(name, settings, stage_options(get(name), values, None))
        except (ValueError, UserError) as exc:
            logger.error(f"{name}: {exc}")
            return Failed(message=f"{name}: {exc}", data={})
    if any(get(name).creates_store for name in wanted):
        Store.open(store_path, create=True)
    results: dict[str, dict] = {}
    fatal = None
    started = time.time()
    for i, stage in enumerate(wanted):
        if stage in results:  # done in a sharded block below
            continue
        if fatal:
            results[stage] = stage_entry(stage, "not run", message=f"after fatal {fatal}")
            continue
        if stage in SHARDED and shards > 1:  # crawl, download and extract together: one cluster for all
            block = [s for s in wanted[i:i + len(SHARDED)] if s in SHARDED]
            entries = run_sharded(block, ctx, values, shards)
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

"""``m5data run`` / ``serve`` / ``deploy``: the pipeline flow from the command line (mounted by m5data/cli.py)."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Optional

import typer

from ..console import esc

_START_URL = typer.Option([], "--start-url", help="Crawl start URL (repeatable; default flows.start_urls).")
_STAGES = typer.Option(None, "--stages", help="Comma-separated stages, run in pipeline order: crawl,download,extract,"
                                              "align,annotate (dedup,match_level,pools),splits,export (default flows.stages).")
_RUNNER = typer.Option(None, "--runner", help="Task runner of the crawl/download/extract shards: local, dask or ray (flows.runner).")
_MAPPING = typer.Option(None, "--mapping", help="Level-1 mapping file for align (sets align.mapping).")
_SHARDS = typer.Option(None, "--shards", min=1, help="Shards of download/extract under dask/ray (default: one per worker); crawl: at most this many groups of hosts.")
_KINDS = typer.Option(None, "--kinds", help="What extract produces: video,audio,image,text (sets extract.kinds).")
_CONFIG = typer.Option(None, "--config", help="TOML config file (same as the global --config).")
_FULL = typer.Option(False, "--full", help="Global stages (align, splits, report) rebuild in full (flows.full); "
                                           "default: only what changed since their last complete run.")

# the options of a pipeline run, shared by run, serve and deploy: (parameter, type, option)
PLAN_OPTIONS = (("start_url", list[str], _START_URL), ("stages", Optional[str], _STAGES),
                ("runner", Optional[str], _RUNNER), ("mapping", Optional[Path], _MAPPING),
                ("shards", Optional[int], _SHARDS), ("kinds", Optional[str], _KINDS), ("config", Optional[Path], _CONFIG),
                ("full", bool, _FULL))


def plan_options(verb):
    """Give ``verb`` the options of :data:`PLAN_OPTIONS` after its own; it gets them as one dict ``plan``.

    Typer reads a command's options from its signature: the wrapper's signature is the verb's
    own parameters (less ``plan``) followed by the shared ones, so run, serve and deploy declare them once.
    """
    own = [p for p in inspect.signature(verb).parameters.values() if p.name != "plan"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
              for name, kind, option in PLAN_OPTIONS]

    @functools.wraps(verb)
    def wrapper(*args, **kwargs):
        plan = {name: kwargs.pop(name) for name, _, _ in PLAN_OPTIONS}
        return verb(*args, plan=plan, **kwargs)

    wrapper.__signature__ = inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.name != "ctx"
                                               else p for p in own] + shared)
    return wrapper


def _prepare(ctx: typer.Context, config: Optional[Path], start_url: list[str], stages: Optional[str],
             runner: Optional[str], mapping: Optional[Path], shards: Optional[int], kinds: Optional[str],
             full: bool = False, stored: bool = False):  # the PLAN_OPTIONS
    """Effective settings, the checked plan, and the overrides and config file the flow builds its settings from.

    The crawl's secrets (a start URL's user:pass, a ``crawl.headers`` flag) never become parameters:
    they reach the tasks through this process's environment; ``stored``: the parameters are kept by
    a server for other machines (deploy), where such secrets are refused.
    """
    from .. import config as cfg
    from ..console import fail, warn
    from .pipeline import PipelineError, check_plan, secrets_out_of_band

    root = ctx.find_root().obj or {}
    config_file = config or root.get("config")
    overrides = {k: v for k, v in root.get("overrides", {}).items() if v is not None}
    overrides.update({k: v for k, v in {"flows.runner": runner, "extract.kinds": kinds,
                                         "align.mapping": str(mapping.absolute()) if mapping else None,
                                         "flows.full": True if full else None}.items() if v is not None})
    try:
        settings = cfg.load(config_file, overrides)
        for warning in settings.warnings:  # an old key (flows.kinds is now extract.kinds), a mistyped variable
            warn(warning)
        plan = check_plan(settings, start_urls=start_url or None, stages=stages, shards=shards)
        if settings.align.mapping and "align.mapping" not in overrides:  # from a file or the environment: a
            overrides["align.mapping"] = str(Path(settings.align.mapping).absolute())  # worker runs elsewhere
        if secrets_out_of_band(plan, settings, overrides) and stored:
            fail("deploy: a deployment's parameters are stored by the Prefect server: give crawl credentials "
                 "(crawl.headers, a start URL's user:pass) to its workers through their environment "
                 "(M5DATA_CRAWL_HEADERS) or config file, not as flags")
    except (PipelineError, cfg.ConfigError) as exc:
        fail(str(exc))
    overrides.pop("store.path", None)  # the plan carries the store path
    return settings, plan, overrides, (str(Path(config_file).absolute()) if config_file else None)


def run(
    ctx: typer.Context,
    start_url: list[str] = _START_URL,
    stages: Optional[str] = _STAGES,
    runner: Optional[str] = _RUNNER,
    mapping: Optional[Path] = _MAPPING,
    shards: Optional[int] = _SHARDS,
    kinds: Optional[str] = _KINDS,
    config: Optional[Path] = _CONFIG,
    full: bool = _FULL,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the stages' progress bars."),
) -> None:
    """Run the pipeline flow over one store: crawl, download, extract, align, annotate, splits, export, report (and train).

    Exit code 1 when a stage is fatal (docs/flows.md says which), 0 otherwise.
    """
    from ..console import console
    from ..warm import beside_the_run
    from .launch import print_outcome, run_pipeline

    settings, plan, overrides, config_file = _prepare(ctx, config, start_url, stages, runner, mapping, shards, kinds, full)
    console.print(f"pipeline over [bold]{esc(str(plan.store_path))}[/]: {', '.join(plan.stages)} "
                  f"(runner {settings.flows.runner}{f', {plan.shards} shards' if plan.shards > 1 else ''})",
                  highlight=False)
    with beside_the_run():  # a fresh install's numba kernels compiled on the cores the run leaves idle
        outcome = run_pipeline(plan, settings, overrides, config_file, progress=progress and settings.flows.runner == "local")
    print_outcome(outcome)
    if not outcome.ok:
        raise typer.Exit(1)


STOP_GRACE = 30.0  # seconds from SIGTERM to a forced exit of `m5data serve`


@plan_options
def serve(
    ctx: typer.Context,
    cron: Optional[str] = typer.Option(None, "--cron", help='Cron schedule, e.g. "0 3 * * *".'),
    interval: Optional[float] = typer.Option(None, "--interval", min=1, help="Seconds between runs."),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (flows.deployment)."),
    plan: dict = None,
) -> None:
    """Serve the pipeline flow on a schedule against a real Prefect server (`m5data server start`)."""
    import asyncio
    import os
    import threading
    import time

    from prefect.deployments.runner import EntrypointType
    from prefect.runner import Runner

    from ..console import console, fail
    from .pipeline import pipeline_flow
    from .schedule import EPHEMERAL_HELP, end_children, resolve_api, tidy, use_api

    if (cron is None) == (interval is None):
        fail("give exactly one of --cron \"0 3 * * *\" or --interval SECONDS")
    settings, plan, overrides, config_file = _prepare(ctx, **plan)
    url = resolve_api(settings)
    if not url:
        fail(f"serve needs a real Prefect server. {EPHEMERAL_HELP}")
    deployment = name or settings.flows.deployment
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=cron)
        except ValueError as exc:
            fail(f"--cron {cron!r}: {str(exc).splitlines()[-1]}")
    with use_api(url):
        resumed, ended = tidy(deployment, "crashed", "its serve process is gone (found on the next serve start)")
        if resumed or ended:
            console.print(f"deployment {esc(deployment)}: {'resumed; ' if resumed else ''}{ended} stale run(s) marked crashed")
        console.print(f"serving {esc(deployment)} against {esc(str(url))} ({'cron ' + cron if cron else f'every {interval:g} s'}); "
                      "Ctrl-C or SIGTERM stops it")
        # flow.serve's Runner, built here so that SIGTERM ends the flow-run processes first: Prefect's
        # handler stops the Runner, which then waits for a run in flight (a crawl can take minutes)
        served = Runner(name=deployment, pause_on_shutdown=False, limit=1)
        served.add_flow(pipeline_flow, name=deployment, cron=cron, interval=interval,  # by module path: the runs'
                        parameters=plan.parameters(overrides, config_file),  # processes import m5data.flows.pipeline
                        entrypoint_type=EntrypointType.MODULE_PATH)
        prefect_sigterm = served.handle_sigterm
        ended_on_signal = []

        def on_sigterm(*args) -> None:
            ended_on_signal.append(end_children())
            threading.Thread(target=leave_if_stuck, daemon=True).start()
            prefect_sigterm(*args)

        def leave_if_stuck() -> None:
            # Prefect's shutdown runs from the signal handler and was seen to hang once (a loaded CI
            # machine); whatever happens there, a SIGTERM ends this process within STOP_GRACE seconds
            time.sleep(STOP_GRACE)
            with use_api(url):
                _, ended = tidy(deployment, "cancelled", "m5data serve was stopped during this run")
            console.print(f"serve stopped (forced after {STOP_GRACE:g} s): {sum(ended_on_signal)} process(es) ended, "
                          f"{ended} run(s) cancelled")
            os._exit(0)

        served.handle_sigterm = on_sigterm  # Runner.start installs self.handle_sigterm
        try:
            asyncio.run(served.start())
        except KeyboardInterrupt:
            pass
        finally:
            # flow-run processes still there (Ctrl-C): end them, then mark their runs
            stopped = end_children() + sum(ended_on_signal)
            resumed, ended = tidy(deployment, "cancelled", "m5data serve was stopped during this run")
            console.print(f"serve stopped: {stopped} process(es) ended, {ended} run(s) cancelled"
                          + (", deployment resumed" if resumed else ""))


@plan_options
def deploy(
    ctx: typer.Context,
    pool: str = typer.Option(..., "--pool", help="Work pool the deployment runs on (a process pool is created if missing)."),
    cron: Optional[str] = typer.Option(None, "--cron", help='Cron schedule, e.g. "0 3 * * *" (default: none, run on demand).'),
    interval: Optional[float] = typer.Option(None, "--interval", min=1, help="Seconds between runs."),
    name: Optional[str] = typer.Option(None, "--name", help="Deployment name (flows.deployment)."),
    plan: dict = None,
) -> None:
    """Write a deployment of the pipeline flow for a work pool (its workers run it: `prefect worker start --pool NAME`)."""
    from ..console import console, fail
    from .schedule import EPHEMERAL_HELP, ensure_pool, resolve_api, use_api

    if cron is not None and interval is not None:
        fail("give at most one of --cron or --interval")
    settings, plan, overrides, config_file = _prepare(ctx, **plan, stored=True)
    url = resolve_api(settings)
    if not url:
        fail(f"deploy needs a real Prefect server. {EPHEMERAL_HELP}")
    deployment = name or settings.flows.deployment
    with use_api(url):
        from prefect import deploy as prefect_deploy
        from prefect.deployments.runner import EntrypointType

        from .pipeline import pipeline_flow

        if ensure_pool(pool):
            console.print(f"created work pool {esc(repr(pool))} (type process)")
        # by module path: a worker imports m5data.flows.pipeline from its own installed m5data
        runner_dep = pipeline_flow.to_deployment(name=deployment, cron=cron, interval=interval,
                                                 parameters=plan.parameters(overrides, config_file),
                                                 entrypoint_type=EntrypointType.MODULE_PATH)
        dep_ids = prefect_deploy(runner_dep, work_pool_name=pool, build=False, push=False,
                                 print_next_steps_message=False, ignore_warnings=True)
        dep_id = dep_ids[0] if dep_ids else "?"
    console.print(f"deployment m5data-pipeline/{esc(deployment)} ({dep_id}) on work pool {esc(repr(pool))} at {esc(str(url))}")
    console.print(f"  run its work: PREFECT_API_URL={esc(str(url))} prefect worker start --pool {esc(pool)}", highlight=False)
    console.print(f"  start a run now: prefect deployment run 'm5data-pipeline/{esc(deployment)}'", highlight=False)

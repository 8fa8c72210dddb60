"""The stage contract and the registry that the CLI and the pipeline flow are both built from.

A stage is a package with a ``stage.py`` whose ``run(ctx: RunContext) -> StageStats`` does one
stage run over the store: it reads what it needs from the context (the settings, built once; the
store, opened lazily; its options: start URLs, a mapping, its shard) and returns its counts, with
whatever else the flow's summary shows in ``StageStats.details``. It is declared once, below, in
:data:`REGISTRY`: its name, where its ``run`` is, its settings section, whether the flow fans it
out in shards, its retries and its verbs. ``m5data/cli.py`` mounts the verbs from here; a
stage's verb builds one context and calls the same ``run(ctx)`` (``verbs.stage_context``,
``verbs.run_stage``), and ``m5data/flows/pipeline.py`` runs every stage through one generic task
that calls ``run(ctx)`` (docs/architecture.md).

Targets are ``"module:attribute"`` strings, imported when used: this module imports no stage, so
any module may import it (a stage raises :class:`TransientFailure` from here: m5data/errors.py), and ``m5data
--help`` does not import Prefect, DuckDB or PyTorch.

Calling a stage (:func:`call`, :func:`opened`, :func:`second_run` by name; :class:`RunContext`, imported from
here) is m5data/stage_call.py's, a run's bookkeeping (:class:`StageRun`) m5data/stage_run.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ContextManager

from .errors import DownloadFailed, StageError, TransientFailure, UserError  # noqa: F401  (raised by the stages, imported from here)
from .stage_call import RunContext, call_entry, opened_entry, second_run_entry  # RunContext: imported from here
from .stage_run import StageRun, fingerprint, load  # noqa: F401  (the contract's bookkeeping, imported from here)


@dataclass(frozen=True)
class Verb:
    """One ``m5data`` verb: ``target`` is ``module:function`` (a command) or ``module:app`` (a group)."""

    name: str
    target: str
    help: str | None = None  # a group's help (a command's is its docstring)
    group: bool = False
    parent: str | None = None  # the group verb it is a command of (``annotate``); None: ``m5data`` itself


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, declared once.

    Attributes:
        name: the stage's name (``--stages``, the ``runs`` rows, the flow's summary and task names).
        run: ``module:function``, the stage's ``run(ctx: RunContext) -> StageStats``.
        section: its settings section (``[crawl]``, ...), the one its ``run`` reads.
        sharded: the flow fans it out in ``plan.shards`` tasks through the task runner (each gets
            ``options["shard"] = [i, n]``).
        shard_by: ``rows`` (shard i of n of its pending rows) or ``hosts`` (groups of the start
            URLs' hosts, in ``options["start_urls"]``: a host's pages never in two shards).
        shard_settings: settings each shard runs with (one process per shard already: no pool of
            several processes inside a worker; the pools that remain start from a daemonic Dask
            worker too, ``process_pool.py``).
        retries: Prefect retries of its task; ``retry_delay`` seconds between (None: ``flows.retry_delay``).
        transient_only: retry only a transient failure (``flows.retry.transient``).
        options: what of the plan its ``run`` gets in ``ctx.options`` (start_urls, refresh, full;
            ``previous``: the details of the stages run before it, by name); its settings are its section's.
        creates_store: its run creates the store when it is missing (the crawl, the first stage).
        reads: the tables whose watermarks its run compares with its last complete run's (a tuple, or
            ``module:NAME`` of one): ``run.unchanged()``, ``run.since``.
        inputs: ``module:function``, ``inputs(ctx) -> tuple``: what beside those tables decides its result
            (settings sections, options, files), fingerprinted once the lock is held: ``run.inputs``.
        state: ``module:function``, ``state(ctx) -> str``: the name of the state it keeps when it is not
            the stage's own (one per export format and split).
        stats: ``module:Class``: its own kind of StageStats (CrawlStats, ...), made from the stage's name.
        lock: :func:`call` holds the stage's lock (the shard's for a shard's run; on object storage a
            lease, renewed while the run lasts, fencing every commit it makes) while it runs; False: none
            (train: it writes no table).
        verbs: its ``m5data`` verbs.
        check: ``module:function``, the stage's ``check(settings, options)``: rejects what it cannot run
            with (a bad option or setting, a missing file) before any work, raising the stage's own error
            with a one-line message; called through :func:`check` by its verbs and the flow's plan check.
    """

    name: str
    run: str
    section: str
    sharded: bool = False
    shard_by: str = "rows"
    shard_settings: tuple[tuple[str, Any], ...] = ()
    retries: int = 0
    retry_delay: float | None = 0
    transient_only: bool = False
    options: tuple[str, ...] = ()
    creates_store: bool = False
    reads: tuple[str, ...] | str = ()
    inputs: str | None = None
    state: str | None = None
    stats: str | None = None
    lock: bool = True
    verbs: tuple[Verb, ...] = ()
    check: str | None = None

    def load(self) -> Callable[[RunContext], Any]:
        """The stage's ``run`` function."""
        return load(self.run)


# pipeline order: each stage reads what the ones before it wrote
REGISTRY: tuple[Stage, ...] = (
    Stage("crawl", "m5data.crawler.stage:run", "crawl", sharded=True, shard_by="hosts", retries=1, retry_delay=None,
          transient_only=True, options=("start_urls", "refresh"), creates_store=True,
          stats="m5data.crawler.crawl:CrawlStats",
          verbs=(Verb("crawl", "m5data.crawler.cli:crawl"),), check="m5data.crawler.stage:check"),
    Stage("download", "m5data.download.stage:run", "download", sharded=True,
          shard_settings=(("download.pool", "thread"),), retries=1, retry_delay=None, transient_only=True,
          stats="m5data.download.run:DownloadStats",
          verbs=(Verb("download", "m5data.download.cli:download"),), check="m5data.download.stage:check"),
    Stage("extract", "m5data.extract.stage:run", "extract", sharded=True, shard_settings=(("extract.workers", 1),),
          retries=1, retry_delay=None, transient_only=True, stats="m5data.extract.run:ExtractStats",
          verbs=(Verb("extract", "m5data.extract.cli:extract"),), check="m5data.extract.stage:check"),
    Stage("vision", "m5data.vision.stage:run", "vision", sharded=True, shard_settings=(("vision.threads", 1),),
          retries=1, retry_delay=None, transient_only=True, options=("full",),
          verbs=(Verb("vision", "m5data.vision.cli:vision"),), check="m5data.vision.stage:check"),
    Stage("align", "m5data.align.stage:run", "align", options=("full",),
          reads="m5data.align.incremental:READS", inputs="m5data.align.stage:inputs",
          verbs=(Verb("align", "m5data.align.cli:align"),), check="m5data.align.stage:check"),
    # the curation stages (m5data/annotate/<name>/), their verbs under ``m5data annotate``
    Stage("dedup", "m5data.annotate.dedup.stage:run", "dedup", options=("full",),
          reads="m5data.annotate.dedup.job:READS", inputs="m5data.annotate.dedup.stage:inputs",
          verbs=(Verb("dedup", "m5data.annotate.dedup.cli:dedup", parent="annotate"),),
          check="m5data.annotate.dedup.stage:check"),
    Stage("match_level", "m5data.annotate.match_level.stage:run", "match_level", options=("full",),
          reads="m5data.annotate.match_level.kept_model:READS", inputs="m5data.annotate.match_level.stage:inputs",
          verbs=(Verb("match-level", "m5data.annotate.match_level.cli:match_level", parent="annotate"),),
          check="m5data.annotate.match_level.stage:check"),
    Stage("pools", "m5data.annotate.pools.stage:run", "pools", options=("full",),
          reads="m5data.annotate.pools.next_run:READS", inputs="m5data.annotate.pools.stage:inputs",
          verbs=(Verb("pools", "m5data.annotate.pools.cli:pools", parent="annotate"),),
          check="m5data.annotate.pools.stage:check"),
    Stage("crowd", "m5data.annotate.crowd.stage:run", "crowd",
          verbs=(Verb("tasks", "m5data.annotate.crowd.cli:tasks", parent="annotate"),
                 Verb("simulate", "m5data.annotate.crowd.cli:simulate", parent="annotate"),
                 Verb("import", "m5data.annotate.crowd.cli:import_judgements", parent="annotate"),
                 Verb("aggregate", "m5data.annotate.crowd.cli:aggregate", parent="annotate"),
                 Verb("serve", "m5data.annotate.ui.cli:serve", parent="annotate")),
          check="m5data.annotate.crowd.stage:check"),
    Stage("matcher", "m5data.annotate.matcher.stage:run", "matcher",
          verbs=(Verb("matcher", "m5data.annotate.matcher.cli:app", group=True, parent="annotate",
                      help="The learned same-product matcher: train it on labelled pairs, score pairs."),),
          check="m5data.annotate.matcher.stage:check"),
    Stage("splits", "m5data.splits.stage:run", "splits", options=("full",),
          reads="m5data.splits.stage:READS", inputs="m5data.splits.stage:inputs",
          verbs=(Verb("build-splits", "m5data.splits.cli:build_splits"),
                 Verb("check-splits", "m5data.splits.cli:check_splits")), check="m5data.splits.stage:check"),
    Stage("export", "m5data.export.stage:run", "export", retries=1, retry_delay=10, options=("full",),
          reads="m5data.export.incremental:READS", inputs="m5data.export.stage:inputs",
          state="m5data.export.stage:state",
          verbs=(Verb("export", "m5data.export.cli:export"), Verb("check-shards", "m5data.export.cli:check_shards")),
          check="m5data.export.stage:check"),
    Stage("report", "m5data.report.stage:run", "report", options=("full",),
          reads="m5data.report.incremental:READS", inputs="m5data.report.stage:inputs",
          verbs=(Verb("report", "m5data.report.cli:report"),), check="m5data.report.stage:check"),
    Stage("train", "m5data.train.stage:run", "train", options=("previous",), lock=False,
          verbs=(Verb("train", "m5data.train.cli:train"), Verb("evaluate", "m5data.train.cli:evaluate")),
          check="m5data.train.stage:check"),
)

# stages run together under one name (``--stages annotate``, ``flows.stages``), in pipeline order
GROUPS: dict[str, tuple[str, ...]] = {"annotate": ("dedup", "match_level", "pools")}

# the verbs that are no stage's own: the curation stages' group, the store's, the demo, the flow's
TOOL_VERBS: tuple[Verb, ...] = (
    Verb("annotate", "m5data.annotate.cli:app", group=True,
         help="Curation: duplicate groups, caption match levels, candidate pools, crowd labels, the matcher."),
    Verb("sql", "m5data.tools.store_cli:sql"),
    Verb("stats", "m5data.tools.store_cli:stats"),
    Verb("compact", "m5data.tools.store_cli:compact"),
    Verb("store", "m5data.tools.copy_cli:app", group=True, help="Move a store: copy SRC DST (a folder <-> s3://)."),
    Verb("demo-shop", "m5data.demo.cli:app", group=True,
         help="Generate and serve the demo shop (a synthetic two-platform store on 127.0.0.1)."),
    Verb("import", "m5data.importer.cli:app", group=True,
         help="Read a dataset in another layout (M5Product) into the store."),
    Verb("server", "m5data.flows.server:app", group=True,
         help="Start, stop or check the local Prefect server used for schedules."),
    Verb("demo", "m5data.demo.run:demo"),
    Verb("doctor", "m5data.tools.doctor_cli:doctor"),
    Verb("takedown", "m5data.tools.takedown_cli:takedown"),
    Verb("run", "m5data.flows.cli:run"),
    Verb("serve", "m5data.flows.cli:serve"),
    Verb("deploy", "m5data.flows.cli:deploy"),
)

STAGES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
SHARDED: tuple[str, ...] = tuple(s.name for s in REGISTRY if s.sharded)


class UnknownStage(UserError, KeyError):
    """A stage name the registry does not hold (``run_stage("build-splits")``): one line naming the
    stages (and the stage a verb's name runs); still a KeyError for code that catches one."""

    def __str__(self) -> str:  # KeyError's own quotes the message: one plain line instead
        return str(self.args[0]) if self.args else ""


def get(name: str) -> Stage:
    """The registry entry of stage ``name`` (UnknownStage naming the stages when there is none)."""
    for stage in REGISTRY:
        if stage.name == name:
            return stage
    import difflib

    verbs = {v.name: s.name for s in REGISTRY for v in s.verbs}  # a verb's name: the stage it runs
    near = verbs.get(str(name)) or next(iter(difflib.get_close_matches(str(name), STAGES, n=1)), None)
    hint = f" (did you mean {near!r}?)" if near else ""
    raise UnknownStage(f"unknown stage {name!r}{hint}; the stages are {', '.join(STAGES)}")


def check(name: str, settings, options: dict | None = None) -> None:
    """Check what the registered stage ``name`` is given (its settings, its options) before it runs: its
    ``Stage.check``, which raises the stage's own error in one line. The one check of a stage: its verbs
    (``verbs.run_stage``) and the flow's plan check (``flows.pipeline.check_plan``) both call this."""
    stage = get(name)
    if stage.check:
        load(stage.check)(settings, dict(options or {}))


def call(name: str, ctx: RunContext) -> Any:
    """Run the registered stage ``name``: the one way the CLI's verbs and the flow's task run a stage. The
    contract owns the run's life, and every outcome leaves a ``runs`` row (:func:`.stage_call.call_entry`)."""
    return call_entry(get(name), ctx)


def opened(name: str, store, settings, **options) -> ContextManager[StageRun]:
    """Stage ``name``'s run opened by the contract for a caller that holds a store and settings but no
    context: a stage's job function called directly (the API, a test; :func:`.stage_call.opened_entry`)."""
    return opened_entry(get(name), store, settings, **options)


def second_run(name: str, ctx: RunContext) -> ContextManager[StageRun]:
    """A second run of stage ``name`` inside one :func:`call` (download's retry), under the lock the call's
    run holds, with its own ``runs`` row (:func:`.stage_call.second_run_entry`)."""
    return second_run_entry(get(name), ctx)


# where ``m5data --help`` lists each verb (typer lists the commands, then the groups); a verb not
# named here comes after these
HELP_ORDER = ("sql", "stats", "compact", "demo", "crawl", "download", "extract", "align", "doctor", "takedown", "build-splits",
              "check-splits", "export", "check-shards", "train", "evaluate", "report", "run", "serve", "deploy",
              "demo-shop", "annotate", "import", "server", "store")


def verbs(parent: str | None = None) -> list[Verb]:
    """The verbs of ``m5data`` (the stages' and the tools', in :data:`HELP_ORDER`), or the commands of
    the group verb ``parent`` (in registry order)."""
    everything = [v for v in [v for s in REGISTRY for v in s.verbs] + list(TOOL_VERBS) if v.parent == parent]
    if parent is not None:
        return everything
    rank = {name: i for i, name in enumerate(HELP_ORDER)}
    return sorted(everything, key=lambda v: rank.get(v.name, len(rank)))

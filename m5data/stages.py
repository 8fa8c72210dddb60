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
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import DownloadFailed, StageError, TransientFailure, UserError  # noqa: F401  (raised by the stages, imported from here)
from .stage_run import StageRun, fingerprint, load, record, record_end, run_of, sigterm_interrupts  # noqa: F401  (the contract's bookkeeping)


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
    contract owns the run's life (datatrove's executor is the model: the executor, not the step, owns the
    lock, the skip, the failure row, the stats and the completion): :func:`run_of` builds the run its entry declares, which takes the stage's lock
    (StoreBusy naming the holder while another run of it lives; on object storage a lease, so a run paused
    past it commits nothing more), reads its watermarks and state and fingerprints its inputs; the stage's
    ``run(ctx, run)`` does its work; a run that returned without writing its ``runs`` row gets it here.

    Every outcome leaves a ``runs`` row: a run that raises gets one with status ``failed`` (an
    ``Exception``, a refusal inside the run included: what its check refuses never starts one) or
    ``interrupted`` (Ctrl-C, SIGTERM, Prefect's termination: a ``BaseException`` from outside), its reason
    ``Class: first line of the message`` in ``failures``, unless the run wrote its row already; the
    exception propagates as it was. In the main thread SIGTERM raises KeyboardInterrupt
    while the run lasts (where nothing else handles it). ``options["record"]`` False: no row (a verb
    that runs without a store: ``train``)."""
    import time

    stage = get(name)
    recorded = ctx.options.get("record", True) is not False
    started, run = time.time(), None
    try:
        with sigterm_interrupts():
            run = run_of(stage, ctx)
            with run:
                result = stage.load()(ctx, run)
                if not run.recorded and recorded:
                    _finish(run, result)
                return result
    except BaseException as exc:
        if recorded:
            record_end(stage.name, ctx, run, exc, started)
        raise


@contextlib.contextmanager
def opened(name: str, store, settings, **options) -> Iterator[StageRun]:
    """Stage ``name``'s run opened by the contract (:func:`run_of`) for a caller that holds a store and
    settings but no context: a stage's job function called directly (the API, a test), outside
    :func:`~m5data.stages.call` (which then writes no failed row: the caller sees the exception)."""
    with run_of(get(name), RunContext(settings, options=options, _store=store)) as run:
        yield run


@contextlib.contextmanager
def second_run(name: str, ctx: RunContext) -> Iterator[StageRun]:
    """A second run of stage ``name`` inside one :func:`call` (download's retry: what a stalled first attempt
    left pending in the call's run, then the failures in a run of their own), under the lock the call's run
    holds (the shard's for a shard): its own ``runs`` row however it ends (a failed one written here when it
    raises without one; :func:`call` writes the row of the call's run only)."""
    import dataclasses
    import time

    started = time.time()
    with run_of(dataclasses.replace(get(name), lock=False), ctx) as run:
        try:
            yield run
        except BaseException as exc:
            if ctx.options.get("record", True) is not False:
                record_end(name, ctx, run, exc, started)
            raise


def _finish(run: StageRun, result) -> None:
    """The ``runs`` row of a run that returned without writing one: its returned stats (the run's own
    when it returned none), finished ``ok`` unless they say otherwise."""
    from .storage import StageStats

    if isinstance(result, StageStats):
        run.stats = result
    run.record(None, run.stats.status if run.stats.ended is None else None)


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


@dataclass
class RunContext:
    """What a stage's ``run`` receives, in the CLI as on a flow's worker.

    Picklable: the dask and process task runners send it to their workers. The store is opened
    from the settings on first use, where the stage runs (never pickled).

    Attributes:
        settings: the effective settings (``config.load``), built once per flow run or command.
        run_id: the flow run's id (or a fresh one outside a flow): the run these stage runs belong to.
        progress: show the stage's progress bars (a terminal; the local runner only).
        options: the stage's own options (``Stage.options``, ``shard``, a verb's own).
        create: create the store when it is missing (the crawl, the first stage).
        attempt: 1 for the first try, 2 for Prefect's retry (set by the flow's task).
    """

    settings: Any
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    progress: bool = False
    options: dict = field(default_factory=dict)
    create: bool = False
    attempt: int = 1
    _store: Any = field(default=None, repr=False, compare=False)

    @property
    def store(self):
        """The store at ``settings.store_path``, opened once (created when ``create``)."""
        if self._store is None:
            from .storage import Store

            self._store = Store.from_settings(self.settings, create=self.create)
        return self._store

    @property
    def shard(self) -> tuple[int, int] | None:
        """``(i, n)`` when this run is shard i of n of a stage run, else None."""
        shard = self.options.get("shard")
        return (int(shard[0]), int(shard[1])) if shard else None

    def with_options(self, **options) -> RunContext:
        """A copy with more options (a shard's); the store is opened again where it runs."""
        return RunContext(self.settings, self.run_id, self.progress, {**self.options, **options}, self.create,
                          self.attempt)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"] = None  # a Store holds locks and connections of this process
        return state

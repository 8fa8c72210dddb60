"""Calling a stage, the contract's half that runs it: :class:`RunContext` (what a stage's ``run`` receives)
and, for a registry entry, :func:`call_entry` (the run whose life the contract owns), :func:`opened_entry`
(its run for a job called directly) and :func:`second_run_entry` (a second run inside one call).

m5data/stages.py declares the stages and calls these by name (``stages.call``, ``stages.opened``,
``stages.second_run``: the names every caller uses); this module takes the entry itself, so it imports
nothing of the registry. A run's bookkeeping (its lock, watermarks, state and ``runs`` row) is
m5data/stage_run.py's.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from .stage_run import StageRun, record_end, run_of, sigterm_interrupts

if TYPE_CHECKING:
    from .stages import Stage


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


def call_entry(stage: Stage, ctx: RunContext) -> Any:
    """Run the registered stage ``stage`` (its registry entry; ``stages.call`` by name). The contract owns the
    run's life (datatrove's executor is the model: the executor, not the step, owns the lock, the skip, the
    failure row, the stats and the completion): :func:`run_of` builds the run its entry declares, which takes
    the stage's lock (StoreBusy naming the holder while another run of it lives; on object storage a lease, so
    a run paused past it commits nothing more), reads its watermarks and state and fingerprints its inputs;
    the stage's ``run(ctx, run)`` does its work; a run that returned without writing its ``runs`` row gets it
    here.

    Every outcome leaves a ``runs`` row: a run that raises gets one with status ``failed`` (an
    ``Exception``, a refusal inside the run included: what its check refuses never starts one) or
    ``interrupted`` (Ctrl-C, SIGTERM, Prefect's termination: a ``BaseException`` from outside), its reason
    ``Class: first line of the message`` in ``failures``, unless the run wrote its row already; the
    exception propagates as it was. In the main thread SIGTERM raises KeyboardInterrupt
    while the run lasts (where nothing else handles it). ``options["record"]`` False: no row (a verb
    that runs without a store: ``train``)."""
    import time

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
def opened_entry(stage: Stage, store, settings, **options) -> Iterator[StageRun]:
    """The run of ``stage`` (its registry entry; ``stages.opened`` by name) opened by the contract
    (:func:`run_of`) for a caller that holds a store and settings but no context: a stage's job function
    called directly (the API, a test), outside :func:`call_entry` (which then writes no failed row: the caller
    sees the exception)."""
    with run_of(stage, RunContext(settings, options=options, _store=store)) as run:
        yield run


@contextlib.contextmanager
def second_run_entry(stage: Stage, ctx: RunContext) -> Iterator[StageRun]:
    """A second run of ``stage`` (its registry entry; ``stages.second_run`` by name) inside one
    :func:`call_entry` (download's retry: what a stalled first attempt left pending in the call's run, then the
    failures in a run of their own), under the lock the call's run holds (the shard's for a shard): its own
    ``runs`` row however it ends (a failed one written here when it raises without one; :func:`call_entry`
    writes the row of the call's run only)."""
    import dataclasses
    import time

    started = time.time()
    with run_of(dataclasses.replace(stage, lock=False), ctx) as run:
        try:
            yield run
        except BaseException as exc:
            if ctx.options.get("record", True) is not False:
                record_end(stage.name, ctx, run, exc, started)
            raise


def _finish(run: StageRun, result) -> None:
    """The ``runs`` row of a run that returned without writing one: its returned stats (the run's own
    when it returned none), finished ``ok`` unless they say otherwise."""
    from .storage import StageStats

    if isinstance(result, StageStats):
        run.stats = result
    run.record(None, run.stats.status if run.stats.ended is None else None)

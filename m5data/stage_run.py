"""A stage run's bookkeeping, owned by the contract (``stages.call``, m5data/stage_call.py):
:class:`StageRun` (the lock, the watermarks, the state, the fingerprint, whether the run may be
incremental and from where, the ``runs`` row), :func:`run_of` (the one place a stage's run is built,
from its registry entry; ``stages.opened`` for a job called directly), the row of a run that raised
(:func:`record_end`), SIGTERM read as an interrupt while a stage runs (:class:`sigterm_interrupts`), :func:`record` (the row of a tool's run, no
stage's), :func:`load` (a registry target) and the one run :func:`fingerprint`. It imports nothing of the
registry nor of the calling (m5data/stage_call.py imports it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stage_call import RunContext

class StageRun:
    """A run's bookkeeping, owned by the contract: a stage's work does only its work.

    ``with StageRun(store, "report", reads=READS, inputs=(settings.report, out)) as run:`` takes the
    stage's lock (its lease on object storage, renewed while the run lasts, fencing every commit the
    run makes; ``shard``: a shard's), reads the watermarks of the tables ``reads`` *before* the stage
    reads anything (a write made meanwhile is seen by the next run) and the state the stage saved when
    it last completed, and makes the run's one fingerprint of ``inputs`` (settings, options, files:
    whatever beside the tables decides the result). Then:

    - ``run.unchanged(full)``: nothing the stage reads was written since its last complete run and its
      inputs are the same; ``run.skip(unchanged=n, **config)`` then writes the ``runs`` row of a run that
      did nothing (``details["unchanged"]``, ``changes`` ``new 0, changed 0, unchanged n``);
    - ``run.complete(config, **keep)`` writes the ``runs`` row of ``run.stats`` and then, last, the state
      (watermarks, fingerprint, ``keep``): a run killed before it leaves the previous state, so the next
      run does the work again; ``run.record(config)`` writes the ``runs`` row alone (a stage that keeps no
      state, or one that ended early). A run that raises before its row is written gets it from
      ``stages.call``, ``failed`` or ``interrupted``, with these stats (``run.recorded``: written already).

    ``run.state`` is that last complete run's state (None: never, or unreadable: run in full),
    ``run.marks`` the watermarks, ``run.inputs`` the fingerprint, ``run.stats`` the run's StageStats
    (named ``name``, or ``stats``: a stage's own kind of StageStats). ``lock=False``: the caller holds
    the lock already, or the run takes none (a tool building a store).
    """

    def __init__(self, store, name: str, *, reads: tuple[str, ...] = (), inputs: tuple | Callable[[], tuple] = (),
                 shard: tuple[int, int] | None = None, state: str | None = None, lock: bool = True, stats=None,
                 full: bool = False):
        from .storage import StageStats

        # store: the store, or what opens it when first asked (a run that takes no lock: train's)
        self._store = store
        self.name, self.reads, self.shard, self.lock = name, tuple(reads), shard, lock
        self.full = full  # a full run asked (``--full``): never incremental, never skipped
        self.state_name = state or name
        self.stats = StageStats(name) if stats is None else stats  # a stage's own kind (CrawlStats, ...)
        self._inputs = inputs
        self.marks: dict[str, int] = {}
        self.state: dict | None = None
        self.inputs = ""
        self.given: tuple = ()  # what ``inputs`` gave (a stage reads its choice back: dedup's matcher)
        self._held = None
        self.recorded = False  # its runs row written (record): stages.call writes no other for the run

    @property
    def store(self):
        """The run's store (opened now when it was given as what opens it)."""
        if callable(self._store) and not hasattr(self._store, "read"):
            self._store = self._store()
        return self._store

    def __enter__(self) -> StageRun:
        from .storage import changes

        if self.lock:
            self._held = self.store.stage_lock(self.name, self.shard)
            self._held.__enter__()
        try:
            # before reading: a later write is seen next time
            self.marks = changes.watermarks(self.store, self.reads) if self.reads else {}
            self.state = changes.load_state(self.store, self.state_name) if self.reads else None
            # inputs: a callable is asked once the lock is held (what it reads is this run's)
            self.given = tuple(self._inputs() if callable(self._inputs) else self._inputs)
            self.inputs = fingerprint(*self.given)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(*exc)

    def unchanged(self, full: bool = False) -> bool:
        """True when nothing the stage reads was written since its last complete run, with the same inputs
        (never for a full run: ``full`` or the run's own)."""
        from .storage import changes

        return not (full or self.full) and changes.unchanged_since(self.state, self.marks, self.inputs)

    @property
    def why_full(self) -> str | None:
        """Why this run cannot be incremental (a full run asked, no earlier complete run, other inputs),
        or None: it may start from :attr:`since`."""
        if self.full:
            return "full run asked"
        if self.state is None:
            return "no earlier complete run"
        if self.state.get("inputs") != self.inputs:
            return "settings changed"
        return None

    @property
    def since(self) -> dict[str, int] | None:
        """The watermarks an incremental run starts from (those its last complete run read, with the same
        inputs), or None: a full run, :attr:`why_full` says why."""
        return None if self.why_full else {t: int(w) for t, w in self.state["watermarks"].items()}

    def skip(self, unchanged: int = 0, **config) -> Any:
        """Record a run that did nothing (its last complete run stands); returns ``run.stats``."""
        self.stats.details["changes"] = {"new": 0, "changed": 0, "unchanged": int(unchanged)}
        self.stats.details["unchanged"] = True
        return self.record({self.name: {"unchanged": True, **config}}, "ok")

    def record(self, config: dict | None = None, status: str | None = None, exc: BaseException | None = None) -> Any:
        """Write the run's ``runs`` row (``status``: finish the stats with it first); returns ``run.stats``.

        A ``failed`` or ``interrupted`` row names what ended the run in ``failures`` (``Class: message``):
        ``exc``, else the exception being handled where it is recorded (an ``except`` block)."""
        import sys

        from .storage import record_run
        from .storage.runs import ended_by

        if status is not None:
            self.stats.finish(status)
        exc = exc if exc is not None else sys.exc_info()[1]
        if exc is not None and self.stats.status in ("failed", "interrupted"):
            reason = ended_by(exc)[1]
            if reason not in self.stats.failures:  # the run's reason, not an item's: n_failed stays the items'
                self.stats.failures[reason] += 1
        record_run(self.store, self.stats, config)
        self.recorded = True
        return self.stats

    def complete(self, config: dict | None = None, status: str | None = None, **keep) -> Any:
        """Write the ``runs`` row, then (last) the state the next run compares with; returns ``run.stats``."""
        from .storage import changes

        self.record(config, status)
        changes.save_state(self.store, self.state_name, self.marks, self.inputs, **keep)
        return self.stats


def run_of(stage, ctx: RunContext) -> StageRun:
    """Registered stage ``stage``'s run over ``ctx.store``, as its entry declares it; entering it (``with``)
    opens it: its lock (the shard's, ``ctx.shard``; none where ``stage.lock`` is False), the watermarks of
    what it ``reads``, the state it keeps (``stage.state``: its name from the context, else the stage's),
    the fingerprint of its ``inputs(ctx)`` (asked once the lock is held), a full run when
    ``options["full"]``, and its kind of stats. The stage's ``run(ctx, run)`` does only its work with it.
    The one place a stage's StageRun is built (tests/contract/test_run_owner.py)."""
    inputs = load(stage.inputs) if stage.inputs else None
    # a run that takes no lock opens the store only when it asks for it (train: its shards and run folder are
    # checked first, and the train verb's run, which writes no row, never opens one)
    store = ctx.store if stage.lock else (lambda: ctx.store)
    run = StageRun(store, stage.name, reads=load(stage.reads) if isinstance(stage.reads, str) else stage.reads,
                   inputs=(lambda: tuple(inputs(ctx))) if inputs else (), shard=ctx.shard,
                   state=load(stage.state)(ctx) if stage.state else None, lock=stage.lock,
                   stats=load(stage.stats)(stage.name) if stage.stats else None, full=bool(ctx.options.get("full")))
    return run


def record(store, stats, config: dict | None = None, status: str | None = None) -> Any:
    """Write the ``runs`` row of a run that is no stage's run through the contract (a tool: the importer,
    doctor, the scale demo's builder, an annotate verb's side job), taking no lock; returns ``stats``."""
    return StageRun(store, stats.stage, lock=False, stats=stats).record(config, status)


def record_end(name: str, ctx: RunContext, last: StageRun | None, exc: BaseException, started: float) -> None:
    """Write the ``runs`` row of stage ``name``'s run that ``exc`` ended (``stages.call``): ``failed`` or
    ``interrupted``, the reason in ``failures`` and the config's ``error``; the stats of its StageRun
    ``last`` (its counts so far, its run id), or fresh ones from ``started`` (the run could not be built:
    the store could not be opened). Nothing when the run wrote its row already. Never raises: the store may
    be what failed, and the run's own exception is what the caller must see."""
    import logging

    from .storage.runs import ended_by

    if last is not None and last.recorded:
        return
    status, reason = ended_by(exc)
    try:
        run = last if last is not None else StageRun(ctx.store, name, lock=False)
        if last is None:
            run.stats.started = started
        run.record({"error": reason}, status, exc)
    except Exception as err:  # noqa: BLE001 - see above
        from .storage.errors import StoreUnavailable

        # a store that does not answer is what the run's own error says already (one line, naming it)
        level = logging.DEBUG if isinstance(err, StoreUnavailable) or isinstance(exc, StoreUnavailable) else logging.WARNING
        logging.getLogger(__name__).log(level, f"could not write the {status} {name} run's runs row: {err}")


class sigterm_interrupts:
    """While a stage runs in the main thread and nothing handles SIGTERM: SIGTERM raises KeyboardInterrupt,
    so the run ends as a Ctrl-C does (its rows kept, its runs row ``interrupted``). A process forked
    meanwhile (a worker pool) ends on SIGTERM as it would have."""

    def __enter__(self) -> None:
        import os
        import signal
        import threading

        self.installed = threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        if self.installed:
            owner = os.getpid()

            def on_sigterm(signum, frame):
                if os.getpid() != owner:  # a forked child: the default (end) once more
                    signal.signal(signum, signal.SIG_DFL)
                    os.kill(os.getpid(), signum)
                    return
                raise KeyboardInterrupt("SIGTERM")

            signal.signal(signal.SIGTERM, on_sigterm)

    def __exit__(self, *exc) -> None:
        import signal

        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def load(target: str) -> Any:
    """Import ``module:attribute``; an import error is raised as it is (a broken module never goes unnoticed)."""
    import importlib

    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def fingerprint(*values) -> str:
    """The one fingerprint of what, beside the tables, decides a stage's result (settings sections,
    options, files: a ``Path`` or ``"file:<path>"`` counts by its content): a short sha256."""
    import dataclasses
    import hashlib
    import json
    from pathlib import Path

    h = hashlib.sha256()
    for v in values:
        if isinstance(v, Path) or (isinstance(v, str) and v.startswith("file:")):
            path = Path(str(v).removeprefix("file:"))
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"missing:" + str(path).encode())
        else:
            if hasattr(v, "fingerprint_part"):  # an object that says what of it decides (dedup's matcher)
                v = v.fingerprint_part()
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                v = dataclasses.asdict(v)
            h.update(json.dumps(v, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]

"""The leases of a store on object storage: a stage lock that is a lease in a log (no ``fcntl``: right
across machines; the PID it names frees it at once only on its own machine), a table's rewrite lease, and
the store-wide lease of ``doctor --repair``. The local folders whose files become objects (staged, kept,
local copies) are ``s3folders.py``.

A stage's lease lives in its own log ``locks/<stage>/_log/`` (the commit log of ``commitlog.py``, the
same put-if-absent entries as a table's): a run takes it with an entry ``kind: lease`` naming its host,
PID and ``until``, renews it while it runs (every third of ``store.lease_seconds``) and releases it at
the end. A second run of the stage is refused while the lease lives; a run killed without releasing
frees it after ``store.lease_seconds``. A shard ``(i, n)`` of a run takes the lease of
``locks/<stage>.shard-i-of-n`` and is refused while a whole run of the stage holds its lease; a whole
run, having taken its lease, is refused while a shard's lease lives (both check after taking theirs,
so of two that start at once at least one is refused). ``doctor --repair`` holds ``locks/doctor``
(:func:`repair_lease`): it is refused while any stage's lease lives, and every stage is refused
while it lives. A lease whose holder ran on this machine and is gone (same host and PID namespace,
PID not running) is free at once (``temps.holder_dead``): a stage killed here can run again at
once; a holder on another machine frees after ``store.lease_seconds``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from .commitlog import TableLog
from .errors import StoreBusy, StoreError
from .logstate import TableState
from .s3fence import Fence, fence_out
from .temps import machine

REPAIR = "doctor"  # the lease log of `doctor --repair` (locks/doctor)


def _busy(what: str, where: str, other: dict) -> StoreBusy:
    until = datetime.fromtimestamp(float(other["until"]), timezone.utc).strftime("%H:%M:%S UTC")
    return StoreBusy(f"{what}: {where} {other.get('what')} (host {other.get('host')}, "
                     f"PID {other.get('pid')}; lease until {until})")


@contextlib.contextmanager
def hold_lease(log: TableLog, what: str, where: str, seconds: float, wait: float = 0.0,
               renew: bool = False, fences: list | None = None, extra: dict | None = None,
               settle: Callable[[TableState], object] | None = None) -> Iterator[str]:
    """Hold the lease of ``log`` (an entry in it); yields the holder id (a rewrite's commit may release it).

    ``where`` says what is held, before the holder's name ("table t of s3://... is being rewritten by").
    Refused with StoreBusy naming the holder when another's lease lives and ``wait`` seconds pass.
    ``renew``: a thread extends the lease every ``seconds / 3`` (a stage may run for hours).
    ``fences``: a :class:`Fence` of this lease is in it while the lease is held (the store's commits check it);
    a stage lease taken over from a run that did not release it first fences that run's tables (s3fence.py).
    ``extra``: more fields of the lease (``group``: the primary table of a group rewrite, s3groups.py).
    ``settle``: called with the log's state, once, before a lease is taken on a table that a group
    rewrite touched (a run-out lease naming a group, or a last replace that made one): it commits
    what the group left pending (s3groups.settle).
    """
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    tables: set[str] = set()  # a stage lease's: the tables its run may have written (s3fence.py)

    def lease() -> dict:
        return {"kind": "lease", "lease": {"holder": holder, "what": what, **machine(), **(extra or {}),
                                           "until": time.time() + seconds,
                                           **({"tables": sorted(tables)} if tables else {})}}

    taken: list[dict] = []  # the lease entry that landed (its until starts the fence's)
    settled: set[str] = set()  # the run-out group leases already settled

    def take(state: TableState) -> dict:
        if (other := state.live_lease()) and other.get("holder") != holder:
            raise _busy(what, where, other)
        old, group = state.lease or {}, state.group or {}
        key = f"{old.get('holder') if old.get('group') else ''}/{group.get('id', '')}"
        if settle is not None and key != "/" and key not in settled:
            raise _Unsettled(key, state)
        if fences is not None:  # a lease not released: its run's tables are fenced before this one starts
            tables.clear()
            tables.update(old.get("tables", []))
        taken[:] = [lease()]
        return taken[0]

    while True:
        try:
            epoch = log.commit(take)
            break
        except _Unsettled as unsettled:
            settled.add(unsettled.key)
            settle(unsettled.state)
        except StoreBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
    if tables:  # before anything else of this run; on failure the lease stays unreleased: the next taker fences them
        fence_out(log.objects, log.base, epoch, tables)
    stop = threading.Event()
    fence = Fence(log, holder, what, seconds, float(taken[0]["lease"]["until"]), epoch, tables, lease)
    renewer = threading.Thread(target=_renew, args=(log, holder, lease, seconds / 3, stop, fence), daemon=True)
    if renew:
        renewer.start()
    if fences is not None:
        fences.append(fence)
    ended = False
    try:
        yield holder
        ended = True
    finally:
        if fences is not None:
            fences.remove(fence)
        stop.set()
        if renew:
            renewer.join()
        try:  # released unless a commit already did (then no entry is written)
            log.commit(lambda s: {"kind": "release", "release": holder} if s.lease and
                       s.lease.get("holder") == holder else None)
        except StoreError:
            if ended:
                raise
            # the block's own error says what went wrong (often the same store being out); the lease
            # frees when it runs out, or at once for a run on this machine whose process is gone


class _Unsettled(Exception):
    """A lease is about to be taken on a table a group rewrite touched: settle the group first."""

    def __init__(self, key: str, state: TableState):
        super().__init__(key)
        self.key, self.state = key, state


def _renew(log: TableLog, holder: str, lease, every: float, stop: threading.Event, fence: Fence) -> None:
    """Extend the lease while it is still ``holder``'s (the newest lease entry of the log: one that ran out
    while nobody took it is extended, the commit decides in the log's order) and tell ``fence`` its new
    ``until``; a lost one is not taken back: ``fence.lost`` is set, and the stage's next commit is refused."""
    made: list[dict] = []

    def extend(s: TableState) -> dict | None:
        if s.lease and s.lease.get("holder") == holder:
            made[:] = [lease()]
            return made[0]
        fence.lost.set()
        return None

    while not stop.wait(every) and not fence.lost.is_set():
        with contextlib.suppress(Exception):  # a failed renewal is retried; the stage's own work says what is wrong
            if log.commit(extend) is not None:
                fence.renewed(float(made[0]["lease"]["until"]))


_HELD: dict[tuple[int, str], int] = {}  # (store object, lease log) -> how deep that store object holds it
_HELD_GUARD = threading.Lock()


@contextlib.contextmanager
def stage_lease(store, stage: str, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """One run of ``stage`` per store on object storage (or one run per shard of a sharded run).
    Re-entrant for the store object that holds it (a stage's StageRun inside ``stages.call`` on the same
    ``ctx.store``); another store object, in this process or another, is refused as another run is."""
    key = (id(store), stage if shard is None else f"{stage}.shard-{shard[0]}-of-{shard[1]}")
    with _HELD_GUARD:
        nested = _HELD.get(key, 0) > 0
        if nested:
            _HELD[key] += 1
    if nested:
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD[key] -= 1
        return
    with _held_lease(store, stage, shard):
        with _HELD_GUARD:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _HELD_GUARD:
                _HELD.pop(key, None)


@contextlib.contextmanager
def _held_lease(store, stage: str, shard: tuple[int, int] | None = None) -> Iterator[None]:
    where = f"the store {store.root} is in use by"
    whole = TableLog(store.objects, stage, base=f"locks/{stage}")
    if shard is None:
        with hold_lease(whole, stage, where, store.lease_seconds, renew=True, fences=store.fences):
            for name in _shard_logs(store, stage):  # a whole run excludes the shards of a sharded one
                if other := TableLog(store.objects, name, base=f"locks/{name}").state().live_lease():
                    raise _busy(stage, where, other)
            _no_repair(store, stage, where)
            yield
        return
    i, n = (int(x) for x in shard)
    name = f"{stage}.shard-{i}-of-{n}"
    with hold_lease(TableLog(store.objects, name, base=f"locks/{name}"), name, where, store.lease_seconds,
                    renew=True, fences=store.fences):
        if other := whole.state().live_lease():
            raise _busy(name, where, other)
        _no_repair(store, name, where)
        yield


def _no_repair(store, what: str, where: str) -> None:
    """No stage runs while ``doctor --repair`` holds its lease (checked after taking the stage's own)."""
    if what != REPAIR and (other := TableLog(store.objects, REPAIR, base=f"locks/{REPAIR}").state().live_lease()):
        raise _busy(what, where, other)


@contextlib.contextmanager
def repair_lease(store) -> Iterator[None]:
    """The store-wide fence of ``doctor --repair`` on object storage: its lease ``locks/doctor``, taken
    while no other stage's lease lives (a stage, having taken its lease, is refused while this one
    lives: of two that start at once at least one is refused), so that no stage's write in flight
    (a streaming crawl may upload parts for longer than ``store.garbage_grace``) meets the sweep, and two
    repairs never run at once. A compaction or replace outside a stage is fenced per table by the
    table's own lease, which the sweep takes (:meth:`S3Store.sweep_garbage`)."""
    where = f"the store {store.root} is in use by"
    with hold_lease(TableLog(store.objects, REPAIR, base=f"locks/{REPAIR}"), "doctor --repair", where,
                    store.lease_seconds, renew=True):
        for name in _lease_logs(store):
            if name != REPAIR and (other := TableLog(store.objects, name, base=f"locks/{name}").state().live_lease()):
                raise _busy("doctor --repair", where, other)
        yield


def _lease_logs(store) -> list[str]:
    """Every stage (and shard) lease log that ever ran: one LIST of ``locks/``."""
    return sorted({o.rel.split("/")[1] for o in store.objects.listing("locks/") if o.rel.count("/") >= 2})


def _shard_logs(store, stage: str) -> list[str]:
    """The lease logs of ``stage``'s shards that ever ran (``<stage>.shard-i-of-n``): one LIST."""
    return sorted({o.rel.split("/")[1] for o in store.objects.listing(f"locks/{stage}.shard-")})

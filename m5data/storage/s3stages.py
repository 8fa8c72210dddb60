"""What the pipeline's stages need of a store on object storage: a stage lock that is a lease in a log
(no ``fcntl``: right across machines; the PID it names frees it at once only on its own machine), and
local folders whose files become objects.

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

Files a stage writes as a folder (crawl's ``logs/crawl/<run>/``, ``derived/align/review.csv`` ...) are
written into a local temp folder (under ``TMPDIR``) and uploaded below the same key when the stage
leaves it (:func:`staged_folder`): a reader never sees half a file. A folder a stage keeps and reads
again (pools' vectors and checkpoints) is copied into a local temp folder first and written back
when the stage leaves it: new and changed files uploaded, removed ones deleted (:func:`kept_folder`).
A block that fails (an error, a refused commit, a lost lease) uploads and deletes nothing: a fenced
run never writes its leftovers over the files of the run that took its place (only the files it
pushed while it ran, and a ``partial`` staged folder: a run's own log, are kept).
Files that code opens by path (Pillow's images) are copied into a temp folder for as long as they are
read (:func:`local_files`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from .commitlog import TableLog
from .errors import StoreBusy, StoreError
from .files import KeptFolder
from .logstate import TableState
from .s3fence import Fence, delete_unchanged, etags, fence_out, put_unchanged
from .temps import machine, scratch_dir

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


@contextlib.contextmanager
def staged_folder(objects, rel: str, partial: bool = False, fence: Callable[[], None] | None = None) -> Iterator[Path]:
    """A local temp folder whose files are uploaded below ``rel`` when the block ends well; a block
    that fails uploads nothing, unless ``partial`` (a failed crawl's log is what explains it). The
    folder is removed. ``fence``: called before the uploads of a block that ended well (the store's
    lease check: a run whose stage lease was taken over uploads nothing, LeaseLost)."""
    local = scratch_dir("staged")
    ended = False
    # what is there before the fence's check: a fenced upload is conditional on it (s3fence.put_unchanged)
    seen = {} if fence is None else etags(objects, rel.strip("/") + "/")
    try:
        yield local
        if fence is not None:
            fence()
        ended = True
    finally:
        try:
            for path in sorted(p for p in local.rglob("*") if p.is_file()) if ended or partial else ():
                key = f"{rel.strip('/')}/{path.relative_to(local).as_posix()}"
                if fence is None:
                    objects.put(key, path.read_bytes())
                else:
                    put_unchanged(objects, key, path.read_bytes(), seen.get(key, (0, None))[1])
        finally:
            shutil.rmtree(local, ignore_errors=True)


SMALL_OBJECT = 8 << 20  # a kept file up to this size goes in one GET / PUT; a larger one is streamed


def _signature(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _kept_files(local: Path) -> list[Path]:
    """The files of a kept folder, temp files and other dot-names left out (never uploaded)."""
    return sorted(p for p in local.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(local).parts))


@contextlib.contextmanager
def kept_folder(objects, rel: str, lazy: tuple[str, ...] = (), fence: Callable[[], None] | None = None
                ) -> Iterator[KeptFolder]:
    """A local temp folder holding the objects below ``rel`` (those whose names match a ``lazy``
    pattern only once fetched); when the block ends well its new and changed files are uploaded and
    the objects of the files removed from it are deleted. A block that fails uploads and deletes
    nothing: what it pushed (``KeptFolder.push``: a checkpoint's block markers, which let a killed
    run's next one resume) is all it leaves. The folder is removed. ``fence``: called before each push
    and before the block's uploads and deletes (a run whose lease was taken over writes nothing more)."""
    local = scratch_dir("kept")
    prefix = rel.strip("/") + "/"
    synced: dict[Path, tuple[int, int]] = {}
    remote: dict[str, int] = {}  # lazy objects not fetched: name below rel -> size
    seen: dict[str, str] = {}  # key -> the ETag this run listed or wrote (a fenced write's condition)
    gone: set[str] = set()  # lazy objects removed without being fetched

    def key(path: Path) -> str:
        return prefix + path.relative_to(local).as_posix()

    def upload(path: Path) -> None:
        if fence is not None:
            fence()
        sig = _signature(path)
        if sig[0] <= SMALL_OBJECT:  # fenced: only over what this run listed or last wrote (s3fence.put_unchanged)
            seen[key(path)] = put_unchanged(objects, key(path), path.read_bytes(), seen.get(key(path)))
        else:  # large files (pools' vectors) are named by their content's inputs: another run's is the same
            with objects.explained(key(path)):
                objects.fs.put_file(str(path), objects.path(key(path)))  # multipart: whole or not at all
        synced[path] = sig

    def download(name: str, size: int) -> None:
        dest = local / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if size <= SMALL_OBJECT:
            found = objects.get(prefix + name)
            if found is None:
                return
            dest.write_bytes(found[0])
        else:
            with objects.explained(prefix + name):
                objects.fs.get_file(objects.path(prefix + name), str(dest))
        synced[dest] = _signature(dest)

    def fetch(name: str) -> None:
        if name in remote:
            download(name, remote.pop(name))

    def forget(name: str) -> None:
        if remote.pop(name, None) is not None:
            gone.add(prefix + name)

    try:
        found = etags(objects, prefix)
        seen.update({k: etag for k, (_, etag) in found.items()})
        listed = {k[len(prefix):]: size for k, (size, _) in found.items()}
        remote.update({n: size for n, size in listed.items() if any(fnmatch.fnmatchcase(n, p) for p in lazy)})
        small = sorted(prefix + n for n, size in listed.items() if n not in remote and size <= SMALL_OBJECT)
        for k, data in objects.get_many(small).items():
            (local / k[len(prefix):]).parent.mkdir(parents=True, exist_ok=True)
            (local / k[len(prefix):]).write_bytes(data)
        synced.update({p: _signature(p) for p in _kept_files(local)})
        for n, size in listed.items():
            if n not in remote and size > SMALL_OBJECT:
                download(n, size)
        yield KeptFolder(local, push=upload, fetch=fetch, remote=lambda: sorted(remote), forget=forget)
        for path in _kept_files(local):
            if synced.get(path) != _signature(path):
                upload(path)
        removed = sorted(gone | {key(p) for p in synced if not p.exists()})
        if removed and fence is not None:
            fence()
        for rel_key in removed:  # each only if it is still what this run listed or wrote
            if rel_key in seen:
                delete_unchanged(objects, rel_key, seen[rel_key])
            else:
                objects.delete([rel_key])
    finally:
        shutil.rmtree(local, ignore_errors=True)


@contextlib.contextmanager
def local_files(blobs, rels) -> Iterator[Path]:
    """A temp folder laid out as the store holding copies of the blobs and derived files ``rels``
    (a path leading out of the blob areas, or a missing object, is left out); removed at the end."""
    local = scratch_dir("files")
    try:
        blobs.mirror(rels, local)
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)

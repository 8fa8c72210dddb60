"""The fence of a stage's lease on object storage: no commit of a run whose lease another run took over
lands in any table, whatever the timing (a run paused between any two requests: SIGSTOP, a frozen VM).

S3 has no transaction across two objects, so the lease (in ``locks/<stage>/_log/``) cannot be checked
in the same request as a table's entry. Instead, a fencing token:

- **Epoch.** A run's lease is taken by an entry of the lease log; its number is the run's *epoch*.
- **Tables touched.** Before a run's first entry in a table's log (a write, a table lease, a release),
  the run records that table in its lease (a lease entry, ``"tables"``): put-if-absent in the lease
  log, so it lands only while the lease is still the run's (another's take at that number refuses it).
- **Fence.** A run that takes over a lease that was not released inherits the previous holder's
  tables and, before it yields, commits a fence entry ``{"kind": "fence", "fence": {"lease",
  "epoch"}}`` (its own epoch) to each of those tables' logs.
- **Commit.** Every entry a fenced run makes is refused (:class:`LeaseLost`) when the state it follows
  holds a fence of its lease log at a higher epoch (:meth:`Fence.admit`, ``TableLog.guard``): the entry
  is put-if-absent at the number after that state, so either it lands before the fence (ordered
  before the takeover, as a run killed there: the taker reads it, and what a group rewrite left
  pending the taker finishes) or it meets the fence and lands nowhere.

A taker that dies before its fences land leaves its lease unreleased: the next taker inherits its
tables (the old holder's among them) and fences them. A run that releases its lease touches no table
after it. Cost: one lease-log commit (a LIST and a PUT) at a run's first entry in each table, none for
the later ones; a takeover pays a LIST and a PUT per table the previous holder touched.
"""

from __future__ import annotations

import threading
import time

from .commitlog import TableLog
from .errors import LeaseLost
from .logstate import TableState


class Fence:
    """What a stage's commits check: that the stage's lease is still its own (``check``, early: no
    request while it is fresh), and that no later run fenced the table a commit goes to (``admit``,
    sound: see the module). ``epoch``: the lease entry's number; ``tables``: the tables this lease
    may have written (the previous holder's included, when this run took the lease over)."""

    def __init__(self, log: TableLog, holder: str, what: str, seconds: float, until: float, epoch: int,
                 tables: set[str], lease):
        self.holder, self.what, self.seconds, self.until, self.epoch = holder, what, seconds, until, epoch
        self.tables = tables  # shared with the renewer's lease entries: each carries them all
        self.base = log.base
        self.lost = threading.Event()  # set by the renewer when it finds the lease another's
        self._log = TableLog(log.objects, log.table, base=log.base)  # its own: the renewer commits to the other
        self._lock = threading.Lock()
        self._lease = lease  # a new lease entry of this holder (its until from now, every table in it)
        self._uri = log.objects.uri(f"{log.base}/")

    def renewed(self, until: float) -> None:
        """The lease was extended to ``until`` (a commit of the renewer that landed)."""
        self.until = until

    def refuse(self) -> LeaseLost:
        self.lost.set()
        return LeaseLost(f"{self.what}: its lease {self._uri} is no longer its own (another run took it over, or it "
                         "ran out while this run was paused); nothing more of this run is written: run it again")

    def check(self) -> None:
        """LeaseLost when the lease is another's or has run out. No request while the lease this run last
        took or renewed has more than a third of its time left: another run takes a lease only once its
        ``until`` has passed (by that run's clock: clocks may differ by up to a third of the lease). Past
        that, one LIST of the lease log's tail says whose it is."""
        if not self.lost.is_set() and time.time() < self.until - self.seconds / 3:
            return
        with self._lock:
            if not self.lost.is_set():
                lease = self._log.state().lease
                if lease and lease.get("holder") == self.holder and float(lease.get("until", 0)) > time.time():
                    return
        raise self.refuse()

    def admit(self, table: str, state: TableState) -> None:
        """Before an entry of this run follows ``state`` in ``table``'s log: LeaseLost when a later run
        fenced the table; the table recorded in the lease first when this run has not touched it yet."""
        if state.fences.get(self.base, 0) > self.epoch:
            raise self.refuse()
        if table in self.tables:
            return
        with self._lock:
            if table in self.tables:
                return
            self.tables.add(table)  # before the entry is made: every lease entry from now on names it

            made: list[dict] = []

            def touch(s: TableState) -> dict:
                if not s.lease or s.lease.get("holder") != self.holder:
                    raise self.refuse()
                made[:] = [self._lease()]
                return made[0]
            self._log.commit(touch)
            self.until = float(made[0]["lease"]["until"])


def fence_out(objects, base: str, epoch: int, tables) -> None:
    """Commit a fence of lease log ``base`` at ``epoch`` to each table's log (one already fenced at that
    epoch or later is left as it is): no run of an earlier epoch commits there any more."""
    for table in sorted(tables):
        TableLog(objects, table).commit(lambda s: None if s.fences.get(base, 0) >= epoch else
                                        {"kind": "fence", "fence": {"lease": base, "epoch": epoch}})


def etags(objects, rel_prefix: str) -> dict[str, tuple[int, str]]:
    """``rel -> (size, ETag)`` of every object whose key starts with ``rel_prefix`` (one LIST a
    thousand objects): what a fenced run's later writes of those files are conditional on."""
    return {o.rel: (o.size, o.etag) for o in objects.listing(rel_prefix)}


def changed(objects, rel: str) -> LeaseLost:
    return LeaseLost(f"{objects.uri(rel)} changed since this run read it: another run of its stage wrote it "
                     "(this run's lease was taken over); nothing more of this run is written: run it again")


def put_unchanged(objects, rel: str, data: bytes, seen: str | None) -> str:
    """PUT ``rel`` only if it is still as this run saw it before its fence's last check (``seen``: its
    ETag, None when it was absent): a run whose lease another run took over after that check, and who
    wrote the file, fails here (LeaseLost) instead of writing over it. Returns the new ETag."""
    etag = objects.put(rel, data, if_absent=seen is None, if_match=seen)
    if etag is None:
        raise changed(objects, rel)
    return etag


def delete_unchanged(objects, rel: str, seen: str) -> None:
    """DELETE ``rel`` only if its ETag is still ``seen`` (``If-Match``); one already gone is left so."""
    with objects.explained(rel):
        try:
            objects._sync(objects.fs._call_s3("delete_object", Bucket=objects.bucket, Key=objects.key(rel),
                                              IfMatch=seen))
        except FileNotFoundError:
            return
        except Exception as exc:
            code = (getattr(exc.__cause__, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412") or "PreconditionFailed" in str(exc):
                raise changed(objects, rel) from None
            raise


def etag_now(objects, rel: str) -> str | None:
    """The ETag of ``rel`` now (one HEAD), None when it is absent."""
    with objects.explained(rel):
        try:
            return objects._sync(objects.fs._call_s3("head_object", Bucket=objects.bucket, Key=objects.key(rel)))["ETag"]
        except FileNotFoundError:
            return None

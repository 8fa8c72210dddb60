"""A table's ordered commit log on object storage: no lock, no rename, one order every reader agrees on.

A commit is one small JSON object ``tables/<t>/_log/<n:020d>.json`` written with ``If-None-Match: *``
(put-if-absent): of two writers that both read entry ``n - 1`` as the newest, exactly one creates entry
``n``; the other is refused, reads the entries it missed and tries ``n + 1``. An entry names the parts
it adds and removes (a compaction removes the parts it read and adds its own in one entry; a part
committed meanwhile is not named, so it survives). A part's rows are never visible before the entry
naming it exists, so a writer killed after uploading its parts and before its entry leaves only
objects that no reader lists (garbage, removed after a grace period by :meth:`S3Store.sweep_garbage`).

Last write wins by the log's order, not by anyone's clock: the rows of a part added by entry ``n``
read with ``_seq = n`` (the view maps part -> seq); a compaction's parts keep the ``_seq`` each row
had, as on a local store. A checkpoint ``tables/<t>/_checkpoint.json`` holds the folded state at some
entry and is replaced by compare-and-swap (``If-Match: <etag>``), so a reader makes one GET, one LIST
of the entries after it and one GET per newer entry, never a listing of the whole log.

A *lease* is an entry too (``kind: lease``): whole-table rewriters (compact, replace) take it before
they start and release it with their commit, so two never overlap; the commit itself checks that the
parts it removes are still live, so even an expired lease cannot lose a row.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import StoreBusy, StoreError
from .objects import ObjectStore
from .temps import pid_alive, pid_namespace

LOG_DIR = "_log"
CHECKPOINT = "_checkpoint.json"
FROM_FILE = 0  # a part whose rows keep their own _seq (a compaction's): the view reads the column
MAX_TRIES = 200  # put-if-absent attempts before a commit gives up (4 writers on one table need a few)


class Conflict(StoreError):
    """The log changed so that a commit no longer applies (its parts to remove are gone, its lease lost)."""


@dataclass
class TableState:
    """A table as of log entry ``n``: its live parts and their ``_seq``, its lease."""

    n: int = 0
    parts: dict[str, int] = field(default_factory=dict)  # part name -> _seq (FROM_FILE: the rows' own)
    compacted: bool = True  # the live parts are exactly those of the last compact/replace
    last_tag: str | None = None  # content tag of the newest entry when it is a write (a repeat is a no-op)
    lease: dict | None = None  # {"holder", "what", "host", "pid", "until"} of a rewrite in progress

    def copy(self) -> TableState:
        return TableState(self.n, dict(self.parts), self.compacted, self.last_tag,
                          dict(self.lease) if self.lease else None)

    def fold(self, entry: dict) -> None:
        """Apply one entry (the next one: ``entry["n"] == self.n + 1``)."""
        n, kind = int(entry["n"]), entry["kind"]
        for name in entry.get("remove", []):
            self.parts.pop(name, None)
        seq = FROM_FILE if kind == "compact" else n
        for name in entry.get("add", []):
            self.parts[name] = seq
        if kind == "write":
            self.compacted = self.compacted and not entry.get("add")
            self.last_tag = entry.get("tag")
        elif kind in ("compact", "replace"):
            self.compacted = set(self.parts) == set(entry.get("add", []))
            self.last_tag = None
        if kind == "lease":
            self.lease = entry["lease"]
        elif self.lease and entry.get("release") == self.lease.get("holder"):
            self.lease = None
        self.n = n

    def live_lease(self) -> dict | None:
        """The lease when it has not run out (a holder killed mid-rewrite frees it after ``until``) and
        its holder is not known dead (a process of this machine that no longer runs: see :func:`holder_dead`)."""
        lease = self.lease
        if not lease or float(lease.get("until", 0)) <= time.time() or holder_dead(lease):
            return None
        return lease

    def to_json(self) -> bytes:
        return json.dumps({"n": self.n, "parts": self.parts, "compacted": self.compacted,
                           "last_tag": self.last_tag, "lease": self.lease}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TableState:
        d = json.loads(data)
        return cls(int(d["n"]), {str(k): int(v) for k, v in d["parts"].items()}, bool(d["compacted"]),
                   d.get("last_tag"), d.get("lease"))


def machine() -> dict:
    """Who holds a lease, as far as another process can check it: the host name and this process's PID
    namespace (two containers may share a host name, never a PID namespace)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pidns": pid_namespace() or None}


def holder_dead(lease: dict) -> bool:
    """True when the lease's holder ran on this machine (same host name and PID namespace) and its
    process is gone: a stage killed here frees its lease at once, not after ``until``. A holder on
    another machine, or one whose PID namespace is unknown, is alive until its lease runs out."""
    here = machine()
    if not here["pidns"] or lease.get("pidns") != here["pidns"] or lease.get("host") != here["host"]:
        return False
    try:
        return not pid_alive(int(lease.get("pid") or 0))
    except (TypeError, ValueError):
        return False


def entry_rel(table: str, n: int, base: str | None = None) -> str:
    return f"{base or f'tables/{table}'}/{LOG_DIR}/{n:020d}.json"


class TableLog:
    """The commit log of one table; keeps the state it last read, and reads only what came after."""

    def __init__(self, objects: ObjectStore, table: str, checkpoint_every: int = 32, base: str | None = None):
        self.objects = objects
        self.table = table
        self.base = base or f"tables/{table}"  # a stage's lease log lives under locks/<stage> (s3stages.py)
        self.checkpoint_every = checkpoint_every
        self._state: TableState | None = None
        self._checkpoint_etag: str | None = None

    def state(self) -> TableState:
        """The table as of the newest entry (a copy: the caller may keep it as its snapshot)."""
        if self._state is None:
            found = self.objects.get(f"{self.base}/{CHECKPOINT}")
            self._state = TableState.from_json(found[0]) if found else TableState()
            self._checkpoint_etag = found[1] if found else None
        self._read_tail()
        return self._state.copy()

    def known_parts(self) -> int:
        """The live parts as of the newest entry this log object has read or committed (no request)."""
        return len(self._state.parts) if self._state is not None else len(self.state().parts)

    def _read_tail(self) -> None:
        state = self._state
        tail = self.objects.listing(f"{self.base}/{LOG_DIR}/", start_after=entry_rel(self.table, state.n, self.base))
        entries = self.objects.get_many([obj.rel for obj in tail])
        for obj in tail:
            entry = json.loads(entries[obj.rel])
            if int(entry["n"]) != state.n + 1:
                raise StoreError(f"{self.objects.uri(obj.rel)}: log entry {entry['n']} after {state.n} "
                                 "(the log of this table is damaged)")
            state.fold(entry)

    def commit(self, make: Callable[[TableState], dict | None]) -> int | None:
        """Append the entry ``make(state)`` returns at the end of the log; returns its number.

        ``make`` sees the newest state and is called again after each refused put (another writer took
        the number): it may return None (nothing to commit: the caller's write is a no-op) or raise
        :class:`Conflict`. Gives up with StoreBusy after ``MAX_TRIES`` refused puts.
        """
        me = uuid.uuid4().hex
        delay = 0.002
        self.state()  # one LIST of the tail; after a refused put only the entry that won is read
        for _ in range(MAX_TRIES):
            state = self._state.copy()
            body = make(state)
            if body is None:
                return None
            entry = {**body, "n": state.n + 1, "id": me, "at": time.time(), "host": socket.gethostname(),
                     "pid": os.getpid()}
            rel = entry_rel(self.table, state.n + 1, self.base)
            if self.objects.put(rel, json.dumps(entry, sort_keys=True).encode(), if_absent=True):
                return self._committed(entry)
            found = self.objects.get(rel)  # the entry that took the number (or ours, if a retried put had landed)
            if found is None:
                self._read_tail()
                continue
            winner = json.loads(found[0])
            if winner.get("id") == me:
                return self._committed(entry)
            self._state.fold(winner)
            time.sleep(random.uniform(0, delay))  # jitter: writers that collided do not collide again
            delay = min(delay * 2, 0.01)
        raise StoreBusy(f"{self.objects.uri(f'{self.base}/{LOG_DIR}/')}: gave up committing after "
                        f"{MAX_TRIES} tries (too many writers on one table?)")

    def _committed(self, entry: dict) -> int:
        self._state.fold(entry)
        if entry["n"] % self.checkpoint_every == 0:
            self._checkpoint()
        return entry["n"]

    def _checkpoint(self) -> None:
        """Replace the checkpoint by compare-and-swap; losing the race to a newer one is fine."""
        rel = f"{self.base}/{CHECKPOINT}"
        for _ in range(2):
            data = self._state.to_json()
            etag = self.objects.put(rel, data, if_match=self._checkpoint_etag, if_absent=self._checkpoint_etag is None)
            if etag is not None:
                self._checkpoint_etag = etag
                return
            found = self.objects.get(rel)
            if found is None or TableState.from_json(found[0]).n >= self._state.n:
                return
            self._checkpoint_etag = found[1]

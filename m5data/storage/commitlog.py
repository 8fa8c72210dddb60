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

Nothing of the log is trusted blindly (``DamagedLog`` names the object): an entry must be the next
number, at most :data:`MAX_ENTRY_BYTES` (its size is read from the LIST, before any GET), valid JSON of a
known kind, and name parts by a plain ``part-*.parquet`` name (never a path outside its table: what an
entry may be, and the :class:`~m5data.storage.logstate.TableState` entries fold into, are ``logstate.py``). A
checkpoint carries a digest of its content and must name an entry the log holds (the LIST of the tail
starts at that entry, so the check costs no request); one that fails either is ignored and the log is
folded from its first entry. :meth:`TableLog.audit` folds the whole log, checkpoint aside, for ``doctor``.

A *lease* is an entry too (``kind: lease``): whole-table rewriters (compact, replace) take it before
they start and release it with their commit, so two never overlap; the commit itself checks that the
parts it removes are still live, so even an expired lease cannot lose a row. A *fence* entry (``kind:
fence``) shuts a stage run whose lease was taken over out of the table (s3fence.py).
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable

from .errors import DamagedLog, StoreBusy, StoreError
from .logstate import TableState, checked_entry, entry_number
from .objects import ObjectStore

LOG_DIR = "_log"
CHECKPOINT = "_checkpoint.json"
MAX_TRIES = 200  # put-if-absent attempts before a commit gives up (4 writers on one table need a few)
# what a reader reads of a log before it refuses it: an entry names at most a few thousand parts
# (a compaction's removals: ~60 bytes a part), a checkpoint every live part of the table
MAX_ENTRY_BYTES = 16 << 20
MAX_CHECKPOINT_BYTES = 256 << 20


class Conflict(StoreError):
    """The log changed so that a commit no longer applies (its parts to remove are gone, its lease lost)."""


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
        self.checkpoint_problem: str | None = None  # why the checkpoint was not used (``_start``)
        # called with the state an entry is about to follow: raises when the committer may not commit
        # there (a stage run whose lease was fenced: s3fence.py), returns fields the entry carries
        self.guard: Callable[[TableState], dict] | None = None

    def state(self) -> TableState:
        """The table as of the newest entry (a copy: the caller may keep it as its snapshot)."""
        if self._state is None:
            self._start()
        else:
            self._read_tail()
        return self._state.copy()

    def known_parts(self) -> int:
        """The live parts as of the newest entry this log object has read or committed (no request)."""
        return len((self._state or self.state()).parts)

    @property
    def checkpoint_uri(self) -> str:
        return self.objects.uri(f"{self.base}/{CHECKPOINT}")

    def _start(self) -> None:
        """The checkpoint (when it checks out: its digest holds and the log holds its entry), then the
        entries after it. The LIST starts at the checkpoint's own entry, so checking it costs no request."""
        self.checkpoint_problem = None
        state, found = TableState(), self._get_checkpoint()
        self._checkpoint_etag = found[1] if found else None
        if found and found[0] is not None:
            try:
                state = TableState.from_json(found[0], self.checkpoint_uri)
            except DamagedLog as exc:
                self.checkpoint_problem = str(exc)
        tail = None
        if state.n:
            listed = self._listing(state.n - 1)
            if listed and entry_number(listed[0].rel) == state.n:
                tail = listed[1:]
            else:
                self.checkpoint_problem = (f"{self.checkpoint_uri}: says the table is as of log entry {state.n}, "
                                           "which the log does not hold")
                state = TableState()
        self._state = state
        self._fold_listed(self._listing(0) if tail is None else tail)

    def _get_checkpoint(self) -> tuple[bytes | None, str] | None:
        """The checkpoint's bytes (None past :data:`MAX_CHECKPOINT_BYTES`: ``checkpoint_problem`` says so)
        and ETag; None when there is none."""
        found = self.objects.get(f"{self.base}/{CHECKPOINT}", limit=MAX_CHECKPOINT_BYTES)
        if found and len(found[0]) > MAX_CHECKPOINT_BYTES:
            self.checkpoint_problem = f"{self.checkpoint_uri}: larger than {MAX_CHECKPOINT_BYTES >> 20} MiB"
            return None, found[1]
        return found

    def _listing(self, after: int) -> list:
        return self.objects.listing(f"{self.base}/{LOG_DIR}/", start_after=entry_rel(self.table, after, self.base))

    def _read_tail(self) -> None:
        self._fold_listed(self._listing(self._state.n))

    def _fold_listed(self, tail: list, state: TableState | None = None) -> None:
        """Fold the listed entries into ``state`` (this log's own by default), each checked before it is
        read: the next number, within :data:`MAX_ENTRY_BYTES`, then a valid entry (:func:`checked_entry`)."""
        state = self._state if state is None else state
        expect = state.n
        for obj in tail:
            expect += 1
            number, uri = entry_number(obj.rel), self.objects.uri(obj.rel)
            if number != expect:
                raise DamagedLog(f"{uri}: {'not a log entry' if number is None else f'log entry {number}'} after "
                                 f"entry {expect - 1} (entries are missing: the log of this table is damaged)")
            if obj.size > MAX_ENTRY_BYTES:
                raise DamagedLog(f"{uri}: {obj.size:,} bytes, larger than a log entry may be "
                                 f"({MAX_ENTRY_BYTES >> 20} MiB); the log of this table is damaged")
        entries = self.objects.get_many([obj.rel for obj in tail])
        for obj in tail:
            state.fold(checked_entry(self.objects.uri(obj.rel), entries[obj.rel], state.n + 1))

    def audit(self) -> tuple[TableState, list[str]]:
        """The table as the whole log says, its checkpoint aside (every entry from the first: ``doctor``),
        and what is wrong with the checkpoint against it. DamagedLog when the log itself is damaged."""
        problems, kept = [], None
        found = self._get_checkpoint()
        if found and found[0] is not None:
            try:
                kept = TableState.from_json(found[0], self.checkpoint_uri)
            except DamagedLog as exc:
                problems.append(str(exc))
        elif found:
            problems.append(self.checkpoint_problem)
        listed, state, at = self._listing(0), TableState(), None
        if kept is not None and kept.n <= len(listed):  # the state at the checkpoint's entry on the way
            self._fold_listed(listed[:kept.n], state)
            at = state.copy()
            listed = listed[kept.n:]
        self._fold_listed(listed, state)
        if kept is not None and at is None:
            problems.append(f"{self.checkpoint_uri}: says the table is as of log entry {kept.n}; "
                            f"the log ends at {state.n}")
        elif kept is not None and not at.same(kept):
            lost = sorted(set(at.parts) - set(kept.parts))
            problems.append(f"{self.checkpoint_uri}: disagrees with the log at entry {kept.n}"
                            + (f" (leaves out {len(lost)} committed part(s), e.g. {lost[0]})" if lost else ""))
        return state, problems

    def rewrite_checkpoint(self, state: TableState) -> None:
        """Replace the checkpoint by ``state`` (from :meth:`audit`): ``doctor --repair``."""
        self._state = state.copy()
        found = self.objects.get(f"{self.base}/{CHECKPOINT}", limit=0)
        self._checkpoint_etag = found[1] if found else None
        self._checkpoint()

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
            if self.guard is not None:
                body = {**body, **self.guard(state)}
            entry = {**body, "n": state.n + 1, "id": me, "at": time.time(), "host": socket.gethostname(),
                     "pid": os.getpid()}
            rel = entry_rel(self.table, state.n + 1, self.base)
            if self.objects.put(rel, json.dumps(entry, sort_keys=True).encode(), if_absent=True):
                return self._committed(entry)
            found = self.objects.get(rel, limit=MAX_ENTRY_BYTES)  # the entry that took the number (or ours,
            if found is None:                                   # if a retried put had landed)
                self._read_tail()
                continue
            uri = self.objects.uri(rel)
            if len(found[0]) > MAX_ENTRY_BYTES:
                raise DamagedLog(f"{uri}: larger than a log entry may be ({MAX_ENTRY_BYTES >> 20} MiB)")
            winner = checked_entry(uri, found[0], state.n + 1)
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
            found = self.objects.get(rel, limit=MAX_CHECKPOINT_BYTES)
            if found is None:
                return
            try:
                if TableState.from_json(found[0]).n >= self._state.n:
                    return
            except DamagedLog:  # a damaged checkpoint is replaced
                pass
            self._checkpoint_etag = found[1]

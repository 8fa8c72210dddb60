"""The :class:`~m5data.storage.s3store.S3Store` methods that tell a table's garbage from its data: each
table's whole log folded (its checkpoint aside), the part objects no fold holds live, and their removal
under the table's lease (``doctor`` and ``doctor --repair`` on object storage, ``doctor_s3.py``)."""

from __future__ import annotations

import time

from .errors import DamagedLog, StoreBusy
from .logstate import TableState
from .schema import TABLES


class ObjectGarbage:
    """Needs ``log(name)``, ``objects``, ``garbage_grace`` and ``_leased`` of the S3Store."""

    def audit(self) -> dict[str, tuple[TableState | None, list[str]]]:
        """Per table, its state as the whole log says, its checkpoint aside (None when the log is damaged),
        and what is wrong: the damaged log, a checkpoint that disagrees with the log (``TableLog.audit``)."""
        out = {}
        for name in TABLES:
            try:
                out[name] = self.log(name).audit()
            except DamagedLog as exc:
                out[name] = (None, [str(exc)])
        return out

    def uncommitted(self, audited: dict | None = None) -> list[tuple[str, float]]:
        """``(key below the prefix, age in seconds)`` of every part object that is live in no fold of its
        table's whole log (:meth:`audit`: a checkpoint is not trusted for this): a live writer's upload not
        yet committed, or a killed writer's (garbage). A table whose log is damaged has none: nothing of it
        is garbage while its log cannot be read."""
        from .s3groups import pending

        out = []
        for name, (state, _) in (self.audit() if audited is None else audited).items():
            if state is None:
                continue
            live = set(state.parts)
            if group := pending(self, name, state):  # a group rewrite's change committed in its primary's log
                live |= set(group["tables"][name]["add"])
            now = time.time()
            out += [(o.rel, now - o.modified.timestamp()) for o in self.objects.listing(f"tables/{name}/part-")
                    if o.rel.rsplit("/", 1)[1] not in live]
        return out

    def sweep_garbage(self, grace: float | None = None, busy: list[str] | None = None,
                      audited: dict | None = None) -> list[str]:
        """Remove the uncommitted part objects older than ``grace`` seconds (default ``garbage_grace``):
        a killed writer's uploads. A live writer's are younger (a write commits when its parts are up).

        Each table is swept holding its lease (the one compact and replace hold), so a rewrite in
        progress (its new parts are up, its entry not yet) is never swept: such a table is skipped, and
        the refusal is appended to ``busy`` (without ``busy``, StoreBusy is raised). ``doctor --repair``
        also holds the store-wide repair lease (``s3stages.repair_lease``): no stage runs meanwhile."""
        grace = self.garbage_grace if grace is None else grace
        old = [rel for rel, age in self.uncommitted(audited) if age > grace]
        removed = []
        for table in sorted({rel.split("/")[1] for rel in old}):
            try:
                with self._leased(table, "doctor --repair", 0.0):
                    # the whole log again, under the lease: a slow writer may have committed one meanwhile
                    live = set(self.log(table).audit()[0].parts)
                    gone = [rel for rel in old if rel.split("/")[1] == table and rel.rsplit("/", 1)[1] not in live]
                    self.objects.delete(gone)
            except (StoreBusy, DamagedLog) as exc:
                if busy is None:
                    raise
                busy.append(str(exc))
                continue
            removed += gone
        return removed

"""Stage accounting: every stage counts what went in, out and failed (by reason) into ``runs``."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .errors import StoreError
from .redact import redact


@dataclass
class StageStats:
    """What one stage run did. Stages return it; ``Store`` records it in the ``runs`` table."""

    stage: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    n_in: int = 0
    n_out: int = 0
    n_failed: int = 0
    bytes: int = 0
    failures: Counter = field(default_factory=Counter)
    status: str = "ok"
    started: float = field(default_factory=time.time)
    ended: float | None = None
    # what the flow's summary shows beside the counts (align's merged pairs, export's folder, ...);
    # never written to ``runs``
    details: dict = field(default_factory=dict)

    def fail(self, reason: str, n: int = 1) -> None:
        self.n_failed += n
        self.failures[reason] += n

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started

    def finish(self, status: str = "ok") -> StageStats:
        self.status = status
        self.ended = time.time()
        return self

    def row(self, config: dict | None = None) -> dict:
        def ts(t: float | None):
            return datetime.fromtimestamp(t, tz=timezone.utc) if t is not None else None

        return {
            "run_id": self.run_id, "stage": self.stage, "started_at": ts(self.started),
            "ended_at": ts(self.ended), "status": self.status, "n_in": self.n_in, "n_out": self.n_out,
            "n_failed": self.n_failed, "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "failures": json.dumps(dict(self.failures), ensure_ascii=False, sort_keys=True),
            # credentials never reach the store: URL userinfo, header values, registered secrets (storage/redact.py)
            "config": json.dumps(redact(config or {}), ensure_ascii=False, sort_keys=True, default=str),
        }


def ended_by(exc: BaseException) -> tuple[str, str]:
    """The ``runs`` status and reason of a run that ``exc`` ended: ``failed`` for an ``Exception``,
    ``interrupted`` for a stop from outside (KeyboardInterrupt, SIGTERM, Prefect's termination: a
    ``BaseException`` that is no ``Exception``); the reason ``Class: first line of the message``
    (credentials masked, at most 300 characters)."""
    status = "failed" if isinstance(exc, Exception) else "interrupted"
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    reason = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
    return status, redact(reason)[:300]


def changes_note(details: dict) -> str:
    """``new 3, changed 1, unchanged 36`` from a stage's ``details["changes"]`` (what its items were
    against the store before it ran), or "" when the stage does not count them."""
    changes = details.get("changes") if isinstance(details, dict) else None
    if not isinstance(changes, dict) or not changes:
        return ""
    return ", ".join(f"{kind} {n:,}" for kind, n in changes.items())


# ``runs`` gets one part per stage run: past this many, the run that writes one more compacts the table
# (a year of nightly flows is thousands of parts, and every read of ``runs`` opens each of them:
# 0.2 s a read at 74 parts). The compaction of 33 small parts costs ~0.4 CPU s, once every 32 runs.
RUNS_PARTS = 32


def record_run(store, stats: StageStats, config: dict | None = None) -> None:
    """Write one row to ``runs`` (the stage's ended time is set if it was not yet), then compact
    ``runs`` when it holds over :data:`RUNS_PARTS` parts and no other writer is rewriting it (a
    compaction that cannot be made, another's under way or a damaged part that doctor names, is left:
    the run's row is written, and the stage's work stands)."""
    if stats.ended is None:
        stats.finish(stats.status)
    store.write("runs", [stats.row(config)])
    if store.parts_after_write("runs") > RUNS_PARTS:
        try:
            store.compact("runs", wait=0)
        except StoreError:  # StoreBusy: another run is compacting it, which serves this one too
            pass

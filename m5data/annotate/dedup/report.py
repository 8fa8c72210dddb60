"""What one dedup run found and where its time went: :class:`DedupReport` (the counts beyond the
stage's; the part a run keeps in its state, :data:`KEPT`, is the report of a later run that finds
nothing changed) and :class:`Steps`, the wall and CPU seconds of each step into it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ...storage import StageStats
from . import near

Progress = Callable[[str, int, int], None]
KEPT = ("n_products", "n_groups", "n_grouped", "pairs", "vetoed", "candidates", "capped", "matcher", "n_groups_rules")


@dataclass
class DedupReport:
    """What one dedup run found, beyond the stage counts."""

    stats: StageStats
    n_products: int = 0
    n_groups: int = 0  # groups of 2 or more
    n_grouped: int = 0  # products in such groups
    pairs: Counter = field(default_factory=Counter)  # rule -> accepted pairs
    vetoed: Counter = field(default_factory=Counter)  # rule -> pairs rejected by the spec veto (spec: by chance)
    candidates: Counter = field(default_factory=Counter)  # index -> candidate pairs checked
    capped: Counter = field(default_factory=Counter)  # index -> pairs (checks) a bucket over dedup.bucket_cap skipped
    seconds: Counter = field(default_factory=Counter)  # step -> wall seconds (title MinHash counted in minhash)
    cpu_seconds: Counter = field(default_factory=Counter)  # step -> CPU seconds of this process, likewise
    matcher: str = "rules"  # rules, "learned <model version>", or "rules (<why no matcher>)"
    full: str | None = None  # why every product was grouped again (None: only pairs of changed products were searched)
    searched: int = 0  # products whose pairs this run searched (all of them in a full run)
    n_groups_rules: int = 0  # groups of 2+ from the rules' pairs alone (the matcher's pairs join more)
    table: pa.Table | None = None  # the rows written

    @property
    def rows(self) -> list[dict]:
        """The rows written, as dicts (small stores: scoring, tests)."""
        return self.table.to_pylist() if self.table is not None else []

    def kept(self) -> dict:
        """The :data:`KEPT` fields as the state holds them (counters as dicts)."""
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in ((k, getattr(self, k)) for k in KEPT)}

    @classmethod
    def from_kept(cls, stats: StageStats, kept: dict) -> DedupReport:
        """The report a run kept (:meth:`kept`), with this run's ``stats``."""
        return cls(stats, **{k: Counter(v) if isinstance(v, dict) else v for k, v in kept.items() if k in KEPT})


class Steps:
    """``step(name)``: the wall and CPU seconds since the last step into the report, then
    ``progress(step, done, total)``."""

    NAMES = ("read", "exact", "phash", "minhash", "spec", "matcher", "groups", "write")

    def __init__(self, report: DedupReport, progress: Progress | None):
        self.report, self.progress = report, progress
        self.clock = [time.perf_counter(), time.process_time()]

    def __call__(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.report.seconds[name] += now - self.clock[0]
        self.report.cpu_seconds[name] += cpu - self.clock[1]
        self.clock[:] = [now, cpu]
        if self.progress:
            self.progress("dedup", self.NAMES.index(name) + 1, len(self.NAMES))

    def title_indexer(self, titles: near.LSHIndex, wide: near.LSHIndex | None, shingle: int) -> Callable:
        """What a full read calls on each batch of titles: MinHashed into ``titles`` (and ``wide``), then dropped."""
        report = self.report

        def index_titles(batch: list[str]) -> None:  # each batch of titles is MinHashed, then dropped
            t0, c0 = time.perf_counter(), time.process_time()
            values, offsets = near.title_hashes(batch, shingle)
            valid = np.fromiter(map(bool, batch), dtype=bool, count=len(batch))
            titles.add(values, offsets, valid)
            if wide is not None:  # the learned matcher's wider title candidates, from the same shingles
                wide.add(values, offsets, valid)
            for clocks, spent in ((report.seconds, time.perf_counter() - t0),
                                  (report.cpu_seconds, time.process_time() - c0)):
                clocks["minhash"] += spent  # the title rule's work, done while reading: counted as its own
                clocks["read"] -= spent

        return index_titles

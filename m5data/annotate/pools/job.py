"""Query candidate pools (``m5data annotate pools``): for each query, the top-K gallery products.

As the papers built them: each product is embedded by image and by text, the two blocks are
L2-normalised (after centring) and concatenated, and the gallery is ranked by cosine to the query;
the top ``K`` (default 500) are kept, never the query itself, ties broken by product_id.

Queries: the ``query*`` splits of ``--split-version`` when given (gallery: its ``gallery*`` splits,
or every product of the version outside ``train`` and the query splits); otherwise a seeded, stable
sample of the products (``pools.queries``: a share up to 1, a count above 1) with every
product in the gallery. A product is a query when ``sha1(seed:product_id)`` falls under the share,
so adding products never changes which old products are queries.

Resumable: the vectors live in a memory-map ``derived/pools/vectors-<fingerprint>.npy`` keyed by
the inputs they depend on (products, captions, image hashes, embedder settings; module
:mod:`.vectors`), so a re-run with the same inputs embeds nothing; one marker per finished
block of queries lives in ``derived/pools/<fingerprint>/``, where that fingerprint adds the
queries, the gallery and the search settings; a re-run with the same fingerprint skips finished
blocks, and a run with another fingerprint starts afresh. Pools of products that are no longer
queries are dropped at the end (reading each part's query ids once), so a re-run leaves the same
table. A complete full run keeps its input state (module :mod:`.input_state`) in the run's state: a
re-run that finds the store, the settings and the pools as that run left them returns its report
without reading the catalog. The full run itself: :mod:`.full_run`.

Incremental (module :mod:`.next_run`): a complete run also keeps its fitted embedder, its
vectors and each query's best ``K + pools.margin`` candidates; unless ``full`` (or
``fresh``, ``ann_check``, a split version), a later run embeds and searches only what changed since.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ... import config as cfg
from ...stages import StageRun, opened
from ...storage import StageStats
from ..kernels import embed
from ..kernels.search import SEARCHES
from . import full_run, input_state, next_run, update_run
from .full_run import RUN_VERSION, ann_recall, split_members
from .image_vectors import IMAGES
from .next_run import run_config
from .rows import KEPT_NAME, PoolsError, Rows, gallery_matrix, pool_queries_present, sample_queries
from .score import score_pools
from .vectors import embedder_name

__all__ = ["RUN_VERSION", "PoolsError", "PoolsReport", "Rows", "ann_recall", "build_pools", "check_settings",
           "gallery_matrix", "pool_queries_present", "run", "sample_queries", "split_members",
           "score_pools"]  # score_pools lives in .score, image_paths in .images

Progress = Callable[[str, int, int], None]
KEPT = f"derived/{KEPT_NAME}"  # the vectors, block markers and part index (a kept folder)
VECTORS_FILES = "vectors-*.npy"  # the memory-maps (large): an up-to-date re-run never reads them


@dataclass
class PoolsReport:
    """What one pools run did, beyond the stage counts."""

    stats: StageStats
    embedder: str = ""
    n_products: int = 0
    n_queries: int = 0
    n_gallery: int = 0
    n_blocks: int = 0
    n_resumed: int = 0  # blocks skipped because a previous run finished them
    gaps: Counter = field(default_factory=Counter)  # "zero image block: no image" -> products, ...
    ann_recall: float | None = None  # recall of a faiss-hnsw search against exact on a sample of queries
    dropped_queries: int = 0  # stale pools removed (products no longer queries)
    from_titles: int = 0  # products without a captions row whose raw title was embedded (extract not run)
    fingerprint: str = ""
    vectors_reused: bool = False  # the vectors of these inputs were mapped from derived/pools, not embedded
    timings: dict = field(default_factory=dict)  # seconds per phase: read, embed, search, stale, keep
    up_to_date: bool = False  # nothing changed since the last complete run: its report, nothing read
    changes: dict = field(default_factory=dict)  # products new, changed, unchanged since the last complete run
    refit: str | None = None  # why every product was embedded and every query searched (None: incremental)
    searched: int = 0  # queries searched against the whole gallery
    rewritten: int = 0  # queries whose pool was written
    compacted: list = field(default_factory=list)  # [rows before, rows after] when this run compacted the pools table


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[pools]`` values before any work."""
    a = s.pools
    if a.queries <= 0:
        raise cfg.ConfigError(f"config pools.queries must be > 0 (a share up to 1 or a count), got {a.queries!r}")
    if a.queries > 1 and not float(a.queries).is_integer():
        raise cfg.ConfigError(f"config pools.queries above 1 is a count and must be whole, got {a.queries!r}")
    if a.compact_share < 0:
        raise cfg.ConfigError(f"config pools.compact_share must be >= 0 (0: never compact), got {a.compact_share!r}")
    if a.margin < 0 or not 0.0 <= a.refit_share <= 1.0:
        raise cfg.ConfigError(f"config pools.margin must be >= 0 and pools.refit_share in [0, 1], "
                              f"got {a.margin!r} and {a.refit_share!r}")
    for key in ("k", "block", "text_dim", "svd_iter"):
        if getattr(a, key) < 1:
            raise cfg.ConfigError(f"config pools.{key} must be >= 1, got {getattr(a, key)!r}")
    if a.search not in SEARCHES:
        raise cfg.ConfigError(f"config pools.search must be one of {', '.join(SEARCHES)}, got {a.search!r}")
    if a.svd not in embed.SVDS:
        raise cfg.ConfigError(f"config pools.svd must be one of {', '.join(embed.SVDS)}, got {a.svd!r}")
    if a.image not in IMAGES:
        raise cfg.ConfigError(f"config pools.image must be one of {', '.join(IMAGES)}, got {a.image!r}")
    if a.image_model and a.image != "vectors":
        raise cfg.ConfigError(f"config pools.image_model names the vision model of pools.image = vectors; "
                              f"pools.image is {a.image!r}")
    if a.image_model != a.image_model.strip():
        raise cfg.ConfigError(f"config pools.image_model must be a model as image_vectors names it, got {a.image_model!r}")
    if a.text_weight < 0 or a.image_weight < 0 or a.text_weight + a.image_weight == 0:
        raise cfg.ConfigError("config pools.text_weight and pools.image_weight must be >= 0, not both 0")


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: build the pools; see :func:`build_pools` for the arguments."""
    return build_pools(store, settings, **kwargs).stats


def build_pools(store, settings: cfg.Settings, *, split_version: str | None = None, fresh: bool = False,
                ann_check: int = 0, progress: Progress | None = None, full: bool = False,
                run: StageRun | None = None) -> PoolsReport:
    """Embed the products, search each query's top K and write the ``pools`` table.

    Args:
        split_version: take queries (and gallery) from this split version instead of a sample.
        fresh: ignore finished blocks of an interrupted run with the same inputs.
        ann_check: with ``pools.search`` = exact, also search this many queries with
            faiss HNSW and report its recall against exact (0 = no check); with a faiss search,
            the faiss result of the first block is compared with exact search.
        progress: ``progress(step, done, total)``.
        full: embed every product and search every query even when a complete run's kept embedder,
            vectors and pools could be updated with what changed since.
        run: the run the contract opened (``stages.call``, its options these); None: opened here
            (``stages.opened``), a full one with ``full``.
    """
    check_settings(settings)
    if run is None:
        with opened(next_run.STAGE, store, settings, full=full, split_version=split_version) as run:
            return build_pools(store, settings, split_version=split_version, fresh=fresh, ann_check=ann_check,
                               progress=progress, run=run)
    incremental = not (run.full or fresh or ann_check or split_version)
    if incremental and (saved := next_run.up_to_date(run)) is not None:
        report = PoolsReport(run.stats, embedder=embedder_name(settings))
        input_state.restore(report, saved["report"])
        report.changes = {"new": 0, "changed": 0, "unchanged": report.n_products}
        run.record(run_config(settings, None, report.fingerprint, up_to_date=True), "ok")
        return report
    # on object storage: a local copy, written back at the end; the vectors fetched only when used
    with store.kept(KEPT, lazy=(VECTORS_FILES, *next_run.LAZY)) as kept:
        return _build(run, settings, kept, split_version, fresh, ann_check, progress,
                      None if incremental else "full run asked")


def _build(run: StageRun, settings: cfg.Settings, kept, split_version: str | None, fresh: bool, ann_check: int,
           progress: Progress | None, refit: str | None) -> PoolsReport:
    """The pools as the last complete full run's input state left them, updated with what changed
    since (:mod:`.update_run`), or built in full (:mod:`.full_run`; ``refit``: why)."""
    store = run.store
    report = PoolsReport(run.stats, embedder=embedder_name(settings))
    clock = _Clock(report.timings)
    state = input_state.snapshot(store, settings, split_version, RUN_VERSION)
    kept_inputs = (run.state or {}).get("input_state")  # the last complete run's, when it was a full one
    if not fresh and not ann_check:
        saved = input_state.saved_report(store, kept.path, kept_inputs, state)
        if saved is not None:
            input_state.restore(report, saved)
            report.changes = {"new": 0, "changed": 0, "unchanged": report.n_products}
            clock("check")
            run.record(run_config(settings, split_version, report.fingerprint, up_to_date=True), "ok")
            return report
    if refit is None:
        refit = next_run.why_full(run, settings, kept)
        if refit is None and kept_inputs is not None and run.unchanged():
            refit = "the store changed outside its tables (a part or an image file removed)"
        if refit is None:
            refit = update_run.run(run, settings, kept, report, clock, progress)
            if refit is None:
                return report
            run.stats = StageStats("pools")  # the incremental try's counts are not this run's
            report = PoolsReport(run.stats, embedder=embedder_name(settings))
            clock = _Clock(report.timings)
    report.refit = refit
    return full_run.build(run, settings, kept, report, clock, state, split_version, fresh, ann_check, progress)


class _Clock:
    """Adds the seconds since the previous call to ``timings[phase]``."""

    def __init__(self, timings: dict):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(self.timings.get(phase, 0.0) + now - self.last, 3)
        self.last = now



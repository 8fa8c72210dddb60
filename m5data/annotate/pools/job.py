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
:mod:`.pool_vectors`), so a re-run with the same inputs embeds nothing; one marker per finished
block of queries lives in ``derived/pools/<fingerprint>/``, where that fingerprint adds the
queries, the gallery and the search settings; a re-run with the same fingerprint skips finished
blocks, and a run with another fingerprint starts afresh. Pools of products that are no longer
queries are dropped at the end (reading each part's query ids once), so a re-run leaves the same
table. A complete run saves its input state (module :mod:`.pool_inputs`): a re-run that finds the
store, the settings and the pools as that run left them returns its report without reading the
catalog.

Incremental (module :mod:`.pools_incremental`): a complete run also keeps its fitted embedder, its
vectors and each query's best ``K + pools.margin`` candidates; unless ``full`` (or
``fresh``, ``ann_check``, a split version), a later run embeds and searches only what changed since.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...stages import StageRun
from ...storage import StageStats
from ..kernels import embed
from ..kernels.search import SEARCHES, Hits, exact_search, faiss_search, recall_against, search
from . import pool_inputs, pool_lists, pools_incremental, pools_update
from .pool_rows import (
    KEPT_NAME,
    PoolsError,
    Rows,
    drop_stale,
    gallery_matrix,
    pool_queries_present,
    pool_rows,
    sample_queries,
)
from .pool_vectors import NO_VECTOR, CatalogError, embedder_name, product_vectors, read_catalog, titles_as_captions
from .pools_incremental import run_config
from .pools_score import score_pools

__all__ = ["RUN_VERSION", "PoolsError", "PoolsReport", "Rows", "ann_recall", "build_pools", "check_settings",
           "gallery_matrix", "pool_queries_present", "run", "sample_queries", "split_members",
           "score_pools"]  # score_pools lives in .pools_score, image_paths in .pool_images

Progress = Callable[[str, int, int], None]
KEPT = f"derived/{KEPT_NAME}"  # the vectors, block markers, part index and input state (a kept folder)
VECTORS_FILES = "vectors-*.npy"  # the memory-maps (large): an up-to-date re-run never reads them
RUN_VERSION = "pools-v3"  # bump when the pools of the same vectors and settings change (v3: block lists kept)


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
    if a.image not in embed.IMAGE_EMBEDDERS:
        raise cfg.ConfigError(f"config pools.image must be one of {', '.join(embed.IMAGE_EMBEDDERS)}, got {a.image!r}")
    if a.text_weight < 0 or a.image_weight < 0 or a.text_weight + a.image_weight == 0:
        raise cfg.ConfigError("config pools.text_weight and pools.image_weight must be >= 0, not both 0")


def split_members(store, version: str) -> tuple[list[str], list[str]]:
    """(queries, gallery) of a split version: its query splits and its gallery splits (or the rest but train)."""
    t = store.read("splits", where=f"version = '{version.replace(chr(39), chr(39) * 2)}'",
                   columns=["product_id", "split"])
    if not t.num_rows:
        raise PoolsError(f"no split version {version!r} in the store (build one with `m5data build-splits`)")
    ids, splits = t.column("product_id").to_pylist(), t.column("split").to_pylist()
    queries = sorted({p for p, s in zip(ids, splits) if s.startswith("query")})
    gallery = {p for p, s in zip(ids, splits) if s.startswith("gallery")}
    if not gallery:
        train = {p for p, s in zip(ids, splits) if s == "train"}
        gallery = set(ids) - train - set(queries)
    if not queries:
        raise PoolsError(f"split version {version!r} has no query split")
    return queries, sorted(gallery)


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: build the pools; see :func:`build_pools` for the arguments."""
    return build_pools(store, settings, **kwargs).stats


def build_pools(store, settings: cfg.Settings, *, split_version: str | None = None, fresh: bool = False,
                ann_check: int = 0, progress: Progress | None = None, full: bool = False) -> PoolsReport:
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
    """
    check_settings(settings)
    incremental = not (full or fresh or ann_check or split_version)
    with StageRun(store, pools_incremental.STAGE, reads=pools_incremental.READS,
                  inputs=pools_incremental.inputs(settings, split_version, RUN_VERSION)) as run:
        if incremental and (saved := pools_incremental.up_to_date(run)) is not None:
            report = PoolsReport(run.stats, embedder=embedder_name(settings))
            pool_inputs.restore(report, saved["report"])
            report.changes = {"new": 0, "changed": 0, "unchanged": report.n_products}
            run.record(run_config(settings, None, report.fingerprint, up_to_date=True), "ok")
            return report
        # on object storage: a local copy, written back at the end; the vectors fetched only when used
        with store.kept(KEPT, lazy=(VECTORS_FILES, *pools_incremental.LAZY)) as kept:
            return _build(run, settings, kept, split_version, fresh, ann_check, progress,
                          None if incremental else "full run asked")


def _build(run: StageRun, settings: cfg.Settings, kept, split_version: str | None, fresh: bool, ann_check: int,
           progress: Progress | None, refit: str | None) -> PoolsReport:
    """The pools as the last complete run's saved input state left them, updated with what changed
    since (:mod:`.pools_incremental`), or built in full (``refit``: why)."""
    store = run.store
    report = PoolsReport(run.stats, embedder=embedder_name(settings))
    clock = _Clock(report.timings)
    work = kept.path
    state = pool_inputs.snapshot(store, settings, split_version, RUN_VERSION)
    if not fresh and not ann_check:
        saved = pool_inputs.saved_report(store, work, state)
        if saved is not None:
            pool_inputs.restore(report, saved)
            report.changes = {"new": 0, "changed": 0, "unchanged": report.n_products}
            clock("check")
            run.record(run_config(settings, split_version, report.fingerprint, up_to_date=True), "ok")
            return report
    if refit is None:
        was_full = (work / pool_inputs.STATE_FILE).is_file()
        refit = pools_incremental.why_full(run, settings, kept)
        if refit is None and was_full and run.unchanged():
            refit = "the store changed outside its tables (a part or an image file removed)"
        if refit is None:
            pool_inputs.forget(work)
            refit = pools_update.run(run, settings, kept, report, clock, progress)
            if refit is None:
                return report
            run.stats = StageStats("pools")  # the incremental try's counts are not this run's
            report = PoolsReport(run.stats, embedder=embedder_name(settings))
            clock = _Clock(report.timings)
    report.refit = refit
    return _full(run, settings, kept, report, clock, state, split_version, fresh, ann_check, progress)


def _full(run: StageRun, settings: cfg.Settings, kept, report: PoolsReport, clock: _Clock, state: dict,
          split_version: str | None, fresh: bool, ann_check: int, progress: Progress | None) -> PoolsReport:
    """Embed every product (or map the vectors of the same inputs), search every query's block not
    finished by an interrupted run of the same fingerprint, and complete the run."""
    store, a, stats, work = run.store, settings.pools, report.stats, kept.path
    pool_inputs.forget(work)  # this run may change the pools: the saved state is no longer theirs
    ids, vectors = _vectors(store, settings, kept, report, clock, state, progress)
    queries, gallery_ids, q_rows, g_rows, self_index = _members(store, ids, vectors.usable, split_version, a.queries,
                                                                settings.annotate.seed)
    report.n_queries, report.n_gallery = len(queries), len(gallery_ids)
    report.changes = {"new": len(ids), "changed": 0, "unchanged": 0}
    report.searched = report.rewritten = len(queries)
    stats.n_in = len(queries)
    width = a.k + a.margin  # each query's best K + margin kept (the table gets K): what an incremental run merges into

    fp = checkpoint_key(RUN_VERSION, vectors.fingerprint, a.k, a.margin, a.search, a.block,
                           _digest(queries), _digest(gallery_ids))
    report.fingerprint = fp
    ckpt, done = _finished_blocks(store, kept, fp, fresh, queries, self_index, len(gallery_ids), a.block)
    nblocks = -(-len(queries) // a.block)
    report.n_blocks = nblocks
    report.n_resumed = sum(1 for b in range(nblocks) if b * a.block in done)
    finished = report.n_resumed
    qv = Rows(vectors.matrix, q_rows)
    if finished < nblocks or ann_check:
        # scratch: in the checkpoint folder on a folder store, never among the kept files on object storage
        gv = gallery_matrix(vectors.matrix, g_rows, store.work_dir(KEPT_NAME, fp))
        q_ids, g_ids = pa.array(queries, pa.string()), pa.array(gallery_ids, pa.string())
    for hits in (search(qv, gv, width, method=a.search, block=a.block, self_index=self_index,
                        skip=lambda start: start in done) if finished < nblocks else ()):
        out = pool_rows(Hits(hits.start, hits.scores[:, :a.k], hits.index[:, :a.k]), q_ids, g_ids,
                         report.embedder, stats.run_id)
        store.write("pools", out)
        stats.n_out += hits.scores.shape[0]
        cand, score = pool_lists.block_lists(hits, g_rows, width)
        with open(ckpt / f"block-{hits.start}.npz", "wb") as f:
            np.savez(f, cand=cand, score=score)
        kept.push(ckpt / f"block-{hits.start}.npz")
        marker = ckpt / f"block-{hits.start}.done"
        marker.write_text(json.dumps({"run_id": stats.run_id, "rows": out.num_rows}))
        kept.push(marker)  # on object storage: uploaded now, so that a killed run's next run resumes
        finished += 1
        if progress:
            progress("search", finished, nblocks)
    stats.n_out += sum(min(a.block, len(queries) - b * a.block) for b in range(nblocks)
                       if b * a.block in done)
    clock("search")
    report.dropped_queries = drop_stale(store, queries, work)
    clock("stale")
    if ann_check and len(queries):
        report.ann_recall = ann_recall(qv, gv, a.k, self_index, a.search, ann_check)
        clock("ann check")
    (store.work_dir(KEPT_NAME, fp) / "gallery.npy").unlink(missing_ok=True)
    stats.finish()
    config = run_config(settings, split_version, fp)
    lists = None if split_version else pool_lists.gather_lists(kept, fp, nblocks, a.block, q_rows, width,
                                                                      len(g_rows) - (self_index >= 0))
    if lists is not None:
        pools_incremental.save(run, kept, config, fp, pa.array(ids, pa.string()), f"vectors-{vectors.fingerprint}",
                               lists, len(ids), report)
    else:  # pools of a split version (or of blocks without kept lists): the next run is a full one
        run.complete(config)
    clock("keep")  # the kept lists and ids, for the next incremental run
    pool_inputs.save(store, work, state, fp, report)  # last: only a complete run is up to date
    return report


def _vectors(store, settings: cfg.Settings, kept, report: PoolsReport, clock: _Clock, state: dict,
             progress: Progress | None):
    """``(ids, vectors)`` of every product of the catalog; PoolsError when none can be embedded."""
    catalog = read_catalog(store)
    if not len(catalog):
        raise PoolsError(f"no products in the store at {store.root}")
    state["image_dirs"] = pool_inputs.image_dirs(store.root, catalog.table.column("blob"))
    report.n_products = len(catalog)
    try:
        report.from_titles = titles_as_captions(catalog, settings)
    except CatalogError as exc:
        raise PoolsError(str(exc)) from None
    clock("read")
    vectors = product_vectors(store, catalog, settings, progress, kept=kept)
    report.gaps, report.vectors_reused = vectors.gaps, vectors.reused
    clock("embed")
    ids = catalog.column("product_id")
    del catalog  # the titles, captions and tokens are no longer needed: only ids and vectors
    usable = vectors.usable
    if not usable.any():  # an empty result would look like a finished run
        raise PoolsError(f"none of the {len(ids):,} products has a caption, a title or a normalised image to "
                         "embed: run `m5data extract` first (captions and normalised images), after a crawl "
                         "that found titles or images")
    if not usable.all():
        report.stats.fail(NO_VECTOR, int((~usable).sum()))
    return ids, vectors


def _members(store, ids, usable: np.ndarray, split_version: str | None, share: float, seed: int):
    """``(queries, gallery ids, query rows, gallery rows, each query's row in the gallery or -1)``: a split
    version's, or a seeded sample of the products with a vector against all of them."""
    row_of = {p: i for i, p in enumerate(ids)}
    if split_version:
        queries, gallery_ids = split_members(store, split_version)
        queries = [q for q in queries if q in row_of and usable[row_of[q]]]
        gallery_ids = [g for g in gallery_ids if g in row_of and usable[row_of[g]]]  # sorted: ids are
        g_rows = np.array([row_of[g] for g in gallery_ids], np.int64)
    else:
        queries = [q for q in sample_queries(ids, share, seed) if usable[row_of[q]]]
        g_rows = np.flatnonzero(usable).astype(np.int64)
        gallery_ids = [ids[i] for i in g_rows]
    q_rows = np.array([row_of[q] for q in queries], np.int64)
    gal_pos = np.full(len(ids), -1, np.int64)
    gal_pos[g_rows] = np.arange(len(g_rows))
    self_index = gal_pos[q_rows] if len(q_rows) else np.zeros(0, np.int64)
    return queries, gallery_ids, q_rows, g_rows, self_index


def _finished_blocks(store, kept, fp: str, fresh: bool, queries: list[str], self_index: np.ndarray, n_gallery: int,
                     block: int) -> tuple[Path, set[int]]:
    """``(checkpoint folder, starts of the blocks done)``: the blocks an interrupted run of the same
    fingerprint finished (with their kept candidates and their pools still in the table)."""
    work = kept.path
    for old in work.iterdir():  # another fingerprint's checkpoints: inputs or settings changed
        if old.is_dir() and old.name != fp:
            shutil.rmtree(old, ignore_errors=True)
    ckpt = work / fp
    if fresh:
        shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    listed = set(kept.names(f"{fp}/block-*.npz"))  # a block counts as done with its kept candidates only
    done = {int(p.stem.split("-")[1]) for p in ckpt.glob("block-*.done") if f"{fp}/{p.stem}.npz" in listed}
    return ckpt, done - _blocks_without_pools(store, work, queries, self_index, n_gallery, block, done)



class _Clock:
    """Adds the seconds since the previous call to ``timings[phase]``."""

    def __init__(self, timings: dict):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.timings[phase] = round(self.timings.get(phase, 0.0) + now - self.last, 3)
        self.last = now


def checkpoint_key(*parts) -> str:
    """The name of a run's checkpoint folder ``derived/pools/<key>/``: a short digest of the reprs of
    what decides its blocks (the vectors' key, search settings, queries, gallery). Not the run's
    fingerprint (``stage_run.fingerprint``, what the ``runs`` row records): a folder name whose bytes
    existing stores hold, so that an interrupted run resumes."""
    digest = hashlib.sha256()
    for p in parts:
        digest.update(repr(p).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _digest(ids: list[str]) -> str:
    """sha256 of a list of product ids (a fingerprint part that is not the whole list's repr)."""
    h = hashlib.sha256()
    for s in range(0, len(ids), 65_536):
        h.update("\x1f".join(ids[s:s + 65_536]).encode())
        h.update(b"\x1e")
    return h.hexdigest()


def _blocks_without_pools(store, work: Path, queries: list[str], self_index: np.ndarray, n_gallery: int,
                          block: int, done: set[int]) -> set[int]:
    """The finished blocks some of whose queries have no rows in ``pools`` (a part deleted or the
    table rewritten behind the run): searched again. A query has rows unless the gallery holds
    nothing but itself. Reads the parts' query ids from the index the stale step keeps."""
    if not done:
        return set()
    present = pool_queries_present(store, work)
    has_pool = n_gallery - (self_index >= 0) > 0
    return {start for start in done
            if any(has_pool[i] and queries[i] not in present for i in range(start, min(start + block, len(queries))))}


def ann_recall(qv, gv: np.ndarray, k: int, self_index: np.ndarray, method: str, n: int) -> float:
    """Recall of an approximate search against exact on the first ``n`` queries (faiss HNSW when exact is the method)."""
    n = min(n, len(qv))
    q, own = qv[:n], self_index[:n]
    exact = np.concatenate([h.index for h in exact_search(q, gv, k, self_index=own)])
    kind = "hnsw" if method in ("exact", "faiss-hnsw") else "flat"
    approx = np.concatenate([h.index for h in faiss_search(q, gv, k, kind=kind, self_index=own)])
    return recall_against(exact, approx)

"""A full pools run (:mod:`.job` describes the pools): every product embedded (or the vectors of the same
inputs mapped), every query's block searched that an interrupted run of the same fingerprint did not
finish, the stale pools dropped, and the run completed with what the next one needs: its kept lists
(:mod:`.next_run`) and its input state (:mod:`.input_state`)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...stage_run import StageRun
from ..kernels.search import Hits, exact_search, faiss_search, recall_against, search
from . import candidate_lists, input_state, next_run
from .image_vectors import resolve
from .next_run import run_config
from .rows import (
    KEPT_NAME,
    PoolsError,
    Rows,
    drop_stale,
    gallery_matrix,
    pool_queries_present,
    pool_table,
    sample_queries,
)
from .vectors import NO_VECTOR, CatalogError, embedder_name, product_vectors, read_catalog, titles_as_captions

if TYPE_CHECKING:
    from .job import PoolsReport

Progress = Callable[[str, int, int], None]
RUN_VERSION = "pools-v3"  # bump when the pools of the same vectors and settings change (v3: block lists kept)


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


def build(run: StageRun, settings: cfg.Settings, kept, report: PoolsReport, clock, state: dict,
          split_version: str | None, fresh: bool, ann_check: int, progress: Progress | None) -> PoolsReport:
    """Embed every product (or map the vectors of the same inputs), search every query's block not
    finished by an interrupted run of the same fingerprint, and complete the run, its input state
    (``state``, :mod:`.input_state`) kept in the run's state."""
    store, a, stats, work = run.store, settings.pools, report.stats, kept.path
    kept.remove(input_state.LEGACY_FILE)  # an older m5data's input state, beside the run's: it goes
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
        out = pool_table(Hits(hits.start, hits.scores[:, :a.k], hits.index[:, :a.k]), q_ids, g_ids,
                         report.embedder, stats.run_id)
        store.write("pools", out)
        stats.n_out += hits.scores.shape[0]
        cand, score = candidate_lists.block_lists(hits, g_rows, width)
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
    lists = None if split_version else candidate_lists.gather_lists(kept, fp, nblocks, a.block, q_rows, width,
                                                                      len(g_rows) - (self_index >= 0))
    # the input state as the run leaves the store: kept in the run's state, written last (only a
    # complete run is up to date)
    inputs = input_state.kept_state(store, work, state, fp, report)
    if lists is not None:
        next_run.save(run, kept, config, fp, pa.array(ids, pa.string()), f"vectors-{vectors.fingerprint}",
                               lists, len(ids), report, input_state=inputs)
    else:  # pools of a split version (or of blocks without kept lists): the next run is a full one
        run.complete(config, input_state=inputs)
    clock("keep")  # the kept lists and ids, for the next incremental run
    return report


def _vectors(store, settings: cfg.Settings, kept, report: PoolsReport, clock, state: dict,
             progress: Progress | None):
    """``(ids, vectors)`` of every product of the catalog; PoolsError when none can be embedded."""
    image_model = resolve(store, settings)  # pools.image = vectors: the model (refused: none, or several unnamed)
    report.embedder = embedder_name(settings, image_model)
    catalog = read_catalog(store, image_model=image_model)
    if not len(catalog):
        raise PoolsError(f"no products in the store at {store.root}")
    state["image_dirs"] = input_state.image_dirs(store.root, catalog.table.column("blob"))
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

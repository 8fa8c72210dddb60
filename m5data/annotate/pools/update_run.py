"""The incremental pools run (:mod:`.next_run` describes it): the new and changed products
embedded with the kept embedder, the kept lists merged with them, the queries that need it searched
again, and only the pools whose top ``K`` changed written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ... import config as cfg
from ...stages import StageRun
from ..kernels.search import Hits, quantise, search
from . import embedder
from .candidate_lists import Lists, block_lists, floors, load_lists, merge, merged
from .image_vectors import resolve
from .input_state import restore
from .next_run import WRITING, _load_ids, changed_products, run_config, save
from .rows import KEPT_NAME, PoolsError, Rows, drop_stale, gallery_matrix, pool_table, sample_queries
from .vectors import NO_VECTOR, CatalogError, embedder_name, read_catalog, titles_as_captions


@dataclass
class _Kept:
    """The last complete run's kept files, loaded."""

    paths: dict  # name -> local path
    fitted: object  # the fitted embedder
    ids: pa.Array  # the product ids of the kept vectors' rows
    lists: Lists
    vectors: np.ndarray | None  # memory-mapped (None once copied)
    usable: np.ndarray


@dataclass
class _Now:
    """The store's products now against the kept ones."""

    cur: pa.Array  # product ids, sorted
    pos: np.ndarray  # kept row -> row now (-1: removed)
    d_rows: np.ndarray  # rows now of the new and changed products
    in_d: np.ndarray  # per row now: new or changed
    removed: int


@dataclass
class _Final:
    """Each query's ``K + M`` candidates, their scores and its floor."""

    cand: np.ndarray
    score: np.ndarray
    floor: np.ndarray


def run(stage_run: StageRun, settings: cfg.Settings, kept, report, clock, progress=None) -> str | None:
    """Update the pools from what changed since the last complete run; None when done (the run completed),
    else why a full run is needed."""
    store, state = stage_run.store, stage_run.state
    a = settings.pools
    old = _load_kept(kept, state["files"])
    if isinstance(old, str):
        return old
    image_model = resolve(store, settings)
    if (old.fitted.image_kind, old.fitted.image_model) != (a.image, image_model.name if image_model else ""):
        return "the image block was made otherwise (pools.image or its image model)"
    report.embedder = embedder_name(settings, image_model)
    stats = report.stats
    now = _changes(store, stage_run.since, old.ids, report, image_model.name if image_model else "")
    if now is None:
        return "no products"
    n, d_rows = len(now.cur), now.d_rows
    clock("changes")
    if len(d_rows) and n - len(d_rows) < a.refit_share * n:
        return f"{len(d_rows):,} of {n:,} products new or changed"
    if not len(d_rows) and not now.removed:  # rows written, none that pools read changed (a compaction, a repeat)
        restore(report, state["report"])
        report.up_to_date, report.changes = False, {"new": 0, "changed": 0, "unchanged": n}
        stage_run.complete(run_config(settings, None, report.fingerprint), "ok", files=state["files"],
                           fitted_on=state["fitted_on"], report=state["report"], pools_mark=store.watermark("pools"))
        return None
    tag = stats.run_id
    name = f"vectors-i{tag}"
    vectors = _vectors(store, settings, kept.path, name, old, now, report, progress, clock, image_model)
    if isinstance(vectors, str):
        return vectors
    out, usable = vectors
    clock("vectors")

    # queries, gallery and the kept lists in the new rows
    queries, q_rows = _queries(now.cur, usable, a.queries, settings.annotate.seed)
    g_rows = np.flatnonzero(usable).astype(np.int64)
    nq = len(q_rows)
    report.n_queries, report.n_gallery = nq, len(g_rows)
    report.n_blocks = -(-nq // a.block)
    stats.n_in = nq
    final, search_again, qa, old_top, old_top_score = _merged_lists(old.lists, now, usable, out, q_rows, a)
    clock("merge")
    report.searched = int(search_again.sum())
    _search_again(store, out, final, np.flatnonzero(search_again), q_rows, g_rows, a, f"i{tag}")
    clock("search")
    report.rewritten = _write_changed(store, kept, final, qa, old_top, old_top_score, queries, now.cur, a, report)
    stats.n_out = nq
    clock("write")
    still = pc.is_in(old.ids.take(pa.array(old.lists.q)), value_set=pa.array(queries, pa.string()))
    if not pc.all(still).as_py() and len(old.lists.q):  # pools of products no longer queries: removed
        report.dropped_queries = drop_stale(store, queries, kept.path)
    clock("stale")
    report.compacted = compact_if_superseded(store, int((final.cand[:, :a.k] >= 0).sum()), a.compact_share)
    clock("compact")
    report.vectors_reused = not len(d_rows)
    report.fingerprint = f"i{tag}"
    stats.finish()
    save(stage_run, kept, run_config(settings, None, report.fingerprint), tag, now.cur, name,
         Lists(q_rows, final.cand.astype(np.int32), final.score, final.floor), state["fitted_on"], report)
    return None


def _load_kept(kept, files: dict) -> _Kept | str:
    """The kept files the state names, or why they cannot be used."""
    paths = {k: kept.fetch(v) for k, v in files.items()}
    if any(p is None for p in paths.values()):
        return "kept files missing"
    fitted = embedder.loads(paths["embedder"].read_bytes())
    old_ids, lists = _load_ids(paths["ids"]), load_lists(paths["lists"])
    old_vec = np.load(paths["vectors"], mmap_mode="r")
    old_usable = np.load(paths["usable"])
    if fitted is None or old_ids is None or lists is None or len(old_ids) != len(old_vec) != len(old_usable):
        return "kept files unreadable"
    return _Kept(paths, fitted, old_ids, lists, old_vec, old_usable)


def _changes(store, since: dict[str, int], old_ids: pa.Array, report, image_model: str = "") -> _Now | None:
    """The products now, which are new or changed since the watermarks ``since`` (a new vector of
    ``image_model`` too) and how many kept ones are gone (None: no products)."""
    changed = changed_products(store, since, image_model)
    cur = store.read("products", columns=["product_id"]).column("product_id")
    cur = pc.take(cur, pc.sort_indices(cur)).combine_chunks().cast(pa.string())
    n = len(cur)
    if not n:
        return None
    pos = pc.fill_null(pc.index_in(old_ids, value_set=cur), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    touched = pc.or_(pc.invert(pc.is_in(cur, value_set=old_ids)), pc.is_in(cur, value_set=pa.array(sorted(changed), pa.string())))
    d_rows = np.flatnonzero(touched.to_numpy(zero_copy_only=False))
    in_d = np.zeros(n, bool)
    in_d[d_rows] = True
    removed = int((pos < 0).sum())
    new = int(np.count_nonzero(~pc.is_in(cur, value_set=old_ids).to_numpy(zero_copy_only=False)))
    report.changes = {"new": new, "changed": len(d_rows) - new, "unchanged": n - len(d_rows)}
    if removed:
        report.changes["removed"] = removed
    report.n_products = n
    return _Now(cur, pos, d_rows, in_d, removed)


def _vectors(store, settings: cfg.Settings, work, name: str, old: _Kept, now: _Now, report, progress, clock,
             image_model=None):
    """``(vectors, usable)`` of every product now, written as ``<name>.npy`` beside the kept ones: the kept
    rows copied, the new and changed products embedded with the kept embedder; or why not."""
    d_rows, pos, n = now.d_rows, now.pos, len(now.cur)
    # the new and changed products, embedded with the kept embedder
    catalog = (read_catalog(store, only=now.cur.take(pa.array(d_rows)).to_pylist(), image_model=image_model)
               if len(d_rows) else None)
    if catalog is not None and len(catalog) != len(d_rows):
        return "products changed while read"
    old_vec = old.vectors
    dim = old_vec.shape[1]
    vec_d, usable_d = np.zeros((0, dim), np.float32), np.zeros(0, bool)
    if catalog is not None:
        try:
            report.from_titles = titles_as_captions(catalog, settings)
        except CatalogError as exc:
            raise PoolsError(str(exc)) from None
        vec_d, report.gaps, usable_d = old.fitted.vectors(store, catalog, settings, progress)
        del catalog
    clock("embed")
    out = np.lib.format.open_memmap(work / f"{name}.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    usable = np.zeros(n, bool)
    src = np.flatnonzero((pos >= 0) & ~np.isin(pos, d_rows))
    dst = pos[src]
    for s in range(0, len(src), 65_536):
        out[dst[s:s + 65_536]] = old_vec[src[s:s + 65_536]]
    usable[dst] = old.usable[src]
    out[d_rows] = vec_d
    usable[d_rows] = usable_d
    out.flush()
    np.save(work / f"{name}.usable.npy", usable)
    (work / f"{name}.embedder.npz").write_bytes(old.paths["embedder"].read_bytes())
    del old_vec
    old.vectors = None  # the kept memory-map is done with
    if not usable.any():
        return "no product has a vector"
    if not usable.all():
        report.stats.fail(NO_VECTOR, int((~usable).sum()))
    return out, usable


def _queries(cur: pa.Array, usable: np.ndarray, share: float, seed: int) -> tuple[list[str], np.ndarray]:
    """The sampled queries that have a vector, and their rows."""
    ids_list = cur.to_pylist()
    queries = sample_queries(ids_list, share, seed)
    row_of = {p: i for i, p in enumerate(ids_list)}
    q_rows = np.array([row_of[q] for q in queries], np.int64)
    keep_q = usable[q_rows] if len(q_rows) else np.zeros(0, bool)
    return [q for q, k in zip(queries, keep_q) if k], q_rows[keep_q]


def _merged_lists(lists: Lists, now: _Now, usable: np.ndarray, out, q_rows: np.ndarray, a):
    """The kept queries' lists less the changed and removed products, with the best of the new and
    changed ones merged in: ``(final lists, which queries to search again, each query's kept list or -1,
    the kept top K and its scores)``."""
    K, L = a.k, a.k + a.margin
    pos, in_d, n, nq = now.pos, now.in_d, len(now.cur), len(q_rows)
    old_q = np.where(lists.q >= 0, pos[lists.q], -1)
    at = np.full(n, -1, np.int64)  # new row -> its kept list
    ok_q = old_q >= 0
    at[old_q[ok_q]] = np.flatnonzero(ok_q)
    raw = np.where(lists.cand >= 0, pos[np.maximum(lists.cand, 0)], -1)  # the kept lists in new rows (-1: removed)
    old_top = raw[:, :K]
    old_top_score = quantise(lists.score[:, :K])
    valid = (raw >= 0) & np.isfinite(lists.score)
    valid[valid] = ~in_d[raw[valid]] & usable[raw[valid]]
    cand = np.where(valid, raw, -1).astype(np.int64)
    score = np.where(valid, lists.score, -np.inf).astype(np.float32)

    qa = at[q_rows]
    kept_q = (qa >= 0) & ~in_d[q_rows]  # kept queries: their lists are updated
    m_idx = np.flatnonzero(kept_q)
    final = _Final(np.full((nq, L), -1, np.int64), np.full((nq, L), -np.inf, np.float32),
                   np.full(nq, -np.inf, np.float32))
    if len(m_idx):
        mc, ms, mf = cand[qa[m_idx], :L], score[qa[m_idx], :L], lists.floor[qa[m_idx]]
        n_rows = now.d_rows[usable[now.d_rows]]
        if len(n_rows):
            nc, ns, nf = _search_new(out, q_rows[m_idx], n_rows, L, a)
            mc, ms, mf = merge(mc, ms, mf, nc, ns, nf, L)
        else:  # nothing new in the gallery: the lists less what left them
            mc, ms = merged(mc, ms, mc[:, :0], ms[:, :0], L)
        final.cand[m_idx], final.score[m_idx], final.floor[m_idx] = mc, ms, mf
        # entries above the floor are exact: fewer than K of them (a pool that lost more than the margin) -> search again
        exact = (np.isfinite(ms) & (quantise(ms) > quantise(mf)[:, None])).sum(axis=1)
        kept_q[m_idx[np.isfinite(mf) & (exact < K)]] = False
    return final, ~kept_q, qa, old_top, old_top_score


def _search_again(store, out, final: _Final, full_idx: np.ndarray, q_rows: np.ndarray, g_rows: np.ndarray, a,
                  scratch: str) -> None:
    """The queries ``full_idx`` searched against the whole gallery, into ``final``."""
    if not len(full_idx):
        return
    L = a.k + a.margin
    gal_pos = np.full(len(out), -1, np.int64)
    gal_pos[g_rows] = np.arange(len(g_rows))
    gv = gallery_matrix(out, g_rows, store.work_dir(KEPT_NAME, scratch))
    self_index = gal_pos[q_rows[full_idx]]
    qv = Rows(out, q_rows[full_idx])
    for hits in search(qv, gv, L, method=a.search, block=a.block, self_index=self_index):
        sel = full_idx[hits.start:hits.start + hits.scores.shape[0]]
        c, s = block_lists(hits, g_rows, L)
        final.cand[sel], final.score[sel] = c, s
        final.floor[sel] = floors(s, len(g_rows) - (self_index[hits.start:hits.start + len(sel)] >= 0))
    (store.work_dir(KEPT_NAME, scratch) / "gallery.npy").unlink(missing_ok=True)


def _write_changed(store, kept, final: _Final, qa: np.ndarray, old_top: np.ndarray, old_top_score: np.ndarray,
                   queries: list[str], cur: pa.Array, a, report) -> int:
    """Write the pools whose top K changed; how many."""
    K, stats, work = a.k, report.stats, kept.path
    top = final.cand[:, :K]
    differs = np.ones(len(top), bool)
    had = qa >= 0
    differs[had] = ((top[had] != old_top[qa[had]]).any(axis=1)
                    | (np.where(top[had] >= 0, quantise(final.score[had, :K]), 0) != np.where(top[had] >= 0, old_top_score[qa[had]], 0)).any(axis=1))
    rewrite = np.flatnonzero(differs)
    if len(rewrite):
        (work / WRITING).write_text(f'{{"run_id": "{stats.run_id}"}}')
        kept.push(work / WRITING)  # on object storage now: the next run knows these writes for its own
        q_ids = pa.array(queries, pa.string())
        with store.writer("pools") as w:
            for s in range(0, len(rewrite), a.block):
                sel = rewrite[s:s + a.block]
                t = top[sel]
                hits = Hits(0, np.where(t >= 0, final.score[sel, :K], -np.inf), np.maximum(t, 0))
                w.write(pool_table(hits, q_ids.take(pa.array(sel)), cur, report.embedder, stats.run_id))
    return len(rewrite)


def compact_if_superseded(store, live: int, share: float) -> list:
    """Compact the ``pools`` table when the rows re-ranked pools replaced pass ``share`` of its ``live`` rows.

    Every incremental run writes its re-ranked pools again (at 100k products, +1% new: 7,500 of
    10,000 pools, 3.7 million rows); the rows they replace stay in the parts until a compaction, so
    the table would grow every night and its readers would sort out the newest write of ever more
    rows. Returns ``[rows before, rows after]`` when it compacted, else ``[]``. The caller saves its
    state after this (its watermark of ``pools`` is the compacted table's).
    """
    if share <= 0 or not live:
        return []
    stored = store.stored_rows("pools")
    if stored - live <= share * live:
        return []
    store.compact("pools")
    return [stored, store.stored_rows("pools")]


def _search_new(vectors, q_rows: np.ndarray, n_rows: np.ndarray, L: int, a):
    """The best ``L`` of the new and changed gallery products ``n_rows`` for each query, and each query's floor among them."""
    gv = np.asarray(vectors[n_rows], np.float32)
    m = len(q_rows)
    c = np.full((m, L), -1, np.int64)
    s = np.full((m, L), -np.inf, np.float32)
    for hits in search(Rows(vectors, q_rows), gv, L, method=a.search, block=a.block):
        b = hits.scores.shape[0]
        bc, bs = block_lists(hits, n_rows, L)
        c[hits.start:hits.start + b], s[hits.start:hits.start + b] = bc, bs
    return c, s, floors(s, np.full(m, len(n_rows)))

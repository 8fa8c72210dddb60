"""Pools between full runs: the kept embedder, vectors and pools search only what changed.

A full run (the first, ``--full`` or the flow's ``full``, ``--fresh``, other pool settings, a kept
file missing, or a store grown past its fit) embeds every product and searches every query for its
top ``K + M`` (``M`` = ``pools.margin``; the table gets the top ``K``), and keeps in
``derived/pools/`` (a kept folder: on S3 too):

- ``vectors-<x>.npy`` / ``.usable.npy``: every product's vector (rows in product_id order);
- ``vectors-<x>.embedder.npz``: the fitted embedder (``pool_embedder.py``: arrays only);
- ``ids-<tag>.arrow``: the product ids of those rows;
- ``lists-<tag>.npz``: per query, its ``K + M`` best gallery rows and scores, and a *floor*: no gallery
  product outside the list scores above it (-inf: the list holds the whole gallery);

and saves its state last, through its :class:`~m5data.stages.StageRun` (``derived/state/pools.json``: the
watermarks it read, the settings' hash, those files, how many products the embedder was fitted on, and its
report).

A later run reads what changed since (``store.changed`` on products and captions, the products of
changed media rows). Nothing, with the same settings: **no work and no write**. Else only the new
and changed products are embedded, with the kept embedder; their vectors replace theirs in a copy
of the kept ones. Then, with ``C`` the changed and removed products and ``N`` the new and changed
ones now in the gallery:

- a kept query (not in ``C``) loses the entries of ``C`` from its list and gets the best ``K + M`` of
  ``N`` merged in; the floor rises to the best score left out. Every entry above the floor is exact
  (nothing outside scores higher), so while at least ``K`` entries stand above it the top ``K`` is
  the full search's; otherwise (a pool that lost more than ``M`` entries) the query is searched
  again against the whole gallery;
- a new or changed query is searched against the whole gallery.

Only the pools whose top ``K`` changed are written (``pools`` is replaced per query); pools of
products that are no longer queries are removed. With the same vectors the result is the full
search's (ties by product_id, scores to 6 decimals); a full rebuild fits the embedder again on the
grown store, so it differs by what the refit moves (docs/annotate.md gives the measured agreement).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ... import config as cfg
from ...stages import StageRun
from ..kernels import embed
from ..kernels.search import Hits, quantise, search
from . import pool_embedder
from .pool_inputs import REPORTED, restore
from .pool_lists import Lists, block_lists, floors, load_lists, merge, merged, save_lists
from .pool_vectors import NO_VECTOR, CatalogError, read_catalog, titles_as_captions

STAGE = "pools"
READS = ("products", "captions", "media")
FORMAT = 1  # the kept files' layout; another one means a full run
LAZY = ("vectors-*.npy", "vectors-*.npz", "ids-*", "lists-*", "*/block-*.npz")  # large kept files: fetched when used
KEPT_FILES = ("vectors-*", "ids-*", "lists-*")  # a complete run's kept files: those its state names stay
INPUTS_FILE = "derived/pools/inputs.json"  # pool_inputs' state of the last full run (its own up-to-date check)


def inputs(settings: cfg.Settings, split_version: str | None, code: str) -> tuple:
    """What, beside the tables, decides the pools: the run's fingerprint (the block size and refit share do not)."""
    from .pool_vectors import VERSION

    pool = {k: v for k, v in dataclasses.asdict(settings.pools).items() if k not in ("block", "refit_share", "compact_share")}
    ex = settings.extract
    return (FORMAT, code, VERSION, embed.IMAGE_DESCRIPTOR_VERSION, pool, settings.annotate.seed,
            ex.strip_brackets, ex.max_caption_chars, f"file:{ex.jieba_user_dict}" if ex.jieba_user_dict else "",
            split_version)


def run_config(settings: cfg.Settings, split_version: str | None, fp: str, up_to_date: bool = False) -> dict:
    """The ``config`` of a pools run's ``runs`` row."""
    sections = cfg.as_dict(settings)
    config = {"annotate": sections["annotate"], "pools": sections["pools"], "split_version": split_version,
              "fingerprint": fp}
    if up_to_date:
        config["up_to_date"] = True
    return config


def up_to_date(run: StageRun) -> dict | None:
    """The saved report when nothing pools read was written since its last complete run (and the last
    run was not a full one, whose own input state decides: it also sees a lost image file)."""
    store, state = run.store, run.state
    if state is None or "report" not in state or not run.unchanged():
        return None
    if store.read_bytes(INPUTS_FILE) is not None or not table_as_left(store, state):
        return None
    there = set(store.files("derived/pools"))
    return state if all(f"derived/pools/{f}" in there for f in state.get("files", {}).values()) else None


def table_as_left(store, state: dict) -> bool:
    """Whether the ``pools`` table is as the last complete run left it (no part removed, nothing written since)."""
    return state.get("pools_mark") == store.watermark("pools")


def _save_ids(path, ids: pa.Array) -> None:
    import pyarrow.feather as feather

    feather.write_feather(pa.table({"product_id": ids}), str(path), compression="uncompressed")


def _load_ids(path) -> pa.Array | None:
    import pyarrow.feather as feather

    try:
        return feather.read_table(str(path)).column("product_id").combine_chunks()
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowInvalid):
        return None


def save(run: StageRun, kept, config: dict, tag: str, ids: pa.Array, vectors: str, lists: Lists, fitted_on: int,
         report) -> None:
    """Keep the ids and lists of a complete run beside its vectors (``vectors-<x>``); complete the run (its
    ``runs`` row with ``config``, then its state), then drop the kept files no state names."""
    work = kept.path
    _save_ids(work / f"ids-{tag}.arrow", ids)
    save_lists(work / f"lists-{tag}.npz", lists)
    files = {"vectors": f"{vectors}.npy", "usable": f"{vectors}.usable.npy", "embedder": f"{vectors}.embedder.npz",
             "ids": f"ids-{tag}.arrow", "lists": f"lists-{tag}.npz"}
    s = report.stats
    saved = {k: getattr(report, k) for k in REPORTED}
    saved |= {"gaps": dict(report.gaps), "stats": {"n_in": s.n_in, "n_out": s.n_out, "failures": dict(s.failures)}}
    run.complete(config, files=files, fitted_on=fitted_on, report=saved, pools_mark=run.store.watermark("pools"))
    keep = set(files.values()) | {f"{vectors}.json"}
    for pattern in KEPT_FILES:
        for name in kept.names(pattern):
            if name not in keep:
                kept.remove(name)
    kept.remove(WRITING)


# ------------------------------------------------------------------ the incremental run
def changed_products(store, state: dict) -> set[str]:
    """Products with ``products``, ``captions`` or ``media`` rows written since ``state``."""
    since = state["watermarks"]
    ids: set[str] = set()
    for table in ("products", "captions"):
        ids.update(store.changed(table, int(since.get(table, 0))).column("product_id").to_pylist())
    media = store.changed("media", int(since.get("media", 0))).column("media_id").to_pylist()
    if media:
        con = store.connect(need=("media",), only=("media",))
        try:
            ids.update(r[0] for r in con.execute(
                "SELECT DISTINCT product_id FROM media WHERE media_id IN (SELECT unnest(?::VARCHAR[]))", [media]).fetchall()
                if r[0] is not None)
        finally:
            con.close()
    return ids


WRITING = "writing.json"  # in the kept folder while an incremental run writes pools (a killed one leaves it)


def why_full(run: StageRun, settings: cfg.Settings, kept) -> str | None:
    """Why this run cannot be incremental (None: it can)."""
    store, state = run.store, run.state
    if state is None:
        return "no earlier complete run"
    if state.get("inputs") != run.inputs or "files" not in state:
        return "settings changed"
    if not table_as_left(store, state) and not (kept.path / WRITING).is_file():  # not by a killed run of ours
        return "the pools table was written or compacted since the last complete run"
    total = store.count("products")
    if state.get("fitted_on", 0) < settings.pools.refit_share * total:
        return (f"fitted on {state.get('fitted_on', 0):,} products, below {settings.pools.refit_share:.0%} "
                f"of {total:,}")
    return None


def run(stage_run: StageRun, settings: cfg.Settings, kept, report, clock, progress=None) -> str | None:
    """Update the pools from what changed since the last complete run; None when done (the run completed),
    else why a full run is needed."""
    from .pool_rows import KEPT_NAME, Rows, drop_stale, gallery_matrix, pool_rows, sample_queries

    store, state = stage_run.store, stage_run.state
    a = settings.pools
    K, L = a.k, a.k + a.margin
    files = state["files"]
    paths = {k: kept.fetch(v) for k, v in files.items()}
    if any(p is None for p in paths.values()):
        return "kept files missing"
    fitted = pool_embedder.loads(paths["embedder"].read_bytes())
    old_ids, lists = _load_ids(paths["ids"]), load_lists(paths["lists"])
    old_vec = np.load(paths["vectors"], mmap_mode="r")
    old_usable = np.load(paths["usable"])
    if fitted is None or old_ids is None or lists is None or len(old_ids) != len(old_vec) != len(old_usable):
        return "kept files unreadable"
    stats = report.stats
    changed = changed_products(store, state)
    cur = store.read("products", columns=["product_id"]).column("product_id")
    cur = pc.take(cur, pc.sort_indices(cur)).combine_chunks().cast(pa.string())
    n = len(cur)
    if not n:
        return "no products"
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
    clock("changes")
    if len(d_rows) and n - len(d_rows) < a.refit_share * n:
        return f"{len(d_rows):,} of {n:,} products new or changed"
    if not len(d_rows) and not removed:  # rows written, none that pools read changed (a compaction, a repeat)
        restore(report, state["report"])
        report.up_to_date, report.changes = False, {"new": 0, "changed": 0, "unchanged": n}
        stage_run.complete(run_config(settings, None, report.fingerprint), "ok", files=files,
                           fitted_on=state["fitted_on"], report=state["report"], pools_mark=store.watermark("pools"))
        return None

    # the new and changed products, embedded with the kept embedder
    catalog = read_catalog(store, only=cur.take(pa.array(d_rows)).to_pylist()) if len(d_rows) else None
    if catalog is not None and len(catalog) != len(d_rows):
        return "products changed while read"
    dim = old_vec.shape[1]
    vec_d, usable_d = np.zeros((0, dim), np.float32), np.zeros(0, bool)
    if catalog is not None:
        try:
            report.from_titles = titles_as_captions(catalog, settings)
        except CatalogError as exc:
            from .pool_rows import PoolsError

            raise PoolsError(str(exc)) from None
        vec_d, report.gaps, usable_d = fitted.vectors(store, catalog, settings, progress)
        del catalog
    clock("embed")
    tag = stats.run_id
    work = kept.path
    name = f"vectors-i{tag}"
    out = np.lib.format.open_memmap(work / f"{name}.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    usable = np.zeros(n, bool)
    src = np.flatnonzero((pos >= 0) & ~np.isin(pos, d_rows))
    dst = pos[src]
    for s in range(0, len(src), 65_536):
        out[dst[s:s + 65_536]] = old_vec[src[s:s + 65_536]]
    usable[dst] = old_usable[src]
    out[d_rows] = vec_d
    usable[d_rows] = usable_d
    out.flush()
    np.save(work / f"{name}.usable.npy", usable)
    (work / f"{name}.embedder.npz").write_bytes(paths["embedder"].read_bytes())
    del old_vec
    if not usable.any():
        return "no product has a vector"
    if not usable.all():
        stats.fail(NO_VECTOR, int((~usable).sum()))
    clock("vectors")

    # queries, gallery and the kept lists in the new rows
    ids_list = cur.to_pylist()
    queries = sample_queries(ids_list, a.queries, settings.annotate.seed)
    row_of = {p: i for i, p in enumerate(ids_list)}
    q_rows = np.array([row_of[q] for q in queries], np.int64)
    keep_q = usable[q_rows] if len(q_rows) else np.zeros(0, bool)
    q_rows, queries = q_rows[keep_q], [q for q, k in zip(queries, keep_q) if k]
    del row_of, ids_list
    g_rows = np.flatnonzero(usable).astype(np.int64)
    gal_pos = np.full(n, -1, np.int64)
    gal_pos[g_rows] = np.arange(len(g_rows))
    nq = len(q_rows)
    report.n_queries, report.n_gallery = nq, len(g_rows)
    report.n_blocks = -(-nq // a.block)
    stats.n_in = nq

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
    final_c = np.full((nq, L), -1, np.int64)
    final_s = np.full((nq, L), -np.inf, np.float32)
    final_f = np.full(nq, -np.inf, np.float32)
    if len(m_idx):
        mc, ms, mf = cand[qa[m_idx], :L], score[qa[m_idx], :L], lists.floor[qa[m_idx]]
        n_rows = d_rows[usable[d_rows]]
        if len(n_rows):
            nc, ns, nf = _search_new(out, q_rows[m_idx], n_rows, L, a)
            mc, ms, mf = merge(mc, ms, mf, nc, ns, nf, L)
        else:  # nothing new in the gallery: the lists less what left them
            mc, ms = merged(mc, ms, mc[:, :0], ms[:, :0], L)
        final_c[m_idx], final_s[m_idx], final_f[m_idx] = mc, ms, mf
        # entries above the floor are exact: fewer than K of them (a pool that lost more than the margin) -> search again
        exact = (np.isfinite(ms) & (quantise(ms) > quantise(mf)[:, None])).sum(axis=1)
        kept_q[m_idx[np.isfinite(mf) & (exact < K)]] = False
    clock("merge")
    full_idx = np.flatnonzero(~kept_q)
    report.searched = len(full_idx)
    if len(full_idx):
        gv = gallery_matrix(out, g_rows, store.work_dir(KEPT_NAME, f"i{tag}"))
        self_index = gal_pos[q_rows[full_idx]]
        qv = Rows(out, q_rows[full_idx])
        for hits in search(qv, gv, L, method=a.search, block=a.block, self_index=self_index):
            sel = full_idx[hits.start:hits.start + hits.scores.shape[0]]
            c, s = block_lists(hits, g_rows, L)
            final_c[sel], final_s[sel] = c, s
            final_f[sel] = floors(s, len(g_rows) - (self_index[hits.start:hits.start + len(sel)] >= 0))
        (store.work_dir(KEPT_NAME, f"i{tag}") / "gallery.npy").unlink(missing_ok=True)
    clock("search")

    # the pools whose top K changed
    top = final_c[:, :K]
    differs = np.ones(nq, bool)
    had = qa >= 0
    differs[had] = ((top[had] != old_top[qa[had]]).any(axis=1)
                    | (np.where(top[had] >= 0, quantise(final_s[had, :K]), 0) != np.where(top[had] >= 0, old_top_score[qa[had]], 0)).any(axis=1))
    rewrite = np.flatnonzero(differs)
    report.rewritten = len(rewrite)
    if len(rewrite):
        (work / WRITING).write_text(f'{{"run_id": "{stats.run_id}"}}')
        kept.push(work / WRITING)  # on object storage now: the next run knows these writes for its own
        q_ids = pa.array(queries, pa.string())
        with store.writer("pools") as w:
            for s in range(0, len(rewrite), a.block):
                sel = rewrite[s:s + a.block]
                t = top[sel]
                hits = Hits(0, np.where(t >= 0, final_s[sel, :K], -np.inf), np.maximum(t, 0))
                w.write(pool_rows(hits, q_ids.take(pa.array(sel)), cur, report.embedder, stats.run_id))
    stats.n_out = nq
    clock("write")
    still = pc.is_in(old_ids.take(pa.array(lists.q)), value_set=pa.array(queries, pa.string()))
    if not pc.all(still).as_py() and len(lists.q):  # pools of products no longer queries: removed
        report.dropped_queries = drop_stale(store, queries, work)
    clock("stale")
    report.compacted = compact_if_superseded(store, int((top >= 0).sum()), a.compact_share)
    clock("compact")
    report.vectors_reused = not len(d_rows)
    report.fingerprint = f"i{tag}"
    stats.finish()
    save(stage_run, kept, run_config(settings, None, report.fingerprint), tag, cur, name,
         Lists(q_rows, final_c.astype(np.int32), final_s, final_f), state["fitted_on"], report)
    return None


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
    from .pool_rows import Rows

    gv = np.asarray(vectors[n_rows], np.float32)
    m = len(q_rows)
    c = np.full((m, L), -1, np.int64)
    s = np.full((m, L), -np.inf, np.float32)
    for hits in search(Rows(vectors, q_rows), gv, L, method=a.search, block=a.block):
        b = hits.scores.shape[0]
        bc, bs = block_lists(hits, n_rows, L)
        c[hits.start:hits.start + b], s[hits.start:hits.start + b] = bc, bs
    return c, s, floors(s, np.full(m, len(n_rows)))


__all__ = ["FORMAT", "LAZY", "Lists", "STAGE", "block_lists", "changed_products", "floors", "inputs",
           "run", "run_config", "save", "up_to_date", "why_full"]

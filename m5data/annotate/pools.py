"""Query candidate pools (``m5data annotate pools``): for each query, the top-K gallery products.

As the papers built them: each product is embedded by image and by text, the two blocks are
L2-normalised (after centring) and concatenated, and the gallery is ranked by cosine to the query;
the top ``K`` (default 500) are kept, never the query itself, ties broken by product_id.

Queries: the ``query*`` splits of ``--split-version`` when given (gallery: its ``gallery*`` splits,
or every product of the version outside ``train`` and the query splits); otherwise a seeded, stable
sample of the products (``annotate.pool_queries``: a share up to 1, a count above 1) with every
product in the gallery. A product is a query when ``sha1(seed:product_id)`` falls under the share,
so adding products never changes which old products are queries.

Resumable: vectors and one marker per finished block of queries live in
``derived/pools/<fingerprint>/``, where the fingerprint covers the inputs (products, captions,
image hashes) and the settings; a re-run with the same fingerprint skips finished blocks, and a
run with another fingerprint starts afresh. Pools of products that are no longer queries are
dropped at the end, so a re-run leaves the same table.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import config as cfg
from ..storage import StageStats, record_run
from . import embed
from .search import SEARCHES, exact_search, faiss_search, recall_against, search

Progress = Callable[[str, int, int], None]


class PoolsError(ValueError):
    """Pools cannot start (unknown split version, no products); one line for the user."""


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


def check_settings(s: cfg.Settings) -> None:
    """Reject bad values of the pools settings of ``[annotate]`` before any work."""
    a = s.annotate
    if a.pool_queries <= 0:
        raise cfg.ConfigError(f"config annotate.pool_queries must be > 0 (a share up to 1 or a count), got {a.pool_queries!r}")
    if a.pool_queries > 1 and not float(a.pool_queries).is_integer():
        raise cfg.ConfigError(f"config annotate.pool_queries above 1 is a count and must be whole, got {a.pool_queries!r}")
    for key in ("pool_k", "pool_block", "pool_text_dim"):
        if getattr(a, key) < 1:
            raise cfg.ConfigError(f"config annotate.{key} must be >= 1, got {getattr(a, key)!r}")
    if a.pool_search not in SEARCHES:
        raise cfg.ConfigError(f"config annotate.pool_search must be one of {', '.join(SEARCHES)}, got {a.pool_search!r}")
    if a.pool_image not in embed.IMAGE_EMBEDDERS:
        raise cfg.ConfigError(f"config annotate.pool_image must be one of {', '.join(embed.IMAGE_EMBEDDERS)}, got {a.pool_image!r}")
    if a.pool_text_weight < 0 or a.pool_image_weight < 0 or a.pool_text_weight + a.pool_image_weight == 0:
        raise cfg.ConfigError("config annotate.pool_text_weight and pool_image_weight must be >= 0, not both 0")


def _unit(product_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per product (the query sample)."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{product_id}".encode()).digest()[:8], "big") / 2**64


def sample_queries(product_ids: list[str], share_or_count: float, seed: int) -> list[str]:
    """A seeded, stable sample: ``share_or_count`` <= 1 is a share (1 = all), above 1 a count (the smallest draws)."""
    draws = sorted((_unit(p, seed), p) for p in product_ids)
    if share_or_count <= 1:
        chosen = [p for u, p in draws if u < share_or_count]
    else:
        chosen = [p for _, p in draws[:int(share_or_count)]]
    return sorted(chosen)


def read_products(store) -> list[dict]:
    """Every product with its title, its caption (``has_caption``: a captions row exists) and its
    main image's normalised copy (sorted by product_id)."""
    con = store.connect()
    try:
        return con.sql("""
            WITH img AS (
                SELECT s.product_id, d.blob, d.phash, d.sha256,
                       row_number() OVER (PARTITION BY s.product_id ORDER BY s.role <> 'main', s.position, s.media_id) AS rn
                FROM media s JOIN media d ON d.source_media_id = s.media_id
                WHERE s.kind = 'image' AND d.kind = 'image_norm' AND d.status = 'ok' AND d.blob IS NOT NULL)
            SELECT p.product_id, p.title, c.product_id IS NOT NULL AS has_caption,
                   coalesce(c.text, '') AS text, coalesce(c.tokens, []) AS tokens, img.blob, img.phash, img.sha256
            FROM products p LEFT JOIN captions c USING (product_id)
            LEFT JOIN img ON img.product_id = p.product_id AND img.rn = 1
            ORDER BY p.product_id""").to_arrow_table().to_pylist()
    finally:
        con.close()


def image_paths(store_root, blobs: list[str | None]) -> tuple[list[str | None], list[int]]:
    """The files of image blob paths read from ``media`` (None where there is none), and the
    positions whose path leads outside the store's blob areas (left as None: never opened)."""
    from ..storage.blobs import BlobPathError, resolve_blob

    paths: list[str | None] = []
    outside: list[int] = []
    for i, blob in enumerate(blobs):
        try:
            paths.append(str(resolve_blob(store_root, blob)) if blob else None)
        except BlobPathError:
            paths.append(None)
            outside.append(i)
    return paths, outside


def titles_as_captions(rows: list[dict], s: cfg.Settings) -> int:
    """Give each product without a captions row the caption extract would make of its title.

    Cleaned and tokenised by extract's own caption function with the ``[extract]`` settings, so
    the text block is the same before and after ``m5data extract`` (and so is the fingerprint: a
    later run resumes). Products with a captions row keep it, ``empty`` ones included. Returns how
    many products got a non-empty caption this way.
    """
    import os

    # one definition of a caption for both stages: a second cleaner here would drift from extract's
    from ..extract.text import caption_row

    ex = s.extract
    if ex.jieba_user_dict and not os.path.isfile(ex.jieba_user_dict):
        raise PoolsError(f"extract.jieba_user_dict: file not found: {ex.jieba_user_dict} "
                         "(pools tokenise the titles of products extract has not captioned)")
    n = 0
    for r in rows:
        if r["has_caption"] or not r["title"]:
            continue
        c = caption_row(r["product_id"], r["title"], strip_brackets=ex.strip_brackets,
                        max_chars=ex.max_caption_chars, user_dict=ex.jieba_user_dict)
        r["text"], r["tokens"] = c["text"], c["tokens"]
        n += bool(c["text"])
    return n


def split_members(store, version: str) -> tuple[list[str], list[str]]:
    """(queries, gallery) of a split version: its query splits and its gallery splits (or the rest but train)."""
    rows = store.read("splits", where=f"version = '{version.replace(chr(39), chr(39) * 2)}'").to_pylist()
    if not rows:
        raise PoolsError(f"no split version {version!r} in the store (build one with `m5data build-splits`)")
    queries = sorted({r["product_id"] for r in rows if r["split"].startswith("query")})
    gallery = {r["product_id"] for r in rows if r["split"].startswith("gallery")}
    if not gallery:
        train = {r["product_id"] for r in rows if r["split"] == "train"}
        gallery = {r["product_id"] for r in rows} - train - set(queries)
    if not queries:
        raise PoolsError(f"split version {version!r} has no query split")
    return queries, sorted(gallery)


def embedder_name(s: cfg.Settings) -> str:
    a = s.annotate
    text = f"st:{Path(a.pool_text_model).name}" if a.pool_text_model else f"tfidf-svd{a.pool_text_dim}"
    return f"{text}+{a.pool_image}" if a.pool_image != "none" else text


def embed_products(store, rows: list[dict], s: cfg.Settings, progress: Progress | None = None
                   ) -> tuple[np.ndarray, Counter, list[str | None]]:
    """Concatenated, L2-normalised (text, image) vectors, one row per product; gaps by reason.

    Returns the vectors, a Counter of gaps, and per product the reason it has no vector at all
    (no caption and no image) or None.
    """
    a = s.annotate
    gaps: Counter = Counter()
    texts = [r["text"] for r in rows]
    if a.pool_text_model:
        text = embed.sentence_transformer(texts, a.pool_text_model)
    else:
        text = embed.tfidf_svd([list(r["tokens"]) for r in rows], texts, dim=a.pool_text_dim, seed=a.seed)
    text = embed.l2_normalise(text, center=True)
    has_text = np.array([bool(t) for t in texts])
    text[~has_text] = 0.0
    gaps["zero text block: empty caption"] = int((~has_text).sum())
    blocks = [(text, a.pool_text_weight)]
    has_image = np.zeros(len(rows), bool)
    if a.pool_image == "descriptor":
        paths, outside = image_paths(store.root, [r["blob"] for r in rows])
        image, reasons = embed.image_descriptors(paths, [r["phash"] for r in rows], progress=progress)
        for i in outside:
            reasons[i] = "image blob path outside the store"
        has_image = np.array([r is None for r in reasons])
        for r in reasons:
            if r:
                gaps[f"zero image block: {r}"] += 1
        image = embed.l2_normalise(image, center=True)
        image[~has_image] = 0.0
        blocks.append((image, a.pool_image_weight))
    vec = np.concatenate([np.sqrt(w) * b for b, w in blocks], axis=1)
    vec = embed.l2_normalise(vec)
    missing = [None if (has_text[i] or has_image[i]) else "no caption and no image" for i in range(len(rows))]
    return vec, +gaps, missing


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: build the pools; see :func:`build_pools` for the arguments."""
    return build_pools(store, settings, **kwargs).stats


def build_pools(store, settings: cfg.Settings, *, split_version: str | None = None, fresh: bool = False,
                ann_check: int = 0, progress: Progress | None = None) -> PoolsReport:
    """Embed the products, search each query's top K and write the ``pools`` table.

    Args:
        split_version: take queries (and gallery) from this split version instead of a sample.
        fresh: ignore finished blocks of an interrupted run with the same inputs.
        ann_check: with ``annotate.pool_search`` = exact, also search this many queries with
            faiss HNSW and report its recall against exact (0 = no check); with a faiss search,
            the faiss result of the first block is compared with exact search.
        progress: ``progress(step, done, total)``.
    """
    check_settings(settings)
    a = settings.annotate
    stats = StageStats("annotate-pools")
    report = PoolsReport(stats, embedder=embedder_name(settings))
    rows = read_products(store)
    if not rows:
        raise PoolsError(f"no products in the store at {store.root}")
    report.n_products = len(rows)
    report.from_titles = titles_as_captions(rows, settings)
    vec, report.gaps, missing = embed_products(store, rows, settings, progress)
    ids = [r["product_id"] for r in rows]
    usable = {ids[i] for i in range(len(ids)) if missing[i] is None}
    if not usable:  # an empty result would look like a finished run
        raise PoolsError(f"none of the {len(rows):,} products has a caption, a title or a normalised image to "
                         "embed: run `m5data extract` first (captions and normalised images), after a crawl "
                         "that found titles or images")
    for reason in missing:
        if reason:
            stats.fail(reason)
    if split_version:
        queries, gallery_ids = split_members(store, split_version)
    else:
        queries = sample_queries(ids, a.pool_queries, a.seed)
        gallery_ids = ids
    queries = [q for q in queries if q in usable]
    gallery_ids = sorted(g for g in gallery_ids if g in usable)
    row_of = {p: i for i, p in enumerate(ids)}
    g_rows = np.array([row_of[g] for g in gallery_ids], np.int64)
    q_rows = np.array([row_of[q] for q in queries], np.int64)
    gal_pos = {g: i for i, g in enumerate(gallery_ids)}
    self_index = np.array([gal_pos.get(q, -1) for q in queries], np.int64)
    report.n_queries, report.n_gallery = len(queries), len(gallery_ids)
    stats.n_in = len(queries)

    fp = embed.fingerprint(
        "pools-v1", embed.IMAGE_DESCRIPTOR_VERSION, report.embedder, a.pool_text_weight, a.pool_image_weight,
        a.pool_k, a.pool_search, a.pool_block, a.seed, queries, gallery_ids,
        [(r["product_id"], r["text"], r["sha256"], r["phash"]) for r in rows])
    report.fingerprint = fp
    work = store.derived_dir("pools")
    for old in work.iterdir():  # another fingerprint's checkpoints: inputs or settings changed
        if old.is_dir() and old.name != fp:
            shutil.rmtree(old, ignore_errors=True)
    ckpt = work / fp
    if fresh:
        shutil.rmtree(ckpt, ignore_errors=True)
    ckpt.mkdir(parents=True, exist_ok=True)
    done = {int(p.stem.split("-")[1]) for p in ckpt.glob("block-*.done")}

    qv, gv = vec[q_rows], vec[g_rows]
    nblocks = -(-len(queries) // a.pool_block)
    report.n_blocks = nblocks
    report.n_resumed = sum(1 for b in range(nblocks) if b * a.pool_block in done)
    finished = report.n_resumed
    for hits in search(qv, gv, a.pool_k, method=a.pool_search, block=a.pool_block, self_index=self_index,
                       skip=lambda start: start in done):
        out = _pool_rows(hits, queries, gallery_ids, report.embedder, stats.run_id)
        store.write("pools", pa.table(out))
        stats.n_out += hits.scores.shape[0]
        (ckpt / f"block-{hits.start}.done").write_text(json.dumps({"run_id": stats.run_id, "rows": len(out["rank"])}))
        finished += 1
        if progress:
            progress("search", finished, nblocks)
    stats.n_out += sum(min(a.pool_block, len(queries) - b * a.pool_block) for b in range(nblocks)
                       if b * a.pool_block in done)
    report.dropped_queries = _drop_stale(store, set(queries))
    if ann_check and len(queries):
        report.ann_recall = ann_recall(qv, gv, a.pool_k, self_index, a.pool_search, ann_check)
    record_run(store, stats.finish(), {"annotate": cfg.as_dict(settings)["annotate"],
                                       "split_version": split_version, "fingerprint": fp})
    return report


def _pool_rows(hits, queries, gallery_ids, embedder_label: str, run_id: str) -> dict:
    b, k = hits.scores.shape
    valid = np.isfinite(hits.scores)
    qi = np.repeat(np.arange(b) + hits.start, k).reshape(b, k)[valid]
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), (b, 1))[valid]
    cand = hits.index[valid]
    return {
        "query_id": [queries[i] for i in qi], "candidate_id": [gallery_ids[j] for j in cand],
        "rank": ranks.tolist(), "score": hits.scores[valid].astype(np.float64).round(6).tolist(),
        "embedder": [embedder_label] * len(qi), "run_id": [run_id] * len(qi),
    }


def _drop_stale(store, queries: set[str]) -> int:
    """Remove the pools of products that are no longer queries; returns how many queries went."""
    con = store.connect()
    try:
        present = [r[0] for r in con.execute("SELECT DISTINCT query_id FROM pools").fetchall()]
        stale = [q for q in present if q not in queries]
        if not stale:
            return 0
        con.register("keep", pa.table({"query_id": sorted(queries)}))
        kept = con.sql("SELECT pools.* FROM pools JOIN keep USING (query_id)").to_arrow_table()
    finally:
        con.close()
    store.replace("pools", kept)
    return len(stale)


def ann_recall(qv: np.ndarray, gv: np.ndarray, k: int, self_index: np.ndarray, method: str, n: int) -> float:
    """Recall of an approximate search against exact on the first ``n`` queries (faiss HNSW when exact is the method)."""
    n = min(n, len(qv))
    q, own = qv[:n], self_index[:n]
    exact = np.concatenate([h.index for h in exact_search(q, gv, k, self_index=own)])
    kind = "hnsw" if method in ("exact", "faiss-hnsw") else "flat"
    approx = np.concatenate([h.index for h in faiss_search(q, gv, k, kind=kind, self_index=own)])
    return recall_against(exact, approx)


# ------------------------------------------------------------------------------------------- scores
def score_pools(store, truth_dir: str | Path, ks: tuple[int, ...] = (10, 50, 500)) -> dict:
    """Recall of true instance matches within each query's top k (demo truth ``instance_id``).

    Returns ``{"queries": n with at least one true match in the gallery, "pairs": true pairs,
    "recall": {k: share of true pairs ranked <= k}}``. A true pair is (query, other listing of the
    same instance) where the other listing had a vector (it was in the gallery).
    """
    import pyarrow.parquet as pq

    d = Path(truth_dir)
    path = d / "truth" / "products.parquet" if (d / "truth").is_dir() else d / "products.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no truth products table at {path}")
    inst = dict(zip(*pq.read_table(path, columns=["product_id", "instance_id"]).to_pydict().values()))
    con = store.connect()
    try:
        pools = con.sql("SELECT query_id, candidate_id, rank FROM pools").to_arrow_table().to_pydict()
    finally:
        con.close()
    members: dict[str, list[str]] = {}
    for p, i in inst.items():
        members.setdefault(i, []).append(p)
    found: dict[str, dict[str, int]] = {}
    for q, c, r in zip(pools["query_id"], pools["candidate_id"], pools["rank"]):
        found.setdefault(q, {})[c] = r
    n_pairs, n_queries = 0, 0
    hits = Counter()
    for q, cands in found.items():
        if q not in inst:
            continue
        true = [p for p in members[inst[q]] if p != q]
        if not true:
            continue
        n_queries += 1
        n_pairs += len(true)
        for p in true:
            r = cands.get(p)
            for k in ks:
                if r is not None and r <= k:
                    hits[k] += 1
    return {"queries": n_queries, "pairs": n_pairs, "pool_queries": len(found),
            "recall": {k: (hits[k] / n_pairs if n_pairs else float("nan")) for k in ks}}

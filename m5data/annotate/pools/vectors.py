"""The product vectors of the candidate pools: read once per input state, kept on disk, reused.

The products are read as Arrow columns (never one Python dict per product), their inputs hashed
in batches (the *vectors key*, :func:`vectors_key`: product ids, caption texts, image hashes, whether the image
file is there, the embedder settings), and the vectors written in chunks into a float32 memory-map
``derived/pools/vectors-<key>.npy``, published by rename once complete with its gaps in
``vectors-<key>.json``. A later run with the same inputs maps that file instead of
embedding again; a run with other inputs replaces it.

Up to :data:`IN_MEMORY_ROWS` products the vectors are computed in memory exactly as before this
module existed (one TF-IDF + SVD fit, one centring), so small stores give the same vectors bit for
bit (with ``pools.svd`` randomized at the same ``pools.svd_iter``). Above it the work goes in chunks of :data:`CHUNK` rows: the TF-IDF vocabulary and the SVD are
fitted on a seeded sample of ``pools.fit_sample`` captions and every caption is projected
with them; the image descriptors are computed chunk by chunk; centring and normalising are two
passes over the memory-map. Memory is then a chunk of products plus the sample's sparse matrix,
not the store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ... import config as cfg
from ...errors import UserError
from ...storage.files import KeptFolder
from ...storage.main_image import image_preference
from ..kernels import embed
from .embedder import Embedder, dumps, loads, nonzero_mean
from .image_vectors import VECTORS, ImageModel, catalog_sql, image_dim, image_of

Progress = Callable[[str, int, int], None]

VERSION = "pools-vectors-v2"  # bump when the vectors of the same inputs change
IN_MEMORY_ROWS = 65_536  # up to this many products: the in-memory path (bit-identical to earlier releases at 7 SVD iterations)
CHUNK = 32_768  # products per chunk of the streamed path (memory: a chunk's tokens, images and vectors)
NO_VECTOR = "no caption and no image"


class CatalogError(UserError, ValueError):
    """The products cannot be embedded (a setting points at a missing file); one line for the user."""


@dataclass
class Catalog:
    """Every product (sorted by product_id) as Arrow columns: product_id, title, has_caption, text,
    tokens, blob, phash, sha256; with an image model, its main image's vector row too (vec_media,
    vec_mark: :func:`.image_vectors.catalog_sql`)."""

    table: pa.Table
    from_titles: int = 0  # products without a captions row whose raw title was captioned here
    image_model: ImageModel | None = None  # pools.image = vectors: the model whose vectors make the image block

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str, start: int = 0, stop: int | None = None) -> list:
        stop = len(self) if stop is None else stop
        return self.table.column(name).slice(start, stop - start).to_pylist()


@dataclass
class Vectors:
    """The (n, d) float32 vectors (a read-only memory-map when cached), gaps by reason, and per product
    whether it has a vector at all."""

    matrix: np.ndarray
    gaps: Counter
    usable: np.ndarray  # bool per product
    fingerprint: str
    reused: bool = False  # read from the cache instead of embedded
    embedder: Embedder | None = None  # what was fitted (kept beside the vectors: an incremental run embeds with it)


CATALOG_SQL = f"""
    WITH img AS (
        SELECT s.product_id, d.blob, d.phash, d.sha256,
               row_number() OVER (PARTITION BY s.product_id ORDER BY {image_preference('s')}) AS rn
        FROM media s JOIN media d ON d.source_media_id = s.media_id
        WHERE s.kind = 'image' AND d.kind = 'image_norm' AND d.status = 'ok' AND d.blob IS NOT NULL)
    SELECT p.product_id, p.title, c.product_id IS NOT NULL AS has_caption,
           coalesce(c.text, '') AS text, coalesce(c.tokens, []) AS tokens, img.blob, img.phash, img.sha256
    FROM products p LEFT JOIN captions c USING (product_id)
    LEFT JOIN img ON img.product_id = p.product_id AND img.rn = 1
    ORDER BY p.product_id"""


def read_catalog(store, only: list[str] | None = None, image_model: ImageModel | None = None) -> Catalog:
    """Every product (``only``: just these product ids) with its title, its caption (``has_caption``: a
    captions row exists) and its main image's normalised copy, as Arrow columns sorted by product_id;
    with ``image_model`` (``image_vectors.resolve``), also its main image's row of that model."""
    # past a few MB of parts, a database of its own (not a cursor of the process's read database): this read
    # of every product gives its memory back when it closes; through a cursor the pools stage's peak RSS at
    # 100k products was 1.32 GiB against 1.09 (bench_scale.py, 2026-11-29). Store.connect_whole.
    con = store.connect_whole(("products", "captions", "media") + (("image_vectors",) if image_model else ()))
    try:
        sql = CATALOG_SQL
        if only is not None:
            con.execute("CREATE TEMP TABLE wanted AS SELECT DISTINCT unnest(?::VARCHAR[]) AS product_id", [list(only)])
            sql = (sql.replace("WHERE s.kind = 'image'", "WHERE s.product_id IN (SELECT product_id FROM wanted) AND s.kind = 'image'")
                   .replace("\n    ORDER BY p.product_id", "\n    WHERE p.product_id IN (SELECT product_id FROM wanted)\n    ORDER BY p.product_id"))
        if image_model is not None:
            vec = catalog_sql(image_model.name, "" if only is None else "AND product_id IN (SELECT product_id FROM wanted)")
            sql = (sql.replace("d.blob IS NOT NULL)\n", f"d.blob IS NOT NULL),\n    vec AS ({vec})\n")
                   .replace("img.sha256\n", "img.sha256, vec.vec_media, vec.vec_mark\n")
                   .replace("LEFT JOIN img ON", "LEFT JOIN vec ON vec.product_id = p.product_id\n    LEFT JOIN img ON"))
        return Catalog(con.sql(sql).to_arrow_table(), image_model=image_model)
    finally:
        con.close()


def titles_as_captions(catalog: Catalog, s: cfg.Settings) -> int:
    """Give each product without a captions row the caption extract would make of its title.

    Cleaned and tokenised by extract's own caption function with the ``[extract]`` settings, so
    the text block is the same before and after ``m5data extract`` (and so is the vectors key: a
    later run resumes). Products with a captions row keep it, ``empty`` ones included. Returns how
    many products got a non-empty caption this way (also kept in ``catalog.from_titles``).
    """
    import pyarrow.compute as pc

    # one definition of a caption for both stages: a second cleaner here would drift from extract's
    from ...extract.text import caption_row

    t = catalog.table
    todo = pc.indices_nonzero(pc.and_(pc.invert(t.column("has_caption")),
                                      pc.greater(pc.utf8_length(pc.fill_null(t.column("title"), "")), 0))).to_pylist()
    if not todo:
        return 0
    ex = s.text  # what a caption is: [text], extract's too
    if ex.jieba_user_dict and not os.path.isfile(ex.jieba_user_dict):
        raise CatalogError(f"text.jieba_user_dict: file not found: {ex.jieba_user_dict} "
                           "(pools tokenise the titles of products extract has not captioned)")
    text, tokens = t.column("text").to_pylist(), t.column("tokens").to_pylist()
    ids, titles = t.column("product_id"), t.column("title")
    n = 0
    for i in todo:
        c = caption_row(ids[i].as_py(), titles[i].as_py(), strip_brackets=ex.strip_brackets,
                        max_chars=ex.max_caption_chars, user_dict=ex.jieba_user_dict)
        text[i], tokens[i] = c["text"], c["tokens"]
        n += bool(c["text"])
    t = t.set_column(t.schema.get_field_index("text"), "text", pa.array(text, pa.string()))
    t = t.set_column(t.schema.get_field_index("tokens"), "tokens", pa.array(tokens, pa.list_(pa.string())))
    catalog.table, catalog.from_titles = t, n
    return n


def embedder_name(s: cfg.Settings, image_model: ImageModel | None = None) -> str:
    """The pools rows' ``embedder``: the text block's and the image block's (with the vectors' model)."""
    a = s.pools
    text = f"st:{Path(a.text_model).name}" if a.text_model else f"tfidf-svd{a.text_dim}"
    if a.image == VECTORS and image_model is not None:
        return f"{text}+vectors:{image_model.name}"
    return f"{text}+{a.image}" if a.image != "none" else text


def vectors_key(store, catalog: Catalog, s: cfg.Settings) -> str:
    """Digest of everything the vectors depend on, hashed in batches (never one string of the store): the
    name of their files ``vectors-<key>.*`` (not the run's fingerprint, ``stage_run.fingerprint``)."""
    a = s.pools
    digest = hashlib.sha256()
    digest.update(repr((VERSION, embed.IMAGE_DESCRIPTOR_VERSION, embedder_name(s), a.text_weight,
                        a.image_weight, a.text_dim, a.text_model, s.annotate.seed, a.svd, a.svd_iter,
                        a.fit_sample if len(catalog) > IN_MEMORY_ROWS else 0)).encode())
    vectors = a.image == VECTORS and catalog.image_model is not None
    if vectors:  # the model's identity; per product, its vector row's media id and when it was made (or its error)
        digest.update(repr(("image_vectors", catalog.image_model.name, catalog.image_model.dim)).encode())
    # a store on object storage writes a blob once and never removes it in place: a named one is there
    root = None if (folder := store.local_root()) is None else str(folder)
    for start in range(0, len(catalog), CHUNK):
        stop = min(start + CHUNK, len(catalog))
        blobs = catalog.column("blob", start, stop)
        # a blob lost since the last run must not be served from the cache as if it were read
        there = [bool(b) and (root is None or os.path.exists(os.path.join(root, b))) for b in blobs]
        cols = [catalog.column("product_id", start, stop), catalog.column("text", start, stop),
                catalog.column("sha256", start, stop), catalog.column("phash", start, stop), there]
        if vectors:
            cols += [catalog.column("vec_media", start, stop), catalog.column("vec_mark", start, stop)]
        for row in zip(*cols):
            digest.update(repr(row).encode())
    return digest.hexdigest()[:16]


def product_vectors(store, catalog: Catalog, s: cfg.Settings, progress: Progress | None = None,
                    kept: KeptFolder | None = None) -> Vectors:
    """The catalog's vectors: mapped from ``kept`` (the pools' kept folder ``derived/pools``, whose
    ``vectors-*.npy`` are fetched only when used; by default ``store.work_dir("pools")``, that same
    folder on a folder store) when these inputs were embedded before, else embedded (in memory or in
    chunks, by size) and published there."""
    fp = vectors_key(store, catalog, s)
    kept = KeptFolder(store.work_dir("pools")) if kept is None else kept
    work = kept.path
    path, meta_path = work / f"vectors-{fp}.npy", work / f"vectors-{fp}.json"
    embedder_name = f"vectors-{fp}.embedder.npz"
    if meta_path.is_file() and kept.fetch(path.name) and kept.fetch(f"vectors-{fp}.usable.npy") and kept.fetch(embedder_name):
        meta = json.loads(meta_path.read_text())
        matrix = np.load(path, mmap_mode="c")  # copy-on-write: torch may wrap it, nothing writes to it
        usable = np.load(work / f"vectors-{fp}.usable.npy")
        fitted = loads((work / embedder_name).read_bytes())
        if matrix.shape[0] == len(catalog) == len(usable) and fitted is not None:
            return Vectors(matrix, Counter(meta["gaps"]), usable, fp, reused=True, embedder=fitted)
    for old in kept.names("vectors-*"):  # another input state's vectors: never read again
        kept.remove(old)
    tmp = work / f".tmp-vectors-{fp}-{os.getpid()}.npy"
    try:
        if len(catalog) <= IN_MEMORY_ROWS:
            vec, gaps, usable, fitted = _embed_in_memory(store, catalog, s, progress)
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=vec.shape)
            out[:] = vec
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(catalog), _dim(s, catalog)))
            gaps, usable, fitted = _embed_chunked(store, catalog, s, out, progress)
        out.flush()
        del out
        np.save(work / f"vectors-{fp}.usable.npy", usable)
        (work / embedder_name).write_bytes(dumps(fitted))
        meta_path.write_text(json.dumps({"gaps": dict(gaps), "rows": len(catalog)}))
        os.replace(tmp, path)  # last: a vectors file is there only when it is complete
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Vectors(np.load(path, mmap_mode="c"), gaps, usable, fp, embedder=fitted)


def _dim(s: cfg.Settings, catalog: Catalog) -> int:
    """Width of the concatenated vector: the text block's, plus the image block's."""
    a = s.pools
    text = _st_dim(a.text_model) if a.text_model else a.text_dim
    return text + image_dim(s, catalog)


def _st_dim(model_path: str) -> int:
    """Output width of a local sentence-transformers model (read from its config, no model load)."""
    for name in ("config_sentence_transformers.json", "config.json"):
        f = Path(model_path) / name
        if f.is_file():
            conf = json.loads(f.read_text())
            if "hidden_size" in conf:
                return int(conf["hidden_size"])
    return 384


def _embed_in_memory(store, catalog: Catalog, s: cfg.Settings, progress: Progress | None
                     ) -> tuple[np.ndarray, Counter, np.ndarray, Embedder]:
    """Concatenated, L2-normalised (text, image) vectors of a small catalog, all in memory, and the fitted embedder."""
    a = s.pools
    gaps: Counter = Counter()
    texts = catalog.column("text")
    fitted: list = []
    if a.text_model:
        text = embed.sentence_transformer(texts, a.text_model)
    else:
        text = embed.tfidf_svd([list(t) for t in catalog.column("tokens")], texts, dim=a.text_dim, seed=s.annotate.seed,
                               keep=fitted, n_iter=a.svd_iter, svd=a.svd)
    embedder = Embedder("st" if a.text_model else "tfidf", text.shape[1], fitted[0] if fitted else None,
                        [nonzero_mean(text)], a.image != "none", *_image_kind(catalog, s))
    text = embed.l2_normalise(text, center=True)
    has_text = np.array([bool(t) for t in texts], bool)
    text[~has_text] = 0.0
    gaps["zero text block: empty caption"] = int((~has_text).sum())
    blocks = [(text, a.text_weight)]
    has_image = np.zeros(len(catalog), bool)
    if a.image != "none":
        image, has_image = image_of(store, catalog, s, 0, len(catalog), gaps, progress)
        embedder.means.append(nonzero_mean(image))
        image = embed.l2_normalise(image, center=True)
        image[~has_image] = 0.0
        blocks.append((image, a.image_weight))
    vec = np.concatenate([np.sqrt(w) * b for b, w in blocks], axis=1)
    return embed.l2_normalise(vec), +gaps, has_text | has_image, embedder


def _embed_chunked(store, catalog: Catalog, s: cfg.Settings, out: np.ndarray, progress: Progress | None
                   ) -> tuple[Counter, np.ndarray, Embedder]:
    """Fill ``out`` (a memory-map) chunk by chunk: raw blocks first, then centre and normalise in place."""
    a = s.pools
    n = len(catalog)
    gaps: Counter = Counter()
    dt = out.shape[1] - image_dim(s, catalog)
    has_text = np.zeros(n, bool)
    has_image = np.zeros(n, bool)
    text_model = None if a.text_model else embed.TfidfSvd.fit_sample(
        catalog.table.column("tokens"), catalog.table.column("text"), dim=a.text_dim, seed=s.annotate.seed,
        sample=a.fit_sample, n_iter=a.svd_iter, svd=a.svd)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        texts = catalog.column("text", start, stop)
        has_text[start:stop] = [bool(t) for t in texts]
        if text_model is None:
            out[start:stop, :dt] = embed.sentence_transformer(texts, a.text_model)
        else:
            out[start:stop, :dt] = text_model.transform(catalog.column("tokens", start, stop), texts)
        if a.image != "none":
            out[start:stop, dt:], has_image[start:stop] = image_of(store, catalog, s, start, stop, gaps, None)
        if progress:
            progress("embed", stop, n)
    gaps["zero text block: empty caption"] = int((~has_text).sum())
    blocks = [(slice(0, dt), has_text, a.text_weight)]
    if a.image != "none":
        blocks.append((slice(dt, out.shape[1]), has_image, a.image_weight))
    means = [_mean_of_nonzero(out, cols) for cols, _, _ in blocks]
    embedder = Embedder("st" if a.text_model else "tfidf", dt, text_model, means, a.image != "none", *_image_kind(catalog, s))
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        parts = []
        for (cols, has, w), mean in zip(blocks, means):
            x = np.array(out[start:stop, cols])
            nonzero = np.abs(x).sum(axis=1) > 0
            x[nonzero] -= mean
            x = embed.l2_normalise(x)
            x[~has[start:stop]] = 0.0
            parts.append(np.sqrt(w) * x)
        out[start:stop] = embed.l2_normalise(np.concatenate(parts, axis=1))
    return +gaps, has_text | has_image, embedder


def _image_kind(catalog: Catalog, s: cfg.Settings) -> tuple[str, str]:
    """What the kept embedder records of its image block: its kind and (vectors) the model."""
    m = catalog.image_model if s.pools.image == VECTORS else None
    return s.pools.image, m.name if m is not None else ""


def _mean_of_nonzero(out: np.ndarray, cols: slice) -> np.ndarray:
    """Mean of the non-zero rows of a column block of a memory-map (float64 sums, chunk by chunk)."""
    total = None
    count = 0
    for start in range(0, len(out), CHUNK):
        x = np.asarray(out[start:start + CHUNK, cols], np.float32)
        nonzero = np.abs(x).sum(axis=1) > 0
        part = x[nonzero].sum(axis=0, dtype=np.float64)
        total = part if total is None else total + part
        count += int(nonzero.sum())
    if count <= 1:
        return np.zeros(cols.stop - cols.start, np.float32)
    return (total / count).astype(np.float32)

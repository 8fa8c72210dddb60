"""What the dedup job reads, as arrays: products in Arrow batches, specs as integer codes.

Nothing here holds a Python object per product: product ids stay an Arrow array, exact keys become
integer codes (Arrow's hash of the strings, no collisions), titles are normalised one batch at a time
and handed to a callback (the MinHash index) and then dropped, and specs become ``(property code,
value code)`` pairs in CSR form. Spec strings are normalised and classified once per *distinct*
property and value (a catalogue repeats 黑色 a million times), in Python, then joined back in DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...storage.main_image import main_image_mask, main_image_sql
from . import near
from .phash import parse_phash
from .values import brand_spellings, noisy_value, norm_value

BATCH = 100_000  # products per Arrow batch

# products sorted by product_id (binary order: the order of Python's str comparison), main image joined
_PRODUCTS = f"""
    SELECT p.product_id, p.merchant_id, p.title, m.sha256, m.phash
    FROM products p
    LEFT JOIN ({main_image_sql("product_id, sha256, phash", "{only}")}) m ON m.product_id = p.product_id
    {{where}}
    ORDER BY p.product_id"""
COLUMNS = ("product_id", "merchant_id", "title", "sha256", "phash")  # what _PRODUCTS gives
ONLY = "dedup_only"  # a registered table of the product ids to read (an incremental run's changed ones)


def _only(con, only: pa.Array | None, column: str = "product_id") -> tuple[str, str]:
    """``(AND ..., WHERE ...)`` clauses that keep the rows of products ``only`` (none: every product)."""
    if only is None:
        return "", ""
    con.register(ONLY, pa.table({"product_id": only}))
    clause = f"{column} IN (SELECT product_id FROM {ONLY})"
    return f"AND {clause}", f"WHERE p.{clause}"


@dataclass
class Inputs:
    """What dedup reads, one entry per product, products sorted by product_id (row numbers = that order)."""

    ids: pa.Array  # product_id strings
    blob: np.ndarray  # int64 code of the main image's sha256; -1: none
    title_key: np.ndarray  # int64 code of merchant + normalised title; -1: empty title or unknown merchant
    has_title: np.ndarray  # bool: the normalised title is not empty
    phash: np.ndarray  # uint64
    has_phash: np.ndarray  # bool: a parseable pHash
    phash_given: np.ndarray  # bool: a pHash string at all (its absence is a reason)
    n_spec_rows: np.ndarray  # int64: spec rows with a property and value, noisy ones included
    specs: Specs | None = None
    sha: pa.Array | None = None  # the main image's sha256 (null: none): what ``blob`` codes
    title_text: pa.Array | None = None  # merchant + normalised title (null: -1): what ``title_key`` codes
    sha_hash: np.ndarray | None = None  # uint64 hash of ``sha`` per row (0: null; kept: :func:`hash_codes`)
    title_hash: np.ndarray | None = None  # ... and of ``title_text``
    spec_chosen: np.ndarray | None = None  # bool per spec entry: it made its row's block keys (set by the spec rule)
    spec_chosen_prev: np.ndarray | None = None  # ... as the last run kept it (False: a row it did not have)
    spec_moved: np.ndarray | None = None  # bool per row: its block keys moved since the last run (set by the spec rule)
    spec_touching: np.ndarray | None = None  # rows the spec rule searched in an incremental run
    spec_kept_ok: np.ndarray | None = None  # which kept spec pairs passed the chance test again
    spec_vetoed: tuple | None = None  # (left, right): spec pairs likely by chance (re-tested by the next run)
    kept_files: list | None = None  # an incremental read's kept files: (store path, rows), base first
    fresh: np.ndarray | None = None  # ... and the rows it read from the store (new and changed products)
    written: pa.Table | None = None  # ... and the dedup table's rows the last run wrote (nulls: rows read now)
    gone: bool = False  # ... and whether a product the kept files hold is no longer in the store
    prev: tuple | None = None  # ... and the last run's ids (the kept files') with each one's row here (-1: gone)

    def exact_keys(self) -> tuple[tuple[str, np.ndarray], ...]:
        """The exact rules and the key codes each pairs equal rows by (-1: no key), strongest first: the one
        list of exact keys, which the rules search (pairs) and an incremental run's bucket cap
        watches (kept_pairs.over_cap)."""
        return ("exact_image", self.blob), ("exact_title", self.title_key)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Specs:
    """Comparable spec values per product in CSR form: row ``i``'s are ``[offsets[i], offsets[i+1])``,
    sorted by property code then value code, each ``(property, value)`` once."""

    offsets: np.ndarray  # int64, n + 1
    keys: np.ndarray  # int32 property codes
    values: np.ndarray  # int32 value codes
    brand_key: int  # the brand property's code; -1 when no row names it
    brand_offsets: np.ndarray  # int64, n + 1: each row's brand spellings ...
    brands: np.ndarray  # int32 ... as sorted codes (see values.brand_spellings)
    names: tuple = ((), (), ())  # the names of the property, value and spelling codes (code = rank: sorted)


def _codes(chunks: list[pa.Array]) -> np.ndarray:
    """An int64 code per string (equal strings, equal codes: the order of first occurrence); null -> -1.
    One hash pass (a dictionary encoding), not a unique and a lookup."""
    arr = pa.chunked_array(chunks, type=pa.string()).combine_chunks()
    return pc.fill_null(arr.dictionary_encode().indices, -1).to_numpy().astype(np.int64)


def string_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A uint64 hash of each string of ``arr`` (:func:`.near_jit.string_hashes`: 0 for a null, never 0
    otherwise), from its Arrow buffers (one compiled pass, no Python string)."""
    from .near_jit import string_hashes as hashes

    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    out = np.zeros(len(arr), dtype=np.uint64)
    if not len(arr):
        return out
    wide = pa.types.is_large_string(arr.type)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64 if wide else np.int32, count=len(arr) + 1,
                            offset=arr.offset * (8 if wide else 4))
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else np.zeros(1, np.uint8)
    hashes(offsets, data, arr.is_valid().to_numpy(zero_copy_only=False), out)
    return out


def hash_codes(strings: pa.Array, hashes: np.ndarray) -> np.ndarray:
    """:func:`_codes` of ``strings`` (codes by first occurrence, -1 for a null) from their hashes
    (:func:`string_hashes`, kept with the inputs: an incremental run hashes and codes no kept string
    again, where a dictionary encoding of 100k sha256 and title strings cost 0.025-0.12 CPU s a run).
    Checked: each row whose hash an earlier row has holds that row's string; a collision (about one
    run in 10^9 at 100k products) codes the strings instead."""
    from .near_jit import first_codes

    codes = np.empty(len(hashes), dtype=np.int64)
    first = np.empty(len(hashes), dtype=np.int64)
    first_codes(np.ascontiguousarray(hashes, dtype=np.uint64), codes, first)
    dup = np.flatnonzero(first != np.arange(len(first)))
    if len(dup):
        same = pc.equal(strings.take(pa.array(dup)), strings.take(pa.array(first[dup])))
        if same.null_count or not pc.all(same).as_py():
            return _codes([strings.whole() if hasattr(strings, "whole") else strings])  # (kept_inputs.GatheredText)
    return codes


def product_rows(store, only: pa.Array, written: pa.Table | None = None) -> pa.Table:
    """The rows :data:`_PRODUCTS` gives for the products ``only`` (distinct ids), sorted by product_id:
    each one's ``products`` row from ``written`` (``store.changed("products", ...)`` rows with
    merchant_id and title: read from the parts written since) or else from the parts holding it
    (``store.read_groups``), and its main image (:func:`main_images`: no scan of the products' view,
    no media view and no join in DuckDB)."""
    cols = list(COLUMNS[:3])
    rows = pa.table({c: pa.array([], pa.string()) for c in cols})
    if written is not None and all(c in written.column_names for c in cols):
        rows = written.select(cols).cast(rows.schema)
        rows = rows.filter(pc.is_in(rows.column("product_id"), value_set=only))
    missing = only.filter(pc.invert(pc.is_in(only, value_set=rows.column("product_id"))))
    if len(missing):
        rows = pa.concat_tables([rows, store.read_groups("products", missing.to_pylist()).select(cols).cast(rows.schema)])
    out = rows.join(main_images(store, only), "product_id", join_type="left outer")
    return out.take(pc.sort_indices(out, [("product_id", "ascending")])).select(list(COLUMNS))


def main_images(store, only: pa.Array) -> pa.Table:
    """The main image of each of the products ``only`` (``product_id``, ``sha256``, ``phash``), as
    :data:`_PRODUCTS`' join gives it: their media rows read with the filter ahead of the view's window
    (``store.read_of``: no connection with the media view, no window over the whole table), then per
    product the first ``main_image.MAIN_IMAGE`` row by position, then
    media_id (nulls last, as DuckDB orders them)."""
    media = store.read_of("media", "product_id", only)
    media = media.filter(main_image_mask(media))
    media = media.take(pc.sort_indices(media, [("product_id", "ascending", "at_end"), ("position", "ascending", "at_end"),
                                               ("media_id", "ascending", "at_end")]))
    pid = media.column("product_id").combine_chunks() if len(media) else pa.array([], pa.string())
    first = np.r_[True, pc.not_equal(pid[1:], pid[:-1]).to_numpy(zero_copy_only=False)] if len(pid) else \
        np.zeros(0, dtype=bool)
    return media.filter(pa.array(first)).select(["product_id", "sha256", "phash"]).cast(
        pa.schema([(c, pa.string()) for c in ("product_id", "sha256", "phash")]))


def read_products(con, on_titles: Callable[[list[str]], None] | None = None, only: pa.Array | None = None,
                  rows: pa.Table | None = None) -> Inputs:
    """Products and their main image, in batches of :data:`BATCH`; ``on_titles(normalised titles)`` per
    batch; ``only``: just these products; ``rows``: their rows as :data:`_PRODUCTS` gives them, when the
    caller has them (:func:`product_rows`; else read here)."""
    if rows is not None:
        reader = rows.select(list(COLUMNS)).to_batches(max_chunksize=BATCH)
    else:
        and_, where = _only(con, only)
        rel = con.sql(_PRODUCTS.format(only=and_, where=where))
        reader = rel.to_arrow_reader(BATCH) if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch(BATCH)
    ids, shas, title_keys = [], [], []
    phash, has_phash, given, has_title = [], [], [], []
    for batch in reader:
        ids.append(batch.column(0))
        shas.append(pc.if_else(pc.equal(batch.column(3), ""), None, batch.column(3)))
        titles = [near.normalise_title(t) for t in batch.column(2).to_pylist()]
        merchants = [(m or "").strip() for m in batch.column(1).to_pylist()]
        title_keys.append(pa.array([f"{m}\x1f{t}" if t and m else None for m, t in zip(merchants, titles)],
                                   type=pa.string()))
        has_title.append(np.fromiter(map(bool, titles), dtype=bool, count=len(titles)))
        hashes = batch.column(4).to_pylist()
        h, ok = parse_phash(hashes)
        phash.append(h)
        has_phash.append(ok)
        given.append(np.fromiter(map(bool, hashes), dtype=bool, count=len(hashes)))
        if on_titles is not None:
            on_titles(titles)
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt))
    sha = pa.chunked_array(shas, type=pa.string()).combine_chunks()
    title_text = pa.chunked_array(title_keys, type=pa.string()).combine_chunks()
    sha_hash, title_hash = string_hashes(sha), string_hashes(title_text)
    return Inputs(ids=pa.chunked_array(ids, type=pa.string()).combine_chunks(), blob=hash_codes(sha, sha_hash),
                  title_key=hash_codes(title_text, title_hash), has_title=cat(has_title, bool),
                  phash=cat(phash, np.uint64), has_phash=cat(has_phash, bool), phash_given=cat(given, bool),
                  n_spec_rows=np.zeros(0, np.int64), sha=sha, title_text=title_text, sha_hash=sha_hash,
                  title_hash=title_hash)


def ranks(names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each name's rank in sorted order (a code that does not depend on which names came first) and the sorted names."""
    order = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int32)
    rank[order] = np.arange(len(names), dtype=np.int32)
    return rank, [names[i] for i in order]


def read_specs(con, n: int, brand: str, only: pa.Array | None = None,
               rows: pa.Table | None = None) -> tuple[Specs, np.ndarray]:
    """Comparable spec values of the ``n`` products (as :func:`read_products` numbered them) and each
    product's count of spec rows with a property and value.

    Properties and values are normalised (:func:`.values.norm_value`); values of other properties than
    ``brand`` that are noisy (:func:`.values.noisy_value`) are dropped; a brand counts with its spellings
    (:func:`.values.brand_spellings`); ``only``: just
    these products (the ``n`` of them, sorted); ``rows``: with ``only``, their spec rows when the caller
    has read them (``product_id``, ``property``, ``value``; else read here). Codes are ranks of the
    normalised names (:func:`ranks`).
    """
    if only is None:
        rows = None
        # sorted, so the codes (and the rarest-entry keys' ties broken by code) are the same in every run:
        # DuckDB's DISTINCT returns its groups in an order that varies with its threads
        props = con.sql("SELECT DISTINCT property FROM specs WHERE property IS NOT NULL ORDER BY property"
                        ).fetchnumpy()["property"]
        vals = con.sql("SELECT DISTINCT value FROM specs WHERE value IS NOT NULL ORDER BY value").fetchnumpy()["value"]
    else:  # a few products: their rows in one filtered scan (or the caller's), the rest in Arrow
        if rows is None:
            and_, _ = _only(con, only)
            rows = con.sql("SELECT product_id, property, value FROM specs "
                           f"WHERE property IS NOT NULL AND value IS NOT NULL {and_}").to_arrow_table()
        else:
            rows = rows.select(["product_id", "property", "value"])
            rows = rows.filter(pc.and_(pc.is_valid(rows.column("property")), pc.is_valid(rows.column("value"))))
        props = pc.unique(rows.column("property")).to_numpy(zero_copy_only=False)
        vals = pc.unique(rows.column("value")).to_numpy(zero_copy_only=False)
    key_names: dict[str, int] = {}
    pk = [key_names.setdefault(k, len(key_names)) if (k := norm_value(p)) else -1 for p in props.tolist()]
    value_names: dict[str, int] = {}
    vk, vnoisy = [], []
    for v in vals.tolist():
        nv = norm_value(v)
        vk.append(value_names.setdefault(nv, len(value_names)) if nv else -1)
        vnoisy.append(bool(nv) and noisy_value(v))
    key_rank, key_list = ranks(list(key_names))
    value_rank, value_list = ranks(list(value_names))
    pk = [int(key_rank[c]) if c >= 0 else -1 for c in pk]
    vk = [int(value_rank[c]) if c >= 0 else -1 for c in vk]
    if rows is not None:
        at_k = pc.index_in(rows.column("property"), value_set=pa.array(props.tolist(), pa.string())).to_numpy()
        at_v = pc.index_in(rows.column("value"), value_set=pa.array(vals.tolist(), pa.string())).to_numpy()
        k_all = np.asarray(pk, dtype=np.int32)[at_k]
        v_all = np.asarray(vk, dtype=np.int32)[at_v]
        ok = (k_all >= 0) & (v_all >= 0)
        t = {"idx": pc.index_in(rows.column("product_id"), value_set=only).to_numpy()[ok], "k": k_all[ok],
             "v": v_all[ok], "noisy": np.asarray(vnoisy, dtype=bool)[at_v][ok]}
    else:
        con.register("dedup_props", pa.table({"property": pa.array(props.tolist(), pa.string()),
                                              "k": pa.array(pk, pa.int32())}))
        con.register("dedup_values", pa.table({"value": pa.array(vals.tolist(), pa.string()),
                                               "v": pa.array(vk, pa.int32()), "noisy": pa.array(vnoisy, pa.bool_())}))
        t = con.sql("""
            SELECT p.idx, dp.k, dv.v, dv.noisy
            FROM specs s
            JOIN (SELECT product_id, row_number() OVER (ORDER BY product_id) - 1 AS idx FROM products) p
              ON p.product_id = s.product_id
            JOIN dedup_props dp ON dp.property = s.property
            JOIN dedup_values dv ON dv.value = s.value
            WHERE dp.k >= 0 AND dv.v >= 0""").fetchnumpy()
    idx = np.asarray(t["idx"], dtype=np.int64)
    k = np.asarray(t["k"], dtype=np.int32)
    v = np.asarray(t["v"], dtype=np.int32)
    n_rows = np.bincount(idx, minlength=n).astype(np.int64)
    brand_key = int(key_rank[key_names[brand]]) if brand in key_names else -1
    keep = (k == brand_key) | ~np.asarray(t["noisy"], dtype=bool)  # every brand value; no noisy value of others
    idx, k, v = idx[keep], k[keep], v[keep]
    order = np.lexsort((v, k, idx))
    idx, k, v = idx[order], k[order], v[order]
    first = np.r_[True, (idx[1:] != idx[:-1]) | (k[1:] != k[:-1]) | (v[1:] != v[:-1])] if len(idx) else np.zeros(0, bool)
    idx, k, v = idx[first], k[first], v[first]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(idx, minlength=n), out=offsets[1:])
    # brand spellings: codes per distinct brand value, then per product
    is_brand = k == brand_key
    b_idx, b_val = idx[is_brand], v[is_brand]
    spelling_names: dict[str, int] = {}
    per_value = {val: sorted({spelling_names.setdefault(s, len(spelling_names)) for s in brand_spellings(value_list[val])})
                 for val in np.unique(b_val).tolist()}
    counts = np.array([len(per_value[x]) for x in b_val.tolist()], dtype=np.int64)
    sp_idx = np.repeat(b_idx, counts)
    spelling_rank, spelling_list = ranks(list(spelling_names))
    sp = np.array([spelling_rank[c] for x in b_val.tolist() for c in per_value[x]], dtype=np.int32)
    order = np.lexsort((sp, sp_idx))
    sp_idx, sp = sp_idx[order], sp[order]
    first = np.r_[True, (sp_idx[1:] != sp_idx[:-1]) | (sp[1:] != sp[:-1])] if len(sp) else np.zeros(0, bool)
    sp_idx, sp = sp_idx[first], sp[first]
    brand_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sp_idx, minlength=n), out=brand_offsets[1:])
    return Specs(offsets=offsets, keys=k, values=v, brand_key=brand_key, brand_offsets=brand_offsets, brands=sp,
                 names=(key_list, value_list, spelling_list)), n_rows


def agreement(specs: Specs, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: same brand (1, 0; -1 when a side names none), shared properties besides the brand,
    agreeing ones (see :func:`.values.spec_agreement`)."""
    from . import spec_jit

    return spec_jit.spec_agreement(np.ascontiguousarray(left, dtype=np.int64), np.ascontiguousarray(right, dtype=np.int64),
                                   specs.offsets, specs.keys, specs.values, specs.brand_offsets, specs.brands,
                                   specs.brand_key)


def read_inputs(store, brand: str = "", on_titles: Callable[[list[str]], None] | None = None,
                only: pa.Array | None = None) -> Inputs:
    """Products (sorted by product_id), their main image (sha256, pHash) and comparable spec values.

    Values of ``brand`` (a normalised property name) are all kept; values of other properties that
    are ranges, dates or free text (:func:`.values.noisy_value`) are dropped. ``on_titles`` gets each
    batch of normalised titles (they are not kept). ``only``: just these products (sorted product ids).
    """
    # Past a few MB of parts, a database of its own, not a cursor of the process's read database: this read
    # of every product gives its memory back when the database closes. Through a cursor, dedup's peak RSS at
    # 100k products was 0.78-0.83 GiB, against 0.72-0.73 (bench_scale.py, 2026-11-29). Store.connect_whole.
    con = store.connect_whole(("products", "media", "specs"))
    try:
        inp = read_products(con, on_titles, only=only)
        inp.specs, inp.n_spec_rows = read_specs(con, len(inp), brand, only=None if only is None else inp.ids)
    finally:
        con.close()
    return inp

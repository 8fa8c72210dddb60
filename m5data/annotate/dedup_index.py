"""What dedup reads, kept between runs, so an incremental run reads only the changed products.

A complete run keeps its :class:`~.dedup_inputs.Inputs` as arrays in one ``.npz`` file (numpy
arrays only, read with ``allow_pickle=False``; strings as UTF-8 bytes and offsets) written whole
through ``store.write_bytes`` under ``derived/dedup/`` (named by the run's id) and named in the stage's state: each
product's main image (sha256, pHash), merchant + normalised title, spec values as codes with the
names they stand for, and its title's MinHash band keys and b-bit signature (so an unchanged title
is never normalised, shingled or hashed again). The next run reads the ids of the store's products,
the kept arrays, and from the store only the products that changed (:func:`.dedup_kept.changed_ids`),
and joins them: the same :class:`Inputs` a full read gives, codes included (codes are ranks of
sorted names, so they do not depend on which names came first).
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import dedup_inputs, near
from .dedup_inputs import Inputs, Specs

FOLDER = "derived/dedup"
FORMAT = 2  # 2: with each row's spec block key hash


# ------------------------------------------------------------------ strings as arrays
def _pack(name: str, arr: pa.Array, out: dict) -> None:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = arr.cast(pa.large_string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8) if len(arr) else \
        np.zeros(1, np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0]:offsets[-1]] if len(arr) and bufs[2] is not None else \
        np.zeros(0, np.uint8)
    out[f"{name}__off"] = offsets - offsets[0]
    out[f"{name}__data"] = data
    out[f"{name}__null"] = arr.is_null().to_numpy(zero_copy_only=False)


def _unpack(name: str, z: dict) -> pa.Array:
    offsets, data, null = z[f"{name}__off"], z[f"{name}__data"], z[f"{name}__null"]
    arr = pa.LargeStringArray.from_buffers(len(null), pa.py_buffer(np.ascontiguousarray(offsets)),
                                           pa.py_buffer(np.ascontiguousarray(data)))
    arr = arr.cast(pa.string())
    return pc.if_else(pa.array(null), pa.scalar(None, pa.string()), arr) if null.any() else arr


def _strings(names) -> pa.Array:
    return pa.array(list(names), pa.string())


# ------------------------------------------------------------------ keep
def save(store, inp: Inputs, brand: str, titles: near.LSHIndex, wide: near.LSHIndex | None, tag: str) -> str:
    """Write ``inp`` and the title indexes' band keys and signatures as ``inputs-<tag>.npz`` (the run's
    id: hashing 40 MB at 100k would cost more than the write); the file's store path."""
    sp = inp.specs
    z: dict = {"format": np.array([FORMAT]), "brand_key": np.array([sp.brand_key]),
               "has_title": inp.has_title, "phash": inp.phash, "has_phash": inp.has_phash,
               "phash_given": inp.phash_given, "n_spec_rows": inp.n_spec_rows,
               "spec_offsets": sp.offsets, "spec_keys": sp.keys, "spec_values": sp.values,
               "brand_offsets": sp.brand_offsets, "brands": sp.brands,
               "band_keys": _one(titles._keys), "sigs": _one(titles._sigs), "spec_keyhash": inp.spec_keyhash}
    if wide is not None:
        z["wide_keys"] = _one(wide._keys)
    _pack("ids", inp.ids, z)
    _pack("sha", inp.sha, z)
    _pack("title_text", inp.title_text, z)
    _pack("brand", pa.array([brand]), z)
    for name, names in zip(("props", "values", "spellings"), sp.names):
        _pack(name, _strings(names), z)
    buf = io.BytesIO()
    np.savez(buf, **z)
    rel = f"{FOLDER}/inputs-{tag}.npz"
    store.write_bytes(rel, buf.getvalue())
    return rel


def _one(chunks: list[np.ndarray]) -> np.ndarray:
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def load(store, rel) -> dict | None:
    """The kept arrays at ``rel`` (None: none, or not readable as such)."""
    data = store.read_bytes(rel) if isinstance(rel, str) else None
    if data is None:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            kept = {k: z[k] for k in z.files}
    except (ValueError, OSError, KeyError):
        return None
    return kept if int(kept.get("format", [0])[0]) == FORMAT else None


# ------------------------------------------------------------------ read
def _csr_take(offsets: np.ndarray, rows: np.ndarray, *arrays: np.ndarray) -> tuple:
    """Rows ``rows`` of CSR ``arrays`` (one offsets), in that order: ``(offsets, *arrays)``."""
    from .key_runs import ragged_arange

    cnt = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    new = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(cnt, out=new[1:])
    at = np.repeat(offsets[rows], cnt) + ragged_arange(cnt)
    return (new, *(a[at] for a in arrays))


def _merge_names(kept: list[str], fresh: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The sorted union of two sorted name lists and each list's codes in it."""
    merged = sorted(set(kept) | set(fresh))
    index = {name: i for i, name in enumerate(merged)}
    return (merged, np.array([index[x] for x in kept], dtype=np.int32),
            np.array([index[x] for x in fresh], dtype=np.int32))


def read_incremental(store, kept: dict, brand: str, changed: pa.Array, titles: near.LSHIndex,
                     wide: near.LSHIndex | None, shingle: int, norm, noisy, spellings, con=None) -> Inputs | None:
    """The store's products as :func:`.dedup.read_inputs` reads them, from the ``kept`` arrays and,
    for the ``changed`` products (and any the arrays lack), from the store; ``titles`` and ``wide``
    (empty indexes) get every product's band keys and signatures. None: the kept arrays do not fit
    (another brand property, or a wide index they lack). ``con``: a connection of the store with
    views of products, media and specs (default: one of its own, closed at the end)."""
    if _unpack("brand", kept).to_pylist() != [brand] or (wide is not None and "wide_keys" not in kept):
        return None
    own = con is None
    con = store.connect(need=("products", "media", "specs"), only=("products", "media", "specs")) if own else con
    try:
        ids = con.sql("SELECT product_id FROM products ORDER BY product_id").to_arrow_table().column(0).combine_chunks()
        kept_ids = _unpack("ids", kept)
        at = pc.index_in(ids, value_set=kept_ids)
        fresh_mask = (pc.is_null(at).to_numpy(zero_copy_only=False)
                      | pc.is_in(ids, value_set=changed).to_numpy(zero_copy_only=False))
        fresh_ids = ids.filter(pa.array(fresh_mask))
        fresh_titles = _like(titles)
        fresh_wide = _like(wide) if wide is not None else None

        def index_titles(batch: list[str]) -> None:
            values, offsets = near.title_hashes(batch, shingle)
            valid = np.fromiter(map(bool, batch), dtype=bool, count=len(batch))
            fresh_titles.add(values, offsets, valid)
            if fresh_wide is not None:
                fresh_wide.add(values, offsets, valid)

        fresh = dedup_inputs.read_products(con, index_titles, only=fresh_ids)
        fresh.specs, fresh.n_spec_rows = dedup_inputs.read_specs(con, len(fresh), brand, norm, noisy, spellings,
                                                                 only=fresh_ids)
    finally:
        if own:
            con.close()
    n = len(ids)
    src = np.where(fresh_mask, -1, pc.fill_null(at, 0).to_numpy().astype(np.int64))  # kept row, -1: fresh
    frow = np.full(n, -1, dtype=np.int64)
    frow[fresh_mask] = np.arange(int(fresh_mask.sum()))
    is_kept = src >= 0

    def pick(name: str, fresh_values: np.ndarray) -> np.ndarray:
        out = np.empty((n, *fresh_values.shape[1:]), dtype=fresh_values.dtype)
        out[is_kept] = kept[name][src[is_kept]]
        out[~is_kept] = fresh_values
        return out

    order = np.argsort(np.r_[np.flatnonzero(is_kept), np.flatnonzero(~is_kept)], kind="stable")
    both = (lambda a, b: pa.concat_arrays([a.take(pa.array(src[is_kept])), b]).take(pa.array(order)))
    sha = both(_unpack("sha", kept), fresh.sha)
    title_text = both(_unpack("title_text", kept), fresh.title_text)
    inp = Inputs(ids=ids, blob=dedup_inputs._codes([sha]), title_key=dedup_inputs._codes([title_text]),
                 has_title=pick("has_title", fresh.has_title), phash=pick("phash", fresh.phash),
                 has_phash=pick("has_phash", fresh.has_phash), phash_given=pick("phash_given", fresh.phash_given),
                 n_spec_rows=pick("n_spec_rows", fresh.n_spec_rows), sha=sha, title_text=title_text)
    titles._keys, titles._sigs = [pick("band_keys", _one(fresh_titles._keys))], [pick("sigs", _one(fresh_titles._sigs))]
    titles._valid = [inp.has_title]
    if wide is not None:
        wide._keys, wide._sigs = [pick("wide_keys", _one(fresh_wide._keys))], [pick("sigs", _one(fresh_wide._sigs))]
        wide._valid = [inp.has_title]
    inp.specs = _merge_specs(kept, fresh.specs, src, frow, is_kept)
    inp.spec_keyhash_prev = pick("spec_keyhash", np.zeros(len(fresh), dtype=np.uint64))
    return inp


def _like(index: near.LSHIndex) -> near.LSHIndex:
    """An empty index with the settings of ``index`` (its permutations shared, not made again)."""
    new = object.__new__(near.LSHIndex)
    new.__dict__.update(index.__dict__)
    new._keys, new._sigs, new._valid = [], [], []
    return new


def _merge_specs(kept: dict, fresh: Specs, src: np.ndarray, frow: np.ndarray, is_kept: np.ndarray) -> Specs:
    names_k = [_unpack(x, kept).to_pylist() for x in ("props", "values", "spellings")]
    merged, maps_k, maps_f = [], [], []
    for k_names, f_names in zip(names_k, fresh.names):
        m, mk, mf = _merge_names(k_names, list(f_names))
        merged.append(m)
        maps_k.append(mk)
        maps_f.append(mf)
    # each row's entries from its source, codes mapped to the merged names
    k_off, k_keys, k_vals = _csr_take(kept["spec_offsets"], src[is_kept], kept["spec_keys"], kept["spec_values"])
    f_off, f_keys, f_vals = _csr_take(fresh.offsets, frow[~is_kept], fresh.keys, fresh.values)
    kb_off, k_br = _csr_take(kept["brand_offsets"], src[is_kept], kept["brands"])
    fb_off, f_br = _csr_take(fresh.brand_offsets, frow[~is_kept], fresh.brands)
    n = len(src)

    def join(k_off, f_off, k_arrays, f_arrays):
        cnt = np.zeros(n, dtype=np.int64)
        cnt[is_kept] = np.diff(k_off)
        cnt[~is_kept] = np.diff(f_off)
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(cnt, out=off[1:])
        outs = []
        for ka, fa in zip(k_arrays, f_arrays):
            out = np.empty(int(off[-1]), dtype=np.int32)
            from .key_runs import ragged_arange

            kc, fc = np.diff(k_off), np.diff(f_off)
            out[np.repeat(off[:-1][is_kept], kc) + ragged_arange(kc)] = ka
            out[np.repeat(off[:-1][~is_kept], fc) + ragged_arange(fc)] = fa
            outs.append(out)
        return off, outs

    offsets, (keys, values) = join(k_off, f_off, (maps_k[0][k_keys] if len(k_keys) else k_keys.astype(np.int32),
                                                  maps_k[1][k_vals] if len(k_vals) else k_vals.astype(np.int32)),
                                   (maps_f[0][f_keys] if len(f_keys) else f_keys.astype(np.int32),
                                    maps_f[1][f_vals] if len(f_vals) else f_vals.astype(np.int32)))
    brand_offsets, (brands,) = join(kb_off, fb_off, (maps_k[2][k_br] if len(k_br) else k_br.astype(np.int32),),
                                    (maps_f[2][f_br] if len(f_br) else f_br.astype(np.int32),))
    brand_key = int(kept["brand_key"][0])
    brand_key = int(maps_k[0][brand_key]) if brand_key >= 0 else (
        int(maps_f[0][fresh.brand_key]) if fresh.brand_key >= 0 else -1)
    return Specs(offsets=offsets, keys=keys, values=values, brand_key=brand_key, brand_offsets=brand_offsets,
                 brands=brands, names=tuple(merged))

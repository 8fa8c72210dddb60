"""The incremental read of dedup's inputs: the kept files (:mod:`.kept_inputs`) joined with the products
read again from the store (new and changed ones, and any the files lack), a later file's row of a
product winning, spec codes mapped to the joined names; the same :class:`Inputs` a full read gives."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import near, reads
from .kept_inputs import (
    LAZY,
    NAMES,
    OUT,
    ROWS,
    TABLE,
    TEXT,
    Gathered,
    GatheredText,
    Kept,
    arrays,
)
from .reads import Inputs, Specs


def read_incremental(store, kept: list[Kept], brand: str, changed: pa.Array, titles: near.LSHIndex,
                     wide: near.LSHIndex | None, shingle: int, con=None,
                     ids: pa.Array | pa.ChunkedArray | None = None, written: pa.Table | None = None) -> Inputs | None:
    """The store's products as :func:`.reads.read_inputs` reads them, from the ``kept`` files (base
    first: a later file's row wins) and, for the ``changed`` products (and any the files lack), from
    the store; ``titles`` and ``wide`` (empty indexes) get every product's band keys and signatures
    and the kept parameters. None: the kept files do not fit (a wide index they lack). ``con``: a
    connection of the store with the products' view, read without ``ids`` or ``written`` (default:
    one of its own then, closed at the end); ``ids``: the store's product ids, sorted, when the caller
    has them (else read here); ``written``: ``store.changed("products", ...)``'s rows with merchant_id
    and title (their products rows as the store holds them now: those are not read again). The
    result's ``kept_files`` and ``fresh`` say what :func:`keep` appends to."""
    if wide is not None and "wide_keys" not in kept[-1].z:
        return None
    titles.perms, titles.params = (kept[-1].z["perm_a"], kept[-1].z["perm_b"]), kept[-1].z["lsh_params"]
    if wide is not None:
        wide.perms, wide.params = titles.perms, kept[-1].z["wide_params"]
    # a connection only for a read of the products' view (the ids, or the rows without ``written``): the
    # main images and the spec rows are read from the parts (``store.read_of``, ``store.read_groups``)
    own = con is None and (ids is None or written is None)
    con = store.connect(need=("products", "media", "specs"), only=("products", "media", "specs")) if own else con
    try:
        if ids is None:
            ids = con.sql("SELECT product_id FROM products ORDER BY product_id").to_arrow_table().column(0)
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        src, srow, gone = _sources(ids, kept)
        fresh_mask = (src < 0) | pc.is_in(ids, value_set=changed).to_numpy(zero_copy_only=False)
        fresh_ids = ids.filter(pa.array(fresh_mask))
        fresh_titles = _like(titles)
        fresh_wide = _like(wide) if wide is not None else None

        def index_titles(batch: list[str]) -> None:
            values, offsets = near.title_hashes(batch, shingle)
            valid = np.fromiter(map(bool, batch), dtype=bool, count=len(batch))
            fresh_titles.add(values, offsets, valid)
            if fresh_wide is not None:
                fresh_wide.add(values, offsets, valid)

        rows = reads.product_rows(store, fresh_ids, written) if written is not None else None
        fresh = reads.read_products(con, index_titles, only=fresh_ids, rows=rows)
        # their spec rows from only the parts holding them, no window over the specs view
        spec_rows = store.read_groups("specs", fresh_ids.to_pylist())  # none: an empty table
        fresh.specs, fresh.n_spec_rows = reads.read_specs(con, len(fresh), brand,
                                                                 only=fresh_ids, rows=spec_rows)
    finally:
        if own:
            con.close()
    prev = _previous(ids, kept, src >= 0, gone)
    src[fresh_mask] = len(kept)  # the rows read now: the last source
    srow[fresh_mask] = np.arange(int(fresh_mask.sum()))
    z = _merge([k.z for k in kept] + [arrays(fresh, fresh_titles, fresh_wide).z], src, srow, ids, brand)
    inp = Inputs(ids=ids, blob=reads.hash_codes(z["sha"], z["sha_hash"]),
                 title_key=reads.hash_codes(z["title_text"], z["title_hash"]), has_title=z["has_title"],
                 phash=z["phash"], has_phash=z["has_phash"], phash_given=z["phash_given"],
                 n_spec_rows=z["n_spec_rows"], sha=z["sha"], title_text=z["title_text"], sha_hash=z["sha_hash"],
                 title_hash=z["title_hash"])
    inp.specs = Specs(offsets=z["spec_offsets"], keys=z["spec_keys"], values=z["spec_values"], brand_key=z["brand_key"],
                      brand_offsets=z["brand_offsets"], brands=z["brands"],
                      names=tuple(z[n].to_pylist() for n in NAMES))
    inp.spec_chosen_prev = z["spec_chosen"]  # False for the rows read now: they are searched anyway
    inp.kept_files, inp.fresh = [(k.rel, len(k)) for k in kept], fresh_mask
    inp.written = pa.table({c: z[c] for c in (*OUT, "distance")})  # the last run's rows (nulls: read now)
    inp.gone, inp.prev = gone, prev
    titles._keys, titles._sigs, titles._valid = [z["band_keys"]], [z["sigs"]], [inp.has_title]
    if wide is not None:
        wide._keys, wide._sigs, wide._valid = [z["wide_keys"]], [z["sigs"]], [inp.has_title]
    return inp


_FLAG = np.array([0, 1], dtype=np.uint8)  # spec_chosen's "codes"


@numba.njit(cache=True, nogil=True)
def _csr_scatter(off, picks, src_off, src_rows, src_col, code_map, out):  # pragma: no cover - compiled
    """``out[off[picks[t]]:...]``: row ``src_rows[t]`` of the CSR ``src_off``/``src_col``, its codes mapped
    by ``code_map``."""
    for t in range(len(picks)):
        at = off[picks[t]]
        r = src_rows[t]
        for e in range(src_off[r], src_off[r + 1]):
            out[at] = code_map[src_col[e]]
            at += 1


def _sources(ids: pa.Array, kept: list[Kept]) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per product of ``ids``: the last kept file holding it (-1: none) and its row there; and
    whether a kept file holds a product not in ``ids`` (ids are unique in both: it found fewer)."""
    src = np.full(len(ids), -1, dtype=np.int64)
    srow = np.zeros(len(ids), dtype=np.int64)
    gone = False
    for i, k in enumerate(kept):
        at = pc.index_in(ids, value_set=k.z["ids"])
        hit = pc.is_valid(at).to_numpy(zero_copy_only=False)
        src[hit] = i
        srow[hit] = pc.fill_null(at, 0).to_numpy()[hit]
        gone |= int(hit.sum()) < len(k)
    return src, srow, gone


def kept_ids(kept: list[Kept]) -> pa.Array:
    """The products the ``kept`` files hold, sorted (binary order, as the store's ids are read): the
    products of the run that wrote the last of them (a run with a product gone writes a new base)."""
    if len(kept) == 1:
        return kept[0].z["ids"]
    names = pc.unique(pa.concat_arrays([k.z["ids"] for k in kept]))
    return names.take(pc.sort_indices(names))


def store_ids(kept: list[Kept], written: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The store's product ids, sorted, when none was removed since the ``kept`` files were written:
    theirs (:func:`kept_ids`) and the products ``written`` since (a scan of the new ones against the
    kept ids, then one sort of the kept ids, already sorted, with the new ones after them)."""
    base = kept[0].z["ids"]
    more = [k.z["ids"] for k in kept[1:]]
    more.append(written.combine_chunks() if isinstance(written, pa.ChunkedArray) else written)
    more = pc.unique(pa.concat_arrays([m.cast(pa.string()) for m in more]))
    hit = pc.index_in(base, value_set=more).drop_null().to_numpy()  # which of them the base holds
    new = np.ones(len(more), dtype=bool)
    new[hit.astype(np.int64)] = False
    if not new.any():
        return base
    ids = pa.concat_arrays([base, more.filter(pa.array(new))])
    return ids.take(pc.sort_indices(ids))


def _previous(ids: pa.Array, kept: list[Kept], known: np.ndarray, gone: bool) -> tuple[pa.Array, np.ndarray]:
    """The last run's products (the ``kept`` files') and each one's row of ``ids`` (-1: gone); ``known``:
    which of ``ids`` the kept files hold. Without a product gone they are those rows, in order."""
    if not gone:
        return ids.filter(pa.array(known)), np.flatnonzero(known)
    return placed(kept_ids(kept), ids)


def placed(before: pa.Array, ids: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """``before`` (the last run's product ids) with each one's row of ``ids`` (-1: gone)."""
    return before, pc.fill_null(pc.index_in(before, value_set=ids), -1).to_numpy().astype(np.int64)


def _like(index: near.LSHIndex) -> near.LSHIndex:
    """An empty index with the settings of ``index`` (its permutations shared, not made again)."""
    new = object.__new__(near.LSHIndex)
    new.__dict__.update(index.__dict__)
    new._keys, new._sigs, new._valid = [], [], []
    return new


def _merge(sources: list[dict], src: np.ndarray, srow: np.ndarray, ids: pa.Array, brand: str) -> dict:
    """One row per product: row ``srow`` of source ``src`` (kept rows of :class:`Kept` form), spec
    codes mapped to the sorted union of the sources' names; ``brand_key``: the brand property's code."""
    n = len(src)
    picks = [np.flatnonzero(src == i) for i in range(len(sources))]
    rows = [srow[p] for p in picks]
    out: dict = {k: sources[-1][k] for k in TABLE if k in sources[-1]}
    whole = len(picks[0]) > 0  # the base's rows gathered in one pass (most rows), the others' written over
    base_at = np.where(src == 0, srow, 0) if whole else None
    for k in ROWS:
        if k not in sources[-1]:
            continue
        if k in LAZY:
            out[k] = Gathered([s[k] for s in sources], src, srow)
            continue
        first = sources[-1][k]
        if whole and sources[0][k].dtype == first.dtype:
            col = sources[0][k][base_at]
            for s, p, r in zip(sources[1:], picks[1:], rows[1:]):
                col[p] = s[k][r]
        else:
            col = np.empty((n, *first.shape[1:]), dtype=first.dtype)
            for s, p, r in zip(sources, picks, rows):
                col[p] = s[k][r]
        out[k] = col
    # each string column: one take from the sources laid end to end (the ids are the store's own)
    at = pa.array(np.r_[0, np.cumsum([len(s["ids"]) for s in sources])][:-1][src] + srow)
    for k in TEXT:
        if k in LAZY:
            out[k] = GatheredText([s[k] for s in sources], src, srow)
        elif k != "ids":
            out[k] = pa.concat_arrays([s[k] for s in sources]).take(at)
    out["ids"] = ids
    maps = {}
    for name in NAMES:  # in Arrow: its binary order of UTF-8 is Python's order of str (code points)
        # every source's names are sorted and distinct: when the first (the base) holds all the others',
        # it is the union (its codes stand); else the union is sorted
        base = sources[0][name]
        found = [pc.index_in(s[name], value_set=base) for s in sources[1:]]
        if all(f.null_count == 0 for f in found):
            out[name] = base
            maps[name] = [np.arange(len(base), dtype=np.int32)] + [
                f.to_numpy(zero_copy_only=False).astype(np.int32) for f in found]
            continue
        names = pc.unique(pa.concat_arrays([s[name] for s in sources]))
        merged = names.take(pc.sort_indices(names))
        out[name] = merged
        maps[name] = [pc.index_in(s[name], value_set=merged).to_numpy(zero_copy_only=False).astype(np.int32)
                      for s in sources]
    for offsets, cols in (("spec_offsets", (("spec_keys", "props"), ("spec_values", "values"), ("spec_chosen", None))),
                          ("brand_offsets", (("brands", "spellings"),))):
        counts = np.zeros(n, dtype=np.int64)
        for s, p, r in zip(sources, picks, rows):
            counts[p] = s[offsets][r + 1] - s[offsets][r]
        off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=off[1:])
        out[offsets] = off
        for col, name in cols:
            flag = name is None  # a bool per entry, as bytes (codes 0 and 1 mapped to themselves)
            arr = np.empty(int(off[-1]), dtype=np.uint8 if flag else np.int32)
            for i, (s, p, r) in enumerate(zip(sources, picks, rows)):
                if len(p):  # one compiled pass per source (no repeat and ragged index of a million entries)
                    src_col = np.ascontiguousarray(s[col]).view(np.uint8) if flag else np.ascontiguousarray(s[col])
                    _csr_scatter(off, p, s[offsets], r, src_col, _FLAG if flag else maps[name][i], arr)
            out[col] = arr.view(np.bool_) if flag else arr
    out["brand_key"] = int(pc.index(out["props"], brand).as_py())
    return out

"""What dedup reads, kept between runs, so an incremental run reads only the changed products.

A complete run keeps its :class:`~.reads.Inputs` as arrays in ``.npz`` files (numpy arrays only,
never a pickle; strings as UTF-8 bytes and offsets; read in place: :mod:`.npz_views`) written whole
through ``store.write_bytes`` under ``derived/dedup/`` (named by the run's id) and named in the stage's state
(``inputs_files``): each product's main image (sha256, pHash), merchant + normalised title, spec
values as codes with the names they stand for, which of them made its spec block keys, and its title's MinHash
band keys and b-bit signature (so an unchanged title is never normalised, shingled or hashed
again), with the title indexes' permutations and bands (so an incremental run never imports
datasketch, ~0.5 s).

The files are append-only: a full run writes a *base* of every product; an incremental run writes
a *delta* of the rows it read again (new and changed products) and of the rows whose spec block
keys moved (their rarest entries), and names the base and every delta since. When the deltas' rows pass
:data:`COMPACT_SHARE` of the base's (or there are :data:`MAX_DELTAS` of them) the run writes a new
base instead. A later file's row of a product wins; rows of products no longer in the store are
ignored (and dropped by the next base). At 100k products a base is ~40 MB, a run's delta ~0.5 MB.

The next run reads the ids of the store's products, the kept files, and from the store only the
products that changed (:func:`.kept_pairs.changed_ids`), and joins them (:mod:`.kept_inputs_read`): the
same :class:`Inputs` a full read gives, codes included (codes are ranks of sorted names, so they do not
depend on which names came first).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ...arrays import unique
from . import near, reads
from .key_runs import ragged_arange
from .npz_views import npz_bytes, pack_strings, read_views, unpack_strings
from .reads import Inputs

FOLDER = "derived/dedup"
FORMAT = 6  # 2: with each row's spec block key hash; 3: base + deltas, with the title indexes' parameters; 4: and
# each row as the run wrote it to the dedup table (an incremental run writes the rows that differ); 5: which spec
# entries made each row's block keys (spec_chosen) instead of the keys' hash, which a run made for every row; 6:
# and the hashes of each row's sha256 and title key (the exact rules' codes made from them, no string coded again)
COMPACT_SHARE = 0.25  # the deltas' rows over this share of the base's: the next run writes a new base
MAX_DELTAS = 16  # ... and so it does at this many deltas
ROWS = ("has_title", "phash", "has_phash", "phash_given", "n_spec_rows", "band_keys", "sigs", "distance",
        "sha_hash", "title_hash", "wide_keys")  # one entry per row (wide_keys: with the learned matcher's wide title index)
OUT = ("group_id", "rule", "matched_id", "reason")  # the dedup table's columns as written (and distance)
TEXT = ("ids", "sha", "title_text", *OUT)  # strings, one per row
LAZY = ("sigs", "sha", "title_text")  # of ROWS and TEXT: an incremental read's merged rows gathered where
# read (:class:`Gathered`, :class:`GatheredText`)
NAMES = ("props", "values", "spellings")  # what the spec codes stand for (sorted: code = rank)
CSR = ("spec_offsets", "spec_keys", "spec_values", "spec_chosen", "brand_offsets", "brands")  # spec codes per row
# (spec_chosen: bool per spec entry, those that made the row's block keys: :func:`.spec_blocks.moved_rows`)
TABLE = ("perm_a", "perm_b", "lsh_params", "wide_params")  # the title indexes' (the same in every file)


def _strings(names) -> pa.Array:
    return pa.array(list(names), pa.string())


@dataclass
class Kept:
    """One kept file's rows (or the changed products' rows read from the store), in memory: per-row
    arrays (:data:`ROWS`), strings as Arrow arrays (:data:`TEXT`), spec codes in CSR form with the
    names they stand for (:data:`NAMES`, Arrow arrays), the title indexes' parameters (:data:`TABLE`)."""

    z: dict
    rel: str | None = None  # its store path (None: not a file)

    def __len__(self) -> int:
        return len(self.z["ids"])


def arrays(inp: Inputs, titles: near.LSHIndex, wide: near.LSHIndex | None, out: pa.Table | None = None) -> Kept:
    """``inp`` (its ``spec_chosen`` set; False where unknown), the title indexes' band keys, signatures
    and parameters, and ``out`` (the dedup table's rows written, in ``inp``'s order; None: unknown,
    nulls) as :class:`Kept` rows."""
    sp = inp.specs
    n = len(inp)
    chosen = inp.spec_chosen if inp.spec_chosen is not None else np.zeros(len(sp.keys), dtype=np.bool_)
    z: dict = {"has_title": inp.has_title, "phash": inp.phash, "has_phash": inp.has_phash,
               "phash_given": inp.phash_given, "n_spec_rows": inp.n_spec_rows,
               "spec_offsets": sp.offsets, "spec_keys": sp.keys, "spec_values": sp.values, "spec_chosen": chosen,
               "brand_offsets": sp.brand_offsets, "brands": sp.brands,
               "band_keys": _one(titles._keys, (0, titles.bands), np.uint64),
               "sigs": _one(titles._sigs, (0, titles.num_perm), titles.dtype),
               "perm_a": titles.perms[0], "perm_b": titles.perms[1], "lsh_params": np.array(titles.params),
               "ids": inp.ids, "sha": inp.sha, "title_text": inp.title_text,
               "sha_hash": inp.sha_hash if inp.sha_hash is not None else reads.string_hashes(inp.sha),
               "title_hash": inp.title_hash if inp.title_hash is not None else reads.string_hashes(inp.title_text)}
    for c in OUT:
        z[c] = out.column(c).combine_chunks() if out is not None else pa.nulls(n, pa.string())
    z["distance"] = (out.column("distance").to_numpy(zero_copy_only=False).astype(np.float64) if out is not None
                     else np.full(n, np.nan))
    if wide is not None:
        z["wide_keys"] = _one(wide._keys, (0, wide.bands), np.uint64)
        z["wide_params"] = np.array(wide.params)
    for name, names in zip(NAMES, sp.names):
        z[name] = names if isinstance(names, pa.Array) else _strings(names)
    return Kept(z)


def take(kept: Kept, rows: np.ndarray) -> Kept:
    """Rows ``rows`` (sorted) of ``kept``, with only the names they use."""
    z, rows = kept.z, np.asarray(rows, dtype=np.int64)
    out = {k: z[k][rows] for k in ROWS if k in z} | {k: z[k] for k in TABLE if k in z}
    out |= {k: z[k].take(pa.array(rows)) for k in TEXT}
    for offsets, cols in (("spec_offsets", ("spec_keys", "spec_values", "spec_chosen")), ("brand_offsets", ("brands",))):
        out[offsets], *taken = _csr_take(z[offsets], rows, *(z[c] for c in cols))
        out |= dict(zip(cols, taken))
    for name, cols in (("props", ("spec_keys",)), ("values", ("spec_values",)), ("spellings", ("brands",))):
        used = unique(np.concatenate([out[c] for c in cols]))
        out[name] = z[name].take(pa.array(used))
        for c in cols:  # codes are ranks: a subset of sorted names keeps their order
            out[c] = np.searchsorted(used, out[c]).astype(np.int32)
    return Kept(out)


def save(store, kept: Kept, brand: str, tag: str) -> str:
    """Write ``kept`` as ``inputs-<tag>.npz`` (the run's id and what the file is: hashing 40 MB at 100k
    would cost more than the write); the file's store path."""
    z = {k: v for k, v in kept.z.items() if k not in TEXT + NAMES}
    z["format"] = np.array([FORMAT])
    for name in TEXT:
        pack_strings(name, whole(kept.z[name]), z)
    pack_strings("brand", pa.array([brand]), z)
    for name in NAMES:
        pack_strings(name, kept.z[name], z)
    rel = f"{FOLDER}/inputs-{tag}.npz"
    store.write_bytes(rel, npz_bytes(z))
    return rel


def keep(store, inp: Inputs, brand: str, titles: near.LSHIndex, wide: near.LSHIndex | None, tag: str,
         out: pa.Table, differ: np.ndarray | None) -> list[str]:
    """Keep this run's inputs and its ``out`` rows for the next run: after ``inp.kept_files`` (an
    incremental read's) a delta of the rows read again, of those whose spec block keys moved and of
    those whose table row ``differ`` s, else a new base; the files the next run reads, base first."""
    whole = arrays(inp, titles, wide, out)
    before = inp.kept_files or []
    if before and not inp.gone:  # a product gone: a new base without it (the kept files hold the run's products)
        moved = inp.fresh | inp.spec_moved
        rows = np.flatnonzero(moved if differ is None else moved | differ)
        deltas = sum(n for _, n in before[1:]) + len(rows)
        if not len(rows):
            return [rel for rel, _ in before]
        if deltas <= COMPACT_SHARE * before[0][1] and len(before) <= MAX_DELTAS:
            return [rel for rel, _ in before] + [save(store, take(whole, rows), brand, f"{tag}-delta")]
    return [save(store, whole, brand, f"{tag}-base")]


def _one(chunks: list[np.ndarray], empty: tuple, dtype) -> np.ndarray:
    if not chunks:
        return np.zeros(empty, dtype=dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _read(store, rel: str, brand: str) -> Kept | None:
    data = store.read_mapped(rel) if isinstance(rel, str) else None  # a folder store's file read in place
    if data is None:
        return None
    try:
        raw = read_views(data)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if int(raw.get("format", [0])[0]) != FORMAT or unpack_strings("brand", raw).to_pylist() != [brand]:
        return None
    # (the title indexes' parameters copied: kept through the run, they would keep the file's bytes)
    z = {k: v.copy() if k in TABLE else v for k, v in raw.items() if k in ROWS + TABLE + CSR}
    for name in TEXT:
        z[name] = unpack_strings(name, raw)
    for name in NAMES:
        z[name] = unpack_strings(name, raw)
    return Kept(z, rel)


def load(store, rels, brand: str) -> list[Kept] | None:
    """The kept files ``rels`` (base first), or None: a file missing, not readable as one, or kept
    for another brand property."""
    if isinstance(rels, str):
        rels = [rels]
    if not isinstance(rels, list) or not rels:
        return None
    out = []
    for rel in rels:
        kept = _read(store, rel, brand)
        if kept is None:
            return None
        out.append(kept)
    return out


def _csr_take(offsets: np.ndarray, rows: np.ndarray, *arrays: np.ndarray) -> tuple:
    """Rows ``rows`` of CSR ``arrays`` (one offsets), in that order: ``(offsets, *arrays)``."""
    cnt = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    new = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(cnt, out=new[1:])
    at = np.repeat(offsets[rows], cnt) + ragged_arange(cnt)
    return (new, *(a[at] for a in arrays))


class Gathered:
    """A per-row array of the merged rows (row ``i``: row ``srow[i]`` of ``parts[src[i]]``) gathered only
    where read (``gathered[rows]``; ``np.asarray`` gathers it whole): the titles' signatures, 26 MB at
    100k products, of which a run reads the candidate pairs' rows and its delta's. New memory costs
    ~2 ms of the kernel's per MB on this machine: their whole gather was 0.057 CPU s a run."""

    def __init__(self, parts: list[np.ndarray], src: np.ndarray, srow: np.ndarray):
        self.parts, self.src, self.srow = parts, src, srow
        self.dtype = parts[-1].dtype
        self.shape = (len(src), *parts[-1].shape[1:])

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        s, r = self.src[rows], self.srow[rows]
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for i, part in enumerate(self.parts):
            sel = s == i
            if sel.any():
                out[sel] = part[r[sel]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype, copy=False)


class GatheredText:
    """:class:`Gathered` of a string column (Arrow arrays): ``take`` gathers rows, ``whole()`` every row
    (the sha256 and title key strings, ~16 MB at 100k: a run reads the rows of a shared hash and its
    delta's; their whole gather, one concatenation and one take, was 0.03-0.05 CPU s a run)."""

    def __init__(self, parts: list[pa.Array], src: np.ndarray, srow: np.ndarray):
        self.parts, self.src, self.srow = parts, src, srow

    def __len__(self) -> int:
        return len(self.src)

    def take(self, indices) -> pa.Array:
        rows = np.asarray(indices.to_numpy(zero_copy_only=False) if isinstance(indices, pa.Array) else indices,
                          dtype=np.int64)
        s, r = self.src[rows], self.srow[rows]
        parts, where = [], []
        for i, part in enumerate(self.parts):
            sel = np.flatnonzero(s == i)
            if len(sel):
                parts.append(part.take(pa.array(r[sel])).cast(pa.string()))
                where.append(sel)
        if not parts:
            return pa.array([], pa.string())
        at = np.empty(len(rows), dtype=np.int64)
        at[np.concatenate(where)] = np.arange(len(rows))
        return pa.concat_arrays(parts).take(pa.array(at))

    def whole(self) -> pa.Array:
        at = np.r_[0, np.cumsum([len(p) for p in self.parts])][:-1][self.src] + self.srow
        return pa.concat_arrays([p.cast(pa.string()) for p in self.parts]).take(pa.array(at))


def whole(arr):
    """``arr`` as an Arrow array (a :class:`GatheredText` gathered)."""
    return arr.whole() if isinstance(arr, GatheredText) else arr

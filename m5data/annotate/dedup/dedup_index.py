"""What dedup reads, kept between runs, so an incremental run reads only the changed products.

A complete run keeps its :class:`~.dedup_inputs.Inputs` as arrays in ``.npz`` files (numpy arrays
only, read with ``allow_pickle=False``; strings as UTF-8 bytes and offsets) written whole through
``store.write_bytes`` under ``derived/dedup/`` (named by the run's id) and named in the stage's state
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
products that changed (:func:`.dedup_kept.changed_ids`), and joins them: the same :class:`Inputs` a
full read gives, codes included (codes are ranks of sorted names, so they do not depend on which
names came first).
"""

from __future__ import annotations

import io
import mmap
import zipfile
import zlib
from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...arrays import unique
from ..kernels import dedup_inputs, near
from ..kernels.dedup_inputs import Inputs, Specs
from ..kernels.key_runs import ragged_arange

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
# (spec_chosen: bool per spec entry, those that made the row's block keys: :func:`.dedup_spec.moved_rows`)
TABLE = ("perm_a", "perm_b", "lsh_params", "wide_params")  # the title indexes' (the same in every file)


# ------------------------------------------------------------------ strings as arrays
def _pack(name: str, arr: pa.Array, out: dict) -> None:
    arr = whole(arr)
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
               "sha_hash": inp.sha_hash if inp.sha_hash is not None else dedup_inputs.string_hashes(inp.sha),
               "title_hash": inp.title_hash if inp.title_hash is not None else dedup_inputs.string_hashes(inp.title_text)}
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
        _pack(name, kept.z[name], z)
    _pack("brand", pa.array([brand]), z)
    for name in NAMES:
        _pack(name, kept.z[name], z)
    rel = f"{FOLDER}/inputs-{tag}.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in z.items():
            _write_aligned(zf, f"{name}.npy", np.asanyarray(arr))
    store.write_bytes(rel, buf.getvalue())
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


ALIGN = 64  # a kept array's data starts at a multiple of this in its file (read as a view, not copied)
_PAD = 0xD935  # the extra-field id of the local headers' padding (zipalign's)


def _write_aligned(zf: zipfile.ZipFile, name: str, arr: np.ndarray) -> None:
    """``arr`` as the ``.npy`` member ``name`` of ``zf`` (what ``np.savez`` writes, ``np.load`` reads it),
    its local header's extra field padded so that the array's data starts at a multiple of
    :data:`ALIGN` of the file (the npy header is a multiple of 64 bytes): :func:`_npz_views` reads it
    without a copy."""
    npy = io.BytesIO()
    np.lib.format.write_array(npy, arr, allow_pickle=False)
    data = npy.getvalue()
    header = len(data) - arr.nbytes  # the npy header (magic, dict, padding) before the array's bytes
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    start = zf.fp.tell() + 30 + len(name.encode()) + 4 + header
    info.extra = np.array([_PAD, (-start) % ALIGN], dtype="<u2").tobytes() + bytes((-start) % ALIGN)
    zf.writestr(info, data)


def _one(chunks: list[np.ndarray], empty: tuple, dtype) -> np.ndarray:
    if not chunks:
        return np.zeros(empty, dtype=dtype)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _read(store, rel: str, brand: str) -> Kept | None:
    data = store.read_mapped(rel) if isinstance(rel, str) else None  # a folder store's file read in place
    if data is None:
        return None
    try:
        raw = _npz_views(data)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if int(raw.get("format", [0])[0]) != FORMAT or _unpack("brand", raw).to_pylist() != [brand]:
        return None
    # (the title indexes' parameters copied: kept through the run, they would keep the file's bytes)
    z = {k: v.copy() if k in TABLE else v for k, v in raw.items() if k in ROWS + TABLE + CSR}
    for name in TEXT:
        z[name] = _unpack(name, raw)
    for name in NAMES:
        z[name] = _unpack(name, raw)
    return Kept(z, rel)


def _npz_views(data) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` (``np.savez``'s: members stored, not compressed) as read-only views of
    ``data`` (bytes, or a folder store's memory map of the file: no copy of it either), not copies
    where their data is aligned (a base is ~800 MB at 1M products: ``np.load`` reads it through the
    zip module, checksums and copies it, ~1.3 s; the others are copied, a memcpy); a compressed member
    is read by ``np.load``'s way; one of objects is refused."""
    out = {}
    with zipfile.ZipFile(data if isinstance(data, mmap.mmap) else io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                with zf.open(info) as f:
                    out[name] = np.lib.format.read_array(f, allow_pickle=False)
                continue
            # the member's data follows its local header (30 bytes, then name and extra field)
            head = info.header_offset
            name_len, extra_len = np.frombuffer(data, dtype="<u2", count=2, offset=head + 26)
            start = head + 30 + int(name_len) + int(extra_len)
            # its checksum, as the zip module's read would check it (0.12 s for 800 MB): a damaged
            # file is not read, and the run rebuilds what it held
            if zlib.crc32(memoryview(data)[start:start + info.file_size]) != info.CRC:
                raise ValueError(f"{info.filename}: checksum mismatch")
            f = io.BytesIO(data[start:start + min(info.file_size, 65536)])
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if dtype.hasobject:
                raise ValueError("object arrays are not read")
            count = int(np.prod(shape, dtype=np.int64))
            arr = np.frombuffer(data, dtype=dtype, count=count, offset=start + f.tell())
            if not arr.flags.aligned:  # numba and Arrow want aligned data: a copy (memcpy, not a parse)
                arr = arr.copy()
            out[name] = arr.reshape(shape, order="F" if fortran else "C")
    return out


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


# ------------------------------------------------------------------ read
def _csr_take(offsets: np.ndarray, rows: np.ndarray, *arrays: np.ndarray) -> tuple:
    """Rows ``rows`` of CSR ``arrays`` (one offsets), in that order: ``(offsets, *arrays)``."""
    cnt = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
    new = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(cnt, out=new[1:])
    at = np.repeat(offsets[rows], cnt) + ragged_arange(cnt)
    return (new, *(a[at] for a in arrays))


def read_incremental(store, kept: list[Kept], brand: str, changed: pa.Array, titles: near.LSHIndex,
                     wide: near.LSHIndex | None, shingle: int, con=None,
                     ids: pa.Array | pa.ChunkedArray | None = None, written: pa.Table | None = None) -> Inputs | None:
    """The store's products as :func:`..kernels.dedup_inputs.read_inputs` reads them, from the ``kept`` files (base
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

        rows = dedup_inputs.product_rows(store, fresh_ids, written) if written is not None else None
        fresh = dedup_inputs.read_products(con, index_titles, only=fresh_ids, rows=rows)
        # their spec rows from only the parts holding them, no window over the specs view
        spec_rows = store.read_groups("specs", fresh_ids.to_pylist())  # none: an empty table
        fresh.specs, fresh.n_spec_rows = dedup_inputs.read_specs(con, len(fresh), brand,
                                                                 only=fresh_ids, rows=spec_rows)
    finally:
        if own:
            con.close()
    prev = _previous(ids, kept, src >= 0, gone)
    src[fresh_mask] = len(kept)  # the rows read now: the last source
    srow[fresh_mask] = np.arange(int(fresh_mask.sum()))
    z = _merge([k.z for k in kept] + [arrays(fresh, fresh_titles, fresh_wide).z], src, srow, ids, brand)
    inp = Inputs(ids=ids, blob=dedup_inputs.hash_codes(z["sha"], z["sha_hash"]),
                 title_key=dedup_inputs.hash_codes(z["title_text"], z["title_hash"]), has_title=z["has_title"],
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

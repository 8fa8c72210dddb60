"""Dedup between full runs: the accepted pairs a complete run keeps, and which products the next run
must look at again.

A complete run keeps every pair it accepted (``left``, ``right``: row numbers of its products in
product_id order; ``rule``, ``distance``), and the spec pairs its chance test rejected (rule
``spec_chance``: tested again by the next run), with a digest of its product ids in that order, in
a Parquet file written whole through ``store.write_bytes`` (a store on S3 keeps it too), named by
its content hash under ``derived/dedup/`` and named in the stage's state
(``derived/state/dedup.json``, saved last). The next run's *changed* products are those with a
``products``, ``specs`` or ``media`` row written since the state's watermarks; a pair kept from the
last run stands unless one of its products changed or is gone, and the rules search again only
for pairs with a changed product as an end (:func:`.dedup.dedup`). A run killed before its state
was saved leaves the previous state and the file it names, so the run after it starts from those.

The pairs are row numbers, not product ids (4.5 million pairs of string ids cost ~1.7 s a run to look
up and write again at 1M products): the next run places them through the kept inputs' ids
(:mod:`.kept_inputs`, which hold that run's products), checked against the digest; when they do not
fit (or the kept inputs cannot be read) the run is a full one.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ... import arrays
from . import phash

FOLDER = "derived/dedup"
FORMAT = 2  # the kept pairs file's layout, in its metadata and checked when read (another: a full run); 2: row numbers
SCHEMA = pa.schema([("left", pa.int32()), ("right", pa.int32()), ("rule", pa.dictionary(pa.int8(), pa.string())),
                    ("distance", pa.float64())])
IDS = b"m5data.ids"  # the file's metadata: the digest of the run's product ids (:func:`ids_digest`)
FORMAT_KEY = b"m5data.format"  # ... and its FORMAT


@dataclass
class Plan:
    """An incremental run's changed rows and the kept pairs that stand."""

    touching: np.ndarray  # bool per row: a product changed since the last complete run
    kept: list  # (left rows, right rows, distances, rule) per rule, pairs of unchanged products
    dropped: int  # kept pairs of a changed or removed product
    removed: int  # products of kept pairs no longer in the store


def ids_digest(ids: pa.Array | pa.ChunkedArray) -> str:
    """A digest of product ids in their order (their UTF-8 bytes and lengths: ~0.03 s for a million)."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    arr = arr.cast(pa.string()) if arr.type != pa.string() else arr
    h = hashlib.blake2b(digest_size=16)
    h.update(len(arr).to_bytes(8, "little"))
    if len(arr):
        bufs = arr.buffers()
        offs = np.frombuffer(bufs[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
        h.update((offs - offs[0]).tobytes())
        if bufs[2] is not None:
            h.update(memoryview(bufs[2])[int(offs[0]):int(offs[-1])])
    return h.hexdigest()


def save_edges(store, ids: pa.Array, edges: list) -> str:
    """Write the run's accepted pairs (``edges``: row numbers into ``ids``, distances, rule) with the
    digest of ``ids``; its store path."""
    if len(ids) >= 2**31:
        raise ValueError(f"{len(ids):,} products: kept pair rows are int32")
    names = list(dict.fromkeys(rule for *_, rule in edges))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt, copy=False) if xs else np.zeros(0, dt))
    rule = cat([np.full(len(e[0]), names.index(e[3]), np.int8) for e in edges], np.int8)
    table = pa.table({"left": cat([e[0] for e in edges], np.int32), "right": cat([e[1] for e in edges], np.int32),
                      "rule": pa.DictionaryArray.from_arrays(rule, pa.array(names, pa.string())),
                      "distance": cat([e[2] for e in edges], np.float64)}, schema=SCHEMA)
    table = table.replace_schema_metadata({IDS: ids_digest(ids).encode(), FORMAT_KEY: str(FORMAT).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    rel = f"{FOLDER}/edges-{hashlib.sha256(data).hexdigest()[:16]}.parquet"
    store.write_bytes(rel, data)
    return rel


def prune(store, keep: tuple[str, ...]) -> None:
    """Remove the kept files under :data:`FOLDER` other than ``keep`` (store paths): call it after the
    state naming ``keep`` is saved (a killed run's files are removed by the next complete run)."""
    mine = {rel.rsplit("/", 1)[-1] for rel in keep}
    with store.kept(FOLDER, lazy=("*",)) as folder:  # on object storage: listed, never downloaded
        for name in folder.names("*"):
            if name not in mine:
                folder.remove(name)


def load_edges(store, rel) -> pa.Table | None:
    """The kept pairs at ``rel`` (None: no file, not readable as one, or of another :data:`FORMAT`)."""
    data = store.read_bytes(rel) if isinstance(rel, str) else None
    if data is None:
        return None
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError):
        return None
    meta = table.schema.metadata or {}
    return table if table.schema.equals(SCHEMA) and IDS in meta and meta.get(FORMAT_KEY) == str(FORMAT).encode() else None


def pair_ids(table: pa.Table, ids: pa.Array) -> pa.Table:
    """Kept pairs (:func:`load_edges`) as ``left_id``, ``right_id``, ``rule``, ``distance``: ``ids`` are
    the products of the run that kept them (its kept inputs' ids, :func:`.kept_inputs_read.kept_ids`)."""
    return pa.table({"left_id": ids.take(table.column("left")), "right_id": ids.take(table.column("right")),
                     "rule": table.column("rule").cast(pa.string()), "distance": table.column("distance")})


def changed_ids(store, watermarks: dict) -> tuple[pa.Array, pa.Table]:
    """Products with a ``products``, ``specs`` or ``media`` row written above ``watermarks`` (distinct),
    and ``store.changed("products", ...)`` (its new and re-written products, with their merchant_id
    and title). A changed media row's product is its newest row's (``changed``'s ``columns``: read
    from the parts written since, not from the whole media view), and the specs' and media's
    ``is_new`` is not looked up (``new=False``: no key sidecar of their older parts is read)."""
    # with the rows' merchant and title: the incremental read takes them from here
    products = store.changed("products", int(watermarks.get("products", 0)), columns=("merchant_id", "title"))
    found = [products.column("product_id").combine_chunks(),
             store.changed("specs", int(watermarks.get("specs", 0)), new=False).column("product_id").combine_chunks(),
             store.changed("media", int(watermarks.get("media", 0)), columns=("product_id",),
                           new=False).column("product_id").combine_chunks()]
    return pc.unique(pa.chunked_array(found, type=pa.string()).combine_chunks()).drop_null(), products


def plan(store, state: dict, ids: pa.Array, changed: pa.Array, rules: tuple[str, ...],
         full_share: float, prev: tuple | None = None) -> tuple[Plan | None, str]:
    """The changed rows (``changed``: their ids) and the kept pairs that stand, or ``(None, why the run
    is a full one)``. ``prev``: the last run's product ids (its kept inputs') and each one's row in
    ``ids`` (-1: gone), which place the kept pairs' row numbers (their digest checked)."""
    table = load_edges(store, state.get("edges"))
    if table is None:
        return None, "no kept pairs"
    n = len(ids)
    touching = np.zeros(n, dtype=bool)
    rows = pc.index_in(changed, value_set=ids).drop_null().to_numpy()
    touching[rows.astype(np.int64)] = True
    if n and touching.sum() > full_share * n:
        return None, f"{int(touching.sum()):,} of {n:,} products changed, over dedup.full_share ({full_share:g})"
    if prev is None:
        return None, "kept inputs not read: the kept pairs cannot be placed"
    if table.schema.metadata[IDS].decode() != ids_digest(prev[0]):
        return None, "the kept pairs do not fit the kept inputs"
    at = np.asarray(prev[1], dtype=np.int64)
    was_left, was_right = (table.column(c).to_numpy() for c in ("left", "right"))
    left, right = at[was_left], at[was_right]
    gone = (left < 0) | (right < 0)
    removed = int(np.count_nonzero(np.bincount(np.r_[was_left[left < 0], was_right[right < 0]], minlength=1)))
    left, right = np.maximum(left, 0), np.maximum(right, 0)
    stand = ~gone & ~touching[left] & ~touching[right]
    dist = table.column("distance").to_numpy()
    rule_col = table.column("rule").unify_dictionaries().combine_chunks()
    # each pair's rule as its place in rules: the file's few names looked up, not one string a pair
    places = pc.fill_null(pc.index_in(rule_col.dictionary, value_set=pa.array(list(rules), pa.string())), -1)
    rule = np.r_[places.to_numpy(), -1][rule_col.indices.to_numpy()] if len(rule_col) else np.zeros(0, np.int64)
    kept = []
    for k, r in enumerate(rules):
        sel = stand & (rule == k)
        if sel.any():
            kept.append((left[sel], right[sel], dist[sel], r))
    return Plan(touching, kept, int((~stand).sum()), removed), ""


def crossing(keys: np.ndarray, rows: np.ndarray, touching: np.ndarray, cap: int,
             sel: np.ndarray | None = None, presorted: bool = False) -> np.ndarray:
    """The rows (``rows``, keyed by ``keys``) of buckets over ``cap`` holding a changed row, where the
    changed rows took the bucket over the cap or one of them is its first row: a full run links
    such a bucket's rows to its first row only, so their kept pairs must be searched again.
    ``sel``: the keys of buckets holding a changed row, when the caller has them (a bool mask);
    ``presorted``: ``keys`` are sorted, and a key's ``rows`` too."""
    from .key_runs import member

    mine = touching[rows]
    if not mine.any():
        return np.zeros(0, dtype=np.int64)
    if sel is None:
        sel = member(keys, arrays.unique(keys[mine]))
    k, r, t = keys[sel], rows[sel], mine[sel]
    if not presorted:
        order = np.lexsort((r, k))  # by key, then row: a bucket's first row is its smallest
        k, r, t = k[order], r[order], t[order]
    start = np.r_[True, k[1:] != k[:-1]]
    group = np.cumsum(start) - 1
    size = np.bincount(group)
    clean = np.bincount(group, weights=~t)
    star = (size > cap) & ((clean <= cap) | t[start])
    return r[star[group]]


def over_cap(inp, titles, a, plan: Plan) -> np.ndarray:  # inp: reads.Inputs, titles: near.LSHIndex
    """``plan.touching`` and the rows of buckets (exact keys, pHash bands, title bands) that changed
    rows turned into stars (:func:`crossing`); the plan's kept pairs of those rows are dropped."""
    touching, cap = plan.touching, a.bucket_cap
    extra = []
    for _, codes in inp.exact_keys():
        rows = np.flatnonzero(codes >= 0)
        extra.append(crossing(codes[rows], rows, touching, cap))
    rows = np.flatnonzero(inp.has_phash)
    for j in range(a.phash_bands):
        extra.append(crossing(phash._band(inp.phash[rows], j, a.phash_bands)[0], rows, touching, cap))
    keys = titles._keys[0] if len(titles._keys) == 1 else np.concatenate(titles._keys)
    rows = np.flatnonzero(np.concatenate(titles._valid))
    for j in range(keys.shape[1]):
        extra.append(crossing(keys[rows, j], rows, touching, cap))
    extra = np.concatenate(extra)
    if not len(extra):
        return touching
    touching = touching.copy()
    touching[extra] = True
    kept = []
    for left, right, d, rule in plan.kept:
        keep = ~(touching[left] | touching[right])
        plan.dropped += int((~keep).sum())
        kept.append((left[keep], right[keep], d[keep], rule))
    plan.kept, plan.touching = kept, touching
    return touching


def reach(touching: np.ndarray, edges: list) -> np.ndarray:
    """``touching`` and the rows an edge joins to one of them."""
    out = touching.copy()
    for left, right, _, _ in edges:
        out[left[touching[right]]] = True
        out[right[touching[left]]] = True
    return out

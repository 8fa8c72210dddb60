"""What pools and its incremental run share: the query sample, the gallery's rows, a block of hits as
``pools`` rows, and the pools of products that are no longer queries dropped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from ...errors import UserError
from .input_state import part_name

KEPT_NAME = "pools"  # derived/pools: the kept folder of the vectors, lists, markers and part index


class PoolsError(UserError, ValueError):
    """Pools cannot start (unknown split version, no products); one line for the user."""


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


class Rows:
    """Rows ``rows`` of a matrix, gathered slice by slice (a block of queries is read when searched)."""

    def __init__(self, matrix: np.ndarray, rows: np.ndarray):
        self.matrix, self.rows = matrix, rows
        self.shape = (len(rows), matrix.shape[1])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.asarray(self.matrix[self.rows[key]], np.float32)


def gallery_matrix(vectors: np.ndarray, g_rows: np.ndarray, work: Path) -> np.ndarray:
    """The gallery's vectors: the memory-map itself when the gallery is every product, else its rows
    copied chunk by chunk into a memory-map of their own (never the whole gallery in memory)."""
    if len(g_rows) == len(vectors) and (len(g_rows) == 0 or (g_rows == np.arange(len(vectors))).all()):
        return vectors
    path = work / "gallery.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(g_rows), vectors.shape[1]))
    for s in range(0, len(g_rows), 32_768):
        out[s:s + 32_768] = vectors[g_rows[s:s + 32_768]]
    out.flush()
    return out


def pool_table(hits, q_ids: pa.Array, g_ids: pa.Array, embedder_label: str, run_id: str) -> pa.Table:
    """The pools rows of one block of hits, built column-wise in Arrow (no Python object per row)."""
    b, k = hits.scores.shape
    valid = np.isfinite(hits.scores)
    qi = np.repeat(np.arange(b, dtype=np.int64) + hits.start, k).reshape(b, k)[valid]
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), (b, 1))[valid]
    n = len(qi)
    return pa.table({
        "query_id": q_ids.take(pa.array(qi)), "candidate_id": g_ids.take(pa.array(hits.index[valid])),
        "rank": pa.array(ranks, pa.int32()), "score": pa.array(hits.scores[valid].astype(np.float64).round(6)),
        "embedder": pa.repeat(pa.scalar(embedder_label), n) if n else pa.array([], pa.string()),
        "run_id": pa.repeat(pa.scalar(run_id), n) if n else pa.array([], pa.string()),
    })


def drop_stale(store, queries: list[str], work: Path) -> int:
    """Remove the pools of products that are no longer queries; returns how many queries went.

    Reads only the ``query_id`` column of each part, once per part: parts are immutable and named
    by their write, so the distinct query ids of a part are kept in ``derived/pools/parts.json``
    and a re-run reads none of them again. The table is rewritten (streamed, with DuckDB's memory
    capped and spilling to ``store.work_dir("pools", "spill")``: ``derived/pools/spill`` on a folder
    store) only when some query is stale.
    """
    present = pool_queries_present(store, work)
    keep = set(queries)
    stale = present - keep
    if not stale:
        return 0
    con = store.connect(need=("pools",), only=("pools",))
    spill = store.work_dir(KEPT_NAME, "spill")
    try:
        con.execute("SET memory_limit = '1GB'")
        con.execute(f"SET temp_directory = '{str(spill).replace(chr(39), chr(39) * 2)}'")
        con.execute("SET preserve_insertion_order = false")
        con.register("keep", pa.table({"query_id": pa.array(queries, pa.string())}))
        reader = con.sql("SELECT pools.* FROM pools SEMI JOIN keep USING (query_id)").to_arrow_reader(262_144)
        store.replace("pools", reader)
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    pool_queries_present(store, work)  # index the new parts now: the next run reads none of them
    return len(stale)


def pool_queries_present(store, work: Path) -> set[str]:
    """The distinct query ids in the pools table's parts (each part read once, its ids cached)."""
    index_path = work / "parts.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    parts = store.parts("pools")
    names = {part_name(p) for p in parts}
    new = [p for p in parts if part_name(p) not in index]
    if new:
        files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in new) + "]"
        # no views: reads these parts (on object storage through s3fs); a cursor of the read database
        con = store.connect(need=(), only=(), cursor=True)
        try:
            rows = con.execute(f"SELECT DISTINCT filename, query_id FROM read_parquet({files}, filename = true)").fetchall()
        finally:
            con.close()
        for p in new:
            index[part_name(p)] = []
        by_path = {str(p): part_name(p) for p in new}
        for f, q in rows:
            index[by_path.get(f, part_name(f))].append(q)
    index = {name: qs for name, qs in index.items() if name in names}  # parts compacted or replaced away
    tmp = index_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index))
    os.replace(tmp, index_path)
    return {q for qs in index.values() for q in qs}

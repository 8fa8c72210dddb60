"""A split version's per-product rows: what the pipeline's next version is built from incrementally.

``derived/splits/<version>/rows-<run_id>.parquet`` (the manifest's ``rows`` names it, so a file of a
killed build is never read): one row per product of the store when the version was built, with
what placed it and what its manifest counted:

``product_id, pool`` (fine, cls, coarse, train; null: held out), ``split`` (null: held out or
excluded), ``in_subset``, ``cat_c`` / ``cat_k`` (its coarse and classification label keys), ``grp``
(its duplicate group's key, null when alone), ``g_n`` (the group's size), ``c0..c3`` (the limbs of
``md5(seed:product_id)``: its checksum term) and the modality flags ``image, caption, table, video,
audio``. The next version takes the rows of every product whose inputs did not change from here
(``incremental.py``); the manifest's figures are aggregates of them (:func:`rows_stats`).
"""

from __future__ import annotations

import io

from .manifest import FLAG_COLUMNS, MODALITIES, aggregate, flag_ctes, flag_joins

ROWS_TABLE = "split_rows"  # temp table of a build: the version's rows as written to the file
COLUMNS = ("product_id", "pool", "split", "in_subset", "cat_c", "cat_k", "grp", "g_n", "c0", "c1", "c2", "c3",
           *MODALITIES)


def all_rows(con, flags: str | None = None) -> None:
    """Temp table ``split_rows`` from ``split_pooled`` and ``split_roles``, with the modality flags of
    ``flags`` (a table of product_id and the flags, one row per product), else read for every product."""
    from .build import ROLE_SPLIT

    cols = ", ".join(f'f."{m}"' for m in MODALITIES) if flags else FLAG_COLUMNS
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ROWS_TABLE} AS
        {'' if flags else 'WITH ' + flag_ctes()}
        SELECT p.product_id, p.pool,
               CASE WHEN p.pool = 'train' THEN 'train' WHEN r.excluded THEN NULL ELSE r.split END AS split,
               p.pool = 'train' AND p.in_subset AS in_subset, p.cat_c, p.cat_k, p.grp, p.g_n::BIGINT AS g_n,
               p.c0, p.c1, p.c2, p.c3, {cols}
        FROM split_pooled p
        LEFT JOIN (SELECT product_id, excluded, {ROLE_SPLIT} AS split FROM split_roles) r ON r.product_id = p.product_id
        {f'LEFT JOIN {flags} f ON f.product_id = p.product_id' if flags else flag_joins('p')}
    """)


def rows_stats(con, table: str, subset: bool = True) -> dict:
    """The manifest's per-split entries of a rows table (subset rows counted from ``in_subset``)."""
    cols = "cat_c AS cat, c0, c1, c2, c3, " + ", ".join(f'"{m}"' for m in MODALITIES)
    sql = f"SELECT split, {cols} FROM {table} WHERE split IS NOT NULL"
    if subset:
        sql += f" UNION ALL SELECT 'subset', {cols} FROM {table} WHERE in_subset"
    return aggregate(con, sql)


def rows_rel(version: str, run_id: str) -> str:
    from .manifest import manifest_rel

    return manifest_rel(version).rsplit("/", 1)[0] + f"/rows-{run_id}.parquet"


def write_rows(store, con, version: str, run_id: str) -> str:
    """Write ``split_rows`` to the version's rows file (whole: a temp file and a rename, or one PUT); its name."""
    import pyarrow.parquet as pq

    table = con.sql(f"SELECT {', '.join(repr_col(c) for c in COLUMNS)} FROM {ROWS_TABLE}").to_arrow_table()
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    rel = rows_rel(version, run_id)
    store.write_bytes(rel, buf.getvalue())
    return rel.rsplit("/", 1)[1]


def read_rows(store, version: str, manifest: dict):
    """The rows file a version's manifest names, as Arrow (None: the manifest names none, or it is gone)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = manifest.get("rows")
    if not isinstance(name, str) or "/" in name or not name.startswith("rows-"):
        return None
    data = store.read_bytes(rows_rel(version, name[len("rows-"):-len(".parquet")]))
    if data is None:
        return None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError):
        return None
    return table if tuple(table.column_names) == COLUMNS else None


def repr_col(name: str) -> str:
    return f'"{name}"'

"""What a pipeline version keeps for its successor: one row per product, ``derived/splits/<version>/carry.arrow``.

A pipeline run's next version (``v1`` -> ``v2``) is built from ``v1``'s carry and what the store says
changed since (``incremental.build_next``) instead of from every table. Per product the carry holds
what its placement and the manifest's figures were made from:

- ``code``: its split in the version (an index of :data:`~.plan.EXCLUSIVE`), :data:`HELD_OUT` (in no
  split), :data:`EXCLUDED` (a classification group's member outside the sampled categories), or
  :data:`ABSENT` for a row that is no product of the store (its ``dedup`` row or modality rows came
  first: kept so that the product, once it comes, is placed as a full build places it);
- ``cat3``: its unified label at level 3 (``labels.cat_key_sql``; the other levels are masks of it);
- ``lkey``: the ``label_map`` key it is looked up by, ``platform`` and ``raw_path`` joined by ``\\x1f``;
- ``dgid``: its ``dedup.group_id`` (a group of two or more store products is a duplicate group);
- ``flags``: its modalities (:data:`FLAGS`) and whether it is in ``subset``.

The file (Arrow IPC, lz4: 3 MB at 100k products, read in ~5 ms where Parquet took 20-50 ms) is written
before the manifest and names the run that wrote both (its schema metadata): a carry whose run is not
the manifest's (a version rebuilt since, a run killed between them) is not read, and the next version
is built in full.
"""

from __future__ import annotations

import io

import pyarrow as pa

from ..storage.main_image import is_main
from ..storage.names import check_name
from .labels import PATH_SEP, cat_key_sql
from .plan import EXCLUSIVE

CARRY = "carry.arrow"
HELD_OUT, EXCLUDED, ABSENT = -1, -2, -3
FLAGS = {"image": 1, "caption": 2, "table": 4, "video": 8, "audio": 16}
SUBSET = 32  # flags bit: in subset (train products only)
LKEY_SEP = "\x1f"
KEYS = pa.dictionary(pa.int32(), pa.string())
SCHEMA = pa.schema([("product_id", pa.string()), ("code", pa.int8()), ("cat3", pa.int64()), ("lkey", KEYS),
                    ("dgid", KEYS), ("flags", pa.uint8())])
_ROLE_SPLIT = ("CASE r.pool WHEN 'coarse' THEN CASE WHEN r.query THEN 'query-c' ELSE 'gallery-c' END "
               "WHEN 'fine' THEN CASE WHEN r.query THEN 'query-fg' ELSE 'gallery-fg' END "
               "WHEN 'cls' THEN CASE WHEN r.query THEN 'cls-test' ELSE 'cls-train' END END")
CODE_SQL = "CASE {col} " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(EXCLUSIVE)) + " END"


def carry_rel(version: str) -> str:
    return f"derived/splits/{check_name('split version', version)}/{CARRY}"


def lkey_sql(alias: str) -> str:
    """SQL of a product's ``lkey`` (as the build's label join matches it)."""
    return (f"coalesce({alias}.platform, '') || chr(31) || "
            f"coalesce(array_to_string({alias}.category_path, '{PATH_SEP}'), '')")


def lkey_of(platform: str | None, path: list | None) -> str:
    """A product's ``lkey`` in Python (``array_to_string`` leaves null elements out)."""
    return f"{platform or ''}{LKEY_SEP}{PATH_SEP.join(x for x in path if x is not None) if path is not None else ''}"


# per product id: m (its ok media: a main image, a video, an audio), c (an ok, non-blank caption), t (a
# spec row): the modalities of the manifest and of the carry's flags, one definition for both
MODALITY_CTES = """m AS (
            SELECT product_id,
                   bool_or(""" + is_main() + """) AS image,
                   bool_or(kind = 'video') AS video, bool_or(kind = 'audio') AS audio
            FROM media WHERE status = 'ok' GROUP BY product_id
        ), c AS (
            SELECT DISTINCT product_id FROM captions WHERE status = 'ok' AND coalesce(text, '') <> ''
        ), t AS (
            SELECT DISTINCT product_id FROM specs
        )"""


def flags_table_sql() -> str:
    """SQL of (product_id, flags) for every product id with a modality (the manifest's definitions)."""
    f = FLAGS
    return f"""
        WITH {MODALITY_CTES}, mc AS (
            SELECT coalesce(m.product_id, c.product_id) AS product_id,
                   CASE WHEN m.image THEN {f['image']} ELSE 0 END + CASE WHEN m.video THEN {f['video']} ELSE 0 END
                   + CASE WHEN m.audio THEN {f['audio']} ELSE 0 END
                   + CASE WHEN c.product_id IS NOT NULL THEN {f['caption']} ELSE 0 END AS flags
            FROM m FULL JOIN c ON c.product_id = m.product_id
        )
        SELECT coalesce(mc.product_id, t.product_id) AS product_id,
               (coalesce(mc.flags, 0) + CASE WHEN t.product_id IS NOT NULL THEN {f['table']} ELSE 0 END)::UTINYINT AS flags
        FROM mc FULL JOIN t ON t.product_id = mc.product_id
    """


def carry_sql(level: int = 3) -> str:
    """SQL of a full build's carry (after ``roles.assign`` and the temp table ``split_flags``): every product
    of ``split_pooled`` with its code, then the ids with a ``dedup`` row or a modality that are no product."""
    code = CODE_SQL.format(col="a.split")
    # as roles.assigned_view places them: a role whose `excluded` is null (a member without a label of a
    # sampled group) is in no split and not counted as excluded
    return f"""
        WITH a AS (
            SELECT p.product_id, p.cat3, p.lkey, p.in_subset AND p.pool = 'train' AS sub,
                   CASE WHEN p.pool = 'train' THEN 'train' WHEN NOT r.excluded THEN {_ROLE_SPLIT} END AS split,
                   CASE WHEN r.excluded THEN {EXCLUDED} ELSE {HELD_OUT} END AS other
            FROM split_pooled p LEFT JOIN split_roles r ON r.product_id = p.product_id
        )
        SELECT a.product_id, coalesce({code}, a.other)::TINYINT AS code, a.cat3, a.lkey, d.group_id AS dgid,
               (coalesce(f.flags, 0) + CASE WHEN a.sub THEN {SUBSET} ELSE 0 END)::UTINYINT AS flags
        FROM a LEFT JOIN dedup d ON d.product_id = a.product_id LEFT JOIN split_flags f ON f.product_id = a.product_id
        UNION ALL
        SELECT coalesce(d.product_id, f.product_id), {ABSENT}::TINYINT, NULL, NULL, d.group_id, coalesce(f.flags, 0)::UTINYINT
        FROM (SELECT * FROM dedup WHERE product_id NOT IN (SELECT product_id FROM split_base)) d
        FULL JOIN (SELECT * FROM split_flags WHERE flags > 0 AND product_id NOT IN (SELECT product_id FROM split_base)) f
          ON f.product_id = d.product_id
    """


def cat3_sql(alias: str) -> str:
    return cat_key_sql(3, alias)


def write_carry(store, version: str, table: pa.Table, run_id: str) -> None:
    """Write a version's carry whole (a local store: temp file, rename; object storage: one PUT)."""
    import pyarrow.feather as feather

    table = table.cast(SCHEMA).combine_chunks().replace_schema_metadata({"m5data.run_id": run_id})
    buf = io.BytesIO()
    feather.write_feather(table, buf, compression="lz4", chunksize=max(1, len(table)))
    store.write_bytes(carry_rel(version), buf.getvalue())


def read_carry(store, version: str, run_id: str | None) -> pa.Table | None:
    """A version's carry when the run that wrote its manifest (``run_id``) wrote it, else None."""
    import pyarrow.feather as feather

    try:
        data = store.read_bytes(carry_rel(version))
        if data is None or not run_id:
            return None
        table = feather.read_table(io.BytesIO(data))
    except (OSError, ValueError, pa.ArrowException):
        return None
    meta = table.schema.metadata or {}
    if meta.get(b"m5data.run_id", b"").decode() != run_id or not table.schema.equals(SCHEMA, check_metadata=False):
        return None
    return table

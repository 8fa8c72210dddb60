"""Sample digests: a hash of everything an export sample is made of, and which samples to hash.

A full export hashes every sample of its version (:func:`digest_table`, one DuckDB query). An
incremental one hashes only the samples that may differ from its base's (:func:`touched_ids`): the
products with a row of ``products``, ``specs``, ``captions``, ``media`` or ``dedup`` written since the
base export (``store.changed`` above the watermarks its state kept), and those of a category whose
labels differ from the ones the base was made with (``_labels.parquet`` beside its sample list:
:func:`label_hashes`); the members new to the version are hashed too (``incremental.compare``).
Every other sample keeps its base digest: no row it is made of was written since.
"""

from __future__ import annotations

import pyarrow as pa

DIGEST = "sql-3"  # how sample digests are made: a base whose digests were made another way is not built on
# (sql-3: the header gained the main image's XMP rights)

# One row per member in export order: a 64-bit hash of every input its sample is made of (the header
# columns of SAMPLE_HEADER_SQL, its spec rows and the media rows the export streams read, each row
# with its position), as DuckDB computes it: no sample is assembled in Python to know whether it
# changed. A product's rows are combined by a sum of their hashes (their order is in each row's
# hash), so no string of them is built or sorted: 2.4x faster than an md5 of their JSON at 100k.
# The hash is DuckDB's: another DuckDB version may hash otherwise, and then every sample hashed
# again is written once again (never one left unchanged by mistake).
_DIGEST_SQL = """
WITH m AS ({members}),
ids AS (SELECT DISTINCT product_id FROM m),
s AS (
{header}
),
sp AS (SELECT product_id, sum(hash(position, coalesce(property, ''), coalesce(value, ''))::HUGEINT) AS h
       FROM specs WHERE product_id IN (SELECT product_id FROM ids) GROUP BY product_id),
md AS (SELECT product_id, sum(hash(kind, blob, mime, position, media_id)::HUGEINT) AS h
       FROM media WHERE product_id IN (SELECT product_id FROM ids) AND {media_filter} GROUP BY product_id)
SELECT m.split, m.product_id,
       CASE WHEN s.product_id IS NULL THEN NULL ELSE CAST(hash(m.split, s, sp.h, md.h) AS VARCHAR) END AS digest
FROM m LEFT JOIN s ON s.product_id = m.product_id
LEFT JOIN sp ON sp.product_id = m.product_id
LEFT JOIN md ON md.product_id = m.product_id
ORDER BY {order}
"""

# the tables whose rows written since the base export name the products to hash again (by product_id)
TOUCHING = ("products", "specs", "captions", "media", "dedup", "optouts", "licenses")
LABEL_TABLES = ("label_map", "taxonomy")  # rewritten whole by align: compared per category instead
_DIGESTS_SCHEMA = pa.schema([("split", pa.string()), ("product_id", pa.string()), ("digest", pa.string())])
LABELS_SCHEMA = pa.schema([("platform", pa.string()), ("raw_path", pa.string()), ("h", pa.uint64())])


def digest_table(con, members_sql: str, order: str) -> pa.Table:
    """``(split, product_id, digest)`` of the members ``members_sql`` (a ``(split, product_id)``
    query) that are in ``products``, ordered by ``order`` (SQL over ``m.split``, ``m.product_id``)."""
    import pyarrow.compute as pc

    from .members import MEDIA_FILTER
    from .sample_rows import SAMPLE_HEADER_SQL

    sql = _DIGEST_SQL.format(members=members_sql, header=SAMPLE_HEADER_SQL, media_filter=MEDIA_FILTER, order=order)
    # the query and its batched read as they were: an inner join to s read as one Arrow table ran out of
    # the stream connection's 2 GB at 1M products
    batches = [rb.filter(pc.is_valid(rb.column(2))) for rb in con.sql(sql).to_arrow_reader(65_536)]
    return pa.Table.from_batches(batches, _DIGESTS_SCHEMA)


# tables whose rows the digests of a few products read by product (a product is a group of each)
_BY_PRODUCT = ("products", "specs", "captions", "dedup", "licenses")
# past this share of the members, the digests read the tables' views whole (a scan, not lookups)
FEW = 0.25


def few_rows(store, members: pa.Table):
    """A connection of its own holding, as tables of the names the sample SQL reads, just the rows of
    the products of ``members`` (``products``, ``specs``, ``captions``, ``dedup`` from the parts that
    hold them, ``store.read_groups``; their ``media`` by ``store.read_of``), and the views of the label
    tables. The views' newest-row windows over every part cost most of an incremental export at 1M
    (13k changed products: the digest query and the three sample streams each filtered the tables
    after their windows); the digests and the samples of the new shards are read from here."""
    import pyarrow.compute as pc

    ids = pc.unique(members.column("product_id").combine_chunks()) if members.num_rows else pa.array([], pa.string())
    con = store.connect(need=LABEL_TABLES, only=LABEL_TABLES)
    try:
        found = {table: store.read_groups(table, ids.to_pylist()) for table in _BY_PRODUCT}
        found["media"] = store.read_of("media", "product_id", ids)
        found["optouts"] = store.read_of("optouts", "product_id", ids)  # the header's opted-out filter
        for table, rows in found.items():
            con.register("export_rows", rows)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM export_rows")
            con.unregister("export_rows")
    except BaseException:
        con.close()
        raise
    return con


def few_digests(con, members: pa.Table, order: str) -> pa.Table:
    """:func:`digest_table` of the ``members`` rows (split, product_id) on ``con`` (:func:`few_rows`)."""
    con.register("export_members", members.select(["split", "product_id"]))
    try:
        return digest_table(con, "SELECT split, product_id FROM export_members", order)
    finally:
        con.unregister("export_members")


def label_hashes(con) -> pa.Table:
    """Per category key ``(platform, raw_path)`` of ``label_map`` (``raw_path``: the md5 of the path, which
    is shop text), a hash of the label columns a sample of that category reads
    (:data:`~m5data.export.sample_rows.LABEL_HASH_SQL`)."""
    from .sample_rows import LABEL_HASH_SQL

    return con.sql(LABEL_HASH_SQL).to_arrow_table().cast(LABELS_SCHEMA)


def touched_ids(store, con, since: dict, marks: dict, base_labels: pa.Table | None,
                labels: pa.Table) -> pa.Table | None:
    """The products (a ``product_id`` table, maybe with repeats) whose samples may differ from the base
    export's, whose state kept the watermarks ``since``; None where that cannot be told (hash all).

    Args:
        con: a connection with the views of the export's tables (``products``, ``dedup``).
        marks: the watermarks of this run (read before any of its reads).
        base_labels: the base's :func:`label_hashes` (None: its folder has none).
        labels: this run's.
    """
    if any(t not in since for t in TOUCHING + LABEL_TABLES):
        return None
    moved = {t for t in TOUCHING + LABEL_TABLES if int(marks[t]) > int(since[t])}
    if base_labels is None and moved & set(LABEL_TABLES):
        return None
    found = []
    for table in TOUCHING:
        if table in moved:  # new=False: whether a group is new is not asked (no key sidecar of the older parts read)
            columns = ("product_id",) if table in ("media", "optouts") else ()  # their rows' products
            found.append(store.changed(table, int(since[table]), columns, new=False).column("product_id"))
    if "dedup" in moved:
        # a whole rewrite of dedup (a full run) may leave a product out: its group went with the row,
        # and no row of it was written. Those without a row now are hashed (few: dedup has every product)
        found.append(con.sql("SELECT product_id FROM products ANTI JOIN dedup USING (product_id)"
                             ).to_arrow_table().column("product_id"))
    if moved & set(LABEL_TABLES):
        found.append(_relabelled(con, base_labels, labels))
    chunks = [c for col in found for c in col.cast(pa.string()).chunks]
    return pa.table({"product_id": pa.chunked_array(chunks, pa.string())})


def _relabelled(con, was: pa.Table, now: pa.Table) -> pa.ChunkedArray:
    """The products of the categories whose label hash differs between ``was`` and ``now`` (or that
    one of them lacks); no read of ``products`` when none does (a rewrite with the same labels)."""
    con.register("export_labels_was", was.cast(LABELS_SCHEMA))
    con.register("export_labels_now", now.cast(LABELS_SCHEMA))
    try:
        moved = con.sql("""SELECT coalesce(a.platform, b.platform) AS platform, coalesce(a.raw_path, b.raw_path) AS raw_path
                           FROM export_labels_was a FULL JOIN export_labels_now b USING (platform, raw_path)
                           WHERE a.h IS DISTINCT FROM b.h""").to_arrow_table()
    finally:
        con.unregister("export_labels_was")
        con.unregister("export_labels_now")
    if not moved.num_rows:
        return pa.chunked_array([], pa.string())
    con.register("export_relabelled", moved)
    try:
        return con.sql("""SELECT p.product_id FROM products p JOIN export_relabelled c
                          ON c.platform = p.platform AND c.raw_path = md5(array_to_string(p.category_path, ' > '))"""
                       ).to_arrow_table().column("product_id")
    finally:
        con.unregister("export_relabelled")


__all__ = ["DIGEST", "FEW", "few_digests", "few_rows", "LABEL_TABLES", "LABELS_SCHEMA", "TOUCHING", "digest_table", "label_hashes", "touched_ids"]

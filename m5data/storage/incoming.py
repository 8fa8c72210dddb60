"""The rows a write brings to a table, as both backends' ``write`` takes them: cast to the table's schema,
less the keys the table holds already (``if_absent``: a re-crawl must not reset a downloaded media row),
with their content tag (a repeat of the table's newest write is a no-op). A helper over the store's own
``parts`` and ``connect``, shared by :class:`~m5data.storage.writing.Writing` and
:class:`~m5data.storage.s3store.S3Store`."""

from __future__ import annotations

import pyarrow as pa

from .parts import conform, content_hash
from .schema import TableSpec, table_spec


def incoming(store, name: str, data, if_absent: bool) -> tuple[TableSpec, pa.Table, str] | None:
    """``(spec, rows, tag)`` of a write: the rows cast to the table's schema (without existing keys when
    ``if_absent``) and their content tag (a repeat of the newest write is a no-op); None when no row is left."""
    spec = table_spec(name)
    table = conform(spec, data)
    table = _drop_existing(store, spec, table) if if_absent and len(table) else table
    return (spec, table, content_hash(table)[:16]) if len(table) else None


def _drop_existing(store, spec: TableSpec, table: pa.Table) -> pa.Table:
    if not store.parts(spec.name):
        return table
    # a cursor of the process's read database (~2 ms; a database of its own cost ~20 ms a write)
    con = store.connect(need=(spec.name,), only=(spec.name,), cursor=True)
    try:
        con.register("incoming", table)  # registered on this cursor only
        keys = " AND ".join(f"t.{k} = i.{k}" for k in spec.key)
        return con.sql(
            f"SELECT i.* FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM {spec.name} t WHERE {keys})"
        ).to_arrow_table().cast(spec.schema)
    finally:
        con.close()

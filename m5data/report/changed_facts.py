"""The facts of the groups a report run reads again: those of the changed groups, from the parts written since
the last run only (:class:`Recent`), and the groups of the products the egress gate withholds since, whose kept
facts are taken away (:func:`with_hidden`). No fact is made of a withheld product (:data:`SHOWN`)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# no fact of a product the egress gate withholds (``report_withheld``, registered where the facts are read)
SHOWN = "(product_id IS NULL OR product_id NOT IN (SELECT product_id FROM report_withheld))"


def with_hidden(changed: pa.Table | None, hidden: pa.Table | None, group: str) -> pa.Table:
    """The changed groups (``group``, ``is_new``) with the ``hidden`` ones (kept facts: not new)."""
    parts = []
    if changed is not None:
        changed = changed.select([group, "is_new"])
        if hidden is not None and hidden.num_rows:
            changed = changed.filter(pc.invert(pc.is_in(changed.column(group), hidden.column(group))))
        parts.append(changed)
    if hidden is not None and hidden.num_rows:
        keys = hidden.column(group).combine_chunks()
        parts.append(pa.table({group: keys, "is_new": pa.array([False] * len(keys), pa.bool_())}))
    return pa.concat_tables([t.cast(parts[0].schema) for t in parts])


class Recent:
    """Reads the facts of changed groups from the parts written since (:meth:`facts`), on one
    connection of its own made on first use: its temp views of the tables must not replace the
    views of the store's connections."""

    def __init__(self, store, large, gone: frozenset[str] = frozenset()):
        self.store, self.large, self.con = store, large, None
        self.gone = pa.table({"product_id": pa.array(sorted(gone), pa.string())})

    def every(self, sql: str) -> pa.Table:
        """Every fact of ``sql`` (none of the withheld products)."""
        con = self.large()
        con.register("report_withheld", self.gone)
        try:
            return con.sql(sql.replace("{where}", f"WHERE {SHOWN}")).to_arrow_table()
        finally:
            con.unregister("report_withheld")

    def facts(self, table: str, sql: str, since: int, keys: pa.Table) -> pa.Table:
        """The rows of ``sql`` (the facts of the changed groups ``keys``), read from the parts written
        since ``since`` only: a group written since has its newest write there whole, so the view over
        those parts gives its rows as the table's view does (the other parts are not scanned). A store on
        object storage reads its view of every part (``large()``)."""
        from ..storage.readdb import read_cursor
        from ..storage.schema import table_spec

        parts = self.store.parts_since(table, since)
        if parts is None:  # the parts do not say when they were written: the view of every part
            con = self.large()
        else:
            if self.con is None:  # a cursor of the process's read database: its TEMP views are its own
                self.con = read_cursor()
            con = self.con
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS "
                        f"{self.store.read_sql(con, table_spec(table), parts=parts)}")
        con.register("report_keys", keys)
        con.register("report_withheld", self.gone)
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.unregister("report_keys")
            con.unregister("report_withheld")

    def close(self) -> None:
        if self.con is not None:
            self.con.close()

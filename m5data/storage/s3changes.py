"""What changed in a table of the object store since a watermark (``changes.py`` is the folder store's):
the watermark is the newest log entry, ``changed`` reads every live part, and with no key sidecars a
read by group is a read of the view filtered to those groups."""

from __future__ import annotations

import pyarrow as pa

from .changes import as_changed, changed_sql, check_columns, empty_changed
from .schema import table_spec
from .views import sql_str


class ObjectChanges:
    """The ``changes`` reads of :class:`~.s3store.S3Store` (its log, its parts' rows with their ``_seq``); first
    among its bases: it overrides :class:`~.reading.Reading`'s counts by key sidecars."""

    def watermark(self, name: str) -> int:
        """The newest log entry of table ``name``: numbers are given at commit, so none is in flight below it."""
        return self.log(table_spec(name).name).state().n

    def changed(self, name: str, since: int, columns: tuple[str, ...] = (), new: bool = True) -> pa.Table:
        """As the folder store's ``changed``; reads every live part (no pruning by part yet)."""
        spec = table_spec(name)
        check_columns(spec, columns)
        live = self.table_state(spec.name).parts
        if not live:
            return empty_changed(spec, columns)
        con = self.connect(need=(spec.name,), only=())
        try:
            return as_changed(spec, con.sql(changed_sql(spec, self._rows(spec, live), since, columns)).to_arrow_table(),
                              columns=columns)
        finally:
            con.close()

    KEY_SIDECARS = False

    def _count_newest_writes(self, spec, parts=None) -> None:
        return None  # no key sidecars on object storage: the view is counted

    def group_parts(self, name: str, groups) -> list[str]:
        return self.parts(name)  # no key sidecars: every part

    def read_groups(self, name: str, values: list):
        return self._read_in(name, table_spec(name).group[0], values)

    def read_of(self, name: str, column: str, values):
        return self._read_in(name, column, values.to_pylist())

    def _read_in(self, name: str, column: str, values: list):
        """The rows of the view of ``name`` whose ``column`` is one of ``values``."""
        quoted = ", ".join(sql_str(str(v)) for v in dict.fromkeys(values))
        return self.read(name, where=f"{column} IN ({quoted})") if quoted else table_spec(name).schema.empty_table()

    def count_grown(self, name: str, before: int, counted: list[str]) -> None:
        return None  # no key sidecars: count_parts counts the view (and names no parts)

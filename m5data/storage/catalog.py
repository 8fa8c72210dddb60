"""The catalog file ``catalog.duckdb``: the tables' views for any DuckDB client, rebuilt when stale.
Derivable: deleting it loses nothing."""

from __future__ import annotations

import os
from pathlib import Path

from . import locks
from .errors import StoreBusy, StoreError
from .parts import fsync_dir
from .schema import TABLES
from .temps import temp_name

CATALOG = "catalog.duckdb"


class Catalog:
    """The :class:`~m5data.storage.store.Store` methods that keep the catalog file current."""

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG

    def refresh_catalog(self, quiet: bool = False) -> bool:
        """Make ``catalog.duckdb`` hold the current views; rebuild it when missing, stale or corrupt.

        Writes only when a view changed, so reading the store leaves its files untouched. A rebuild
        happens under the catalog lock into a temp file renamed into place: a process reading the
        old catalog keeps reading it, and a refresh never waits for another process. Returns False
        when another process was rebuilding it meanwhile, or (``quiet``) when it could not be written.
        """
        import duckdb

        wanted = {spec.name: self.view_sql(spec) for spec in TABLES.values()}
        if self._catalog_views() == wanted:
            return True
        tmp = self.root / temp_name(".duckdb")
        try:
            with locks.hold(self.root, "catalog", "catalog refresh", error=StoreBusy):
                if self._catalog_views() == wanted:  # another process rebuilt it while we waited
                    return True
                con = duckdb.connect(str(tmp))
                try:
                    con.execute("CREATE TABLE _m5data_views (name VARCHAR, sql VARCHAR)")
                    for spec in TABLES.values():
                        try:
                            con.execute(f"CREATE VIEW {spec.name} AS {wanted[spec.name]}")
                        except duckdb.Error as exc:  # a corrupt part: the view says so when read
                            con.execute(f"CREATE OR REPLACE VIEW {spec.name} AS "
                                        f"{self._error_view_sql(spec, str(self._explain(spec.name, exc)))}")
                        con.execute("INSERT INTO _m5data_views VALUES (?, ?)", [spec.name, wanted[spec.name]])
                    con.execute("CHECKPOINT")
                finally:
                    con.close()
                os.replace(tmp, self.catalog_path)
                Path(str(self.catalog_path) + ".wal").unlink(missing_ok=True)
                fsync_dir(self.root)
            return True
        except StoreBusy:
            return False
        except (duckdb.Error, OSError) as exc:
            if quiet:
                return False
            raise StoreError(f"cannot write catalog {self.catalog_path}: {str(exc).splitlines()[0]}") from None
        finally:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)

    def _catalog_views(self) -> dict | None:
        """The views the catalog file holds (None when it is missing, unreadable or busy)."""
        import duckdb

        if not self.catalog_path.is_file():
            return None
        try:
            con = duckdb.connect(str(self.catalog_path), read_only=True)
        except duckdb.Error:
            return None
        try:
            return dict(con.execute("SELECT name, sql FROM _m5data_views").fetchall())
        except duckdb.Error:
            return None
        finally:
            con.close()

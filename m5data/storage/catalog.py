"""The catalog file ``catalog.duckdb``: the tables' views for any DuckDB client, rebuilt when stale.
Derivable: deleting it loses nothing.

The views find the store's parts next to the catalog file, wherever DuckDB opened it, so a store
folder copied or moved (``cp -r``, ``mv``) reads its own parts from any working directory. DuckDB
resolves a relative path against the process's working directory, and a table function's arguments
must be constants (no subquery of ``duckdb_databases()``); a setting is one, and ``temp_directory``
defaults to the database file's absolute path plus ``.tmp``. Opened any other way (ATTACH, a
``temp_directory`` set) a view fails saying how to open it, rather than read another folder.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

from . import locks
from .errors import StoreBusy, StoreError
from .files import write_atomic
from .parts import fsync_dir
from .schema import TABLES
from .takedowns import RAW, user_views, view_name
from .temps import temp_name
from .views import error_view_sql, sql_str

CATALOG = "catalog.duckdb"
# The views the catalog file holds, with that file's identity (inode, size, times) when they were written:
# a process reads them here instead of opening the file with DuckDB (~33 ms of CPU; once per process
# and store, ~800 times in a test suite run). Another file in its place (a copy, a write of other
# bytes) does not match, and the catalog file itself is read then. Derivable, like the catalog.
CATALOG_VIEWS = "catalog.views.json"
REFRESH_WAIT = 60.0  # seconds a refresh waits for another process's (a rebuild takes well under one)

_TEMP_DIR = "current_setting('temp_directory')"
_DEFAULT_TEMP = re.escape(CATALOG + ".tmp")
_HOW_TO_OPEN = (f"an m5data catalog reads the tables next to its file, which DuckDB names only when the file "
                f"is opened itself with its default temp_directory: use duckdb.connect('<store>/{CATALOG}', "
                f"read_only=True), not ATTACH (this connection's temp_directory: ")
# The store folder, ending in its separator (empty when the catalog was opened by its bare name)
CATALOG_ROOT_SQL = (f"(CASE WHEN regexp_matches({_TEMP_DIR}, '(^|[/\\\\]){_DEFAULT_TEMP}$') "
                    f"THEN regexp_replace({_TEMP_DIR}, '{_DEFAULT_TEMP}$', '') "
                    f"ELSE error({sql_str(_HOW_TO_OPEN)} || {_TEMP_DIR} || {sql_str(')')}) END)")

_refreshing = threading.Lock()  # the catalog lock is per process: threads of one take turns here
_read: dict[str, tuple[tuple, dict]] = {}  # catalog file -> (its stat, its views) when this process last read it
# views -> the bytes of a catalog file this process built holding them: the views name the parts relative
# to the catalog file (CATALOG_ROOT_SQL), so the same views make the same catalog in any store. A new
# store's catalog was rebuilt by DuckDB at each init (0.15-0.3 s: every view bound, a checkpoint); the
# suite makes hundreds of stores. A few entries (a file is about 0.5 MB), the newest kept.
_BUILT: dict[tuple, bytes] = {}
_BUILT_KEEP = 4


class Catalog:
    """The :class:`~m5data.storage.store.Store` methods that keep the catalog file current."""

    @property
    def catalog_path(self) -> Path:
        return self.folder / CATALOG

    def catalog_views(self) -> dict[str, str]:
        """The SQL of each view of the catalog, in the order to make them, as the tables' parts are now:
        each table's (a product table's as ``raw.<table>``), then those that hide taken-down products
        (storage/takedowns.py)."""
        views = {view_name(spec.name): self.view_sql(spec, root_sql=CATALOG_ROOT_SQL) for spec in TABLES.values()}
        return {**views, **user_views()}

    def refresh_catalog(self, quiet: bool = False, wait: float = REFRESH_WAIT) -> bool:
        """Make ``catalog.duckdb`` hold the current views; rebuild it when missing, stale or corrupt.

        Writes only when a view changed, so reading the store leaves its files untouched. A rebuild
        happens under the catalog lock (waiting up to ``wait`` seconds for another process's), with
        the views taken under it, so the last rebuild sees every part written before it began; it
        writes a temp file renamed into place: a process reading the old catalog keeps reading it.
        Returns False when the lock stayed taken, or (``quiet``) when the catalog could not be written.
        """
        import duckdb

        if self._catalog_views() == self.catalog_views():
            return True
        tmp = self.folder / temp_name(".duckdb")
        try:
            with _refreshing, locks.hold(self.folder, "catalog", "catalog refresh", wait=wait, error=StoreBusy):
                wanted = self.catalog_views()
                if self._catalog_views() == wanted:  # another process rebuilt it while we waited
                    return True
                key = tuple(sorted(wanted.items()))
                if (built := _BUILT.get(key)) is not None:
                    with open(tmp, "wb") as out:
                        out.write(built)
                        out.flush()
                        os.fsync(out.fileno())
                elif self._build_catalog(tmp, wanted):  # every view bound: the file may serve another store
                    _BUILT[key] = tmp.read_bytes()
                    while len(_BUILT) > _BUILT_KEEP:
                        del _BUILT[next(iter(_BUILT))]
                os.replace(tmp, self.catalog_path)
                Path(str(self.catalog_path) + ".wal").unlink(missing_ok=True)
                fsync_dir(self.folder)
                st = self.catalog_path.stat()  # under the lock: what this process just wrote holds `wanted`
                seen = _identity(st)
                _read[str(self.catalog_path)] = (seen, wanted)
                write_atomic(self.folder / CATALOG_VIEWS, json.dumps({"catalog": seen, "views": wanted}).encode())
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

    def _build_catalog(self, path: Path, wanted: dict[str, str]) -> bool:
        """Write a catalog file holding ``wanted`` at ``path``; False when a view could not be bound (a
        corrupt part: that view then says so when read)."""
        import duckdb

        bound = True
        # a view is bound as it is made: made as if opened where the catalog goes
        con = duckdb.connect(str(path), config={"temp_directory": str(self.catalog_path) + ".tmp"})
        try:
            con.execute("CREATE TABLE _m5data_views (name VARCHAR, sql VARCHAR)")
            con.execute(f"CREATE SCHEMA {RAW}")
            for name, sql in wanted.items():
                try:
                    con.execute(f"CREATE VIEW {name} AS {sql}")
                except duckdb.Error as exc:  # a corrupt part: the view says so when read
                    bound = False
                    spec = TABLES[name.rsplit(".", 1)[-1]]
                    con.execute(f"CREATE OR REPLACE VIEW {name} AS "
                                f"{error_view_sql(spec, str(self._explain(spec.name, exc)))}")
            con.executemany("INSERT INTO _m5data_views VALUES (?, ?)", list(wanted.items()))
            con.execute("CHECKPOINT")
        finally:
            con.close()
        return bound

    def _catalog_views(self, verify: bool = False) -> dict | None:
        """The views the catalog file holds (None when it is missing, unreadable or busy).

        A file this process read before, or whose views :data:`CATALOG_VIEWS` records, and that nobody
        replaced or changed since, is not opened (a DuckDB connection costs 20-50 ms; a write after a
        compaction asks). ``verify``: open it all the same (``m5data doctor``: is it readable).
        """
        import duckdb

        try:
            st = self.catalog_path.stat()
        except OSError:
            return None
        seen = _identity(st)
        if not verify and (known := _read.get(str(self.catalog_path))) and known[0] == seen:
            return known[1]
        if not verify and (views := self._recorded_views(seen)) is not None:
            _read[str(self.catalog_path)] = (seen, views)
            return views
        try:
            con = duckdb.connect(str(self.catalog_path), read_only=True)
        except duckdb.Error:
            return None
        try:
            views = dict(con.execute("SELECT name, sql FROM _m5data_views").fetchall())
        except duckdb.Error:
            return None
        finally:
            con.close()
        _read[str(self.catalog_path)] = (seen, views)
        return views

    def _recorded_views(self, seen: tuple) -> dict | None:
        """The views :data:`CATALOG_VIEWS` records for the catalog file ``seen`` (None: no record of that file)."""
        try:
            recorded = json.loads((self.folder / CATALOG_VIEWS).read_bytes())
            if tuple(recorded["catalog"]) == seen and isinstance(recorded["views"], dict):
                return recorded["views"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None


def _identity(st: os.stat_result) -> tuple:
    """A catalog file's identity: another file, or other bytes written into it, differ in one of these."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

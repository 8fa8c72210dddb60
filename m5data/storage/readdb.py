"""The process's read databases: in-memory DuckDB databases whose cursors the store's reads take
(``read``, ``count``, ``connect(cursor=True)``, the key sidecars, the report's reads of the night's
parts). A module of its own, below ``reading`` and ``keyindex`` (which both use it), so that neither
imports the other."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable

KEYED_MAX = 4  # databases with a filesystem registered (one per AWS environment) kept at once


class _ReadDatabase:
    """In-memory DuckDB databases of this process for :meth:`Store.read`, :meth:`Store.count` and the
    stages' small reads: one plain database, and one per ``key`` for stores whose files need a
    filesystem registered (a store on S3: its s3fs instance, made for the AWS environment ``key``).

    Each read takes a cursor on one (a connection of its own, ~0.6 ms) and creates its views as TEMP
    views, which only that cursor sees; a new database costs ~16 ms, and a stage makes hundreds of
    small reads. Before a fork the process drops its references (a child never uses a database whose
    threads stayed in the parent) and the child makes its own on first use.
    """

    def __init__(self):
        self._dbs: dict = {}
        self._lock = threading.Lock()
        os.register_at_fork(before=self._drop, after_in_child=self._reset)

    def cursor(self, key: Hashable = None, attach: Callable | None = None):
        """A cursor of the database for ``key`` (None: the plain one); ``attach(database)`` is called
        once, when that database is made (a filesystem registered on it serves all its cursors)."""
        import duckdb

        with self._lock:
            db = self._dbs.get(key)
            if db is None:
                db = duckdb.connect()
                if attach is not None:
                    attach(db)
                keyed = [k for k in self._dbs if k is not None]
                if key is not None and len(keyed) >= KEYED_MAX:
                    del self._dbs[keyed[0]]  # the oldest; cursors in use keep it alive until they close
                self._dbs[key] = db
            return db.cursor()

    def database(self, key: Hashable = None):
        """The database for ``key`` this process holds now, else None."""
        return self._dbs.get(key)

    def _drop(self) -> None:
        self._dbs = {}  # cursors in use keep their database alive until they close

    def _reset(self) -> None:
        self._dbs, self._lock = {}, threading.Lock()


READ_DB = _ReadDatabase()


def read_cursor():
    """A cursor on the process's read database: a connection of its own whose TEMP views and tables only
    it sees (close it after use), ~0.6 ms where a new database costs 12-15."""
    con = READ_DB.cursor()
    con.execute("SET enable_progress_bar = false")
    return con

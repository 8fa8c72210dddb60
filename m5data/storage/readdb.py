"""The process's read database: one in-memory DuckDB database whose cursors the store's reads take
(``read``, ``count``, the key sidecars, the report's reads of the night's parts). A module of its own,
below ``reading`` and ``keyindex`` (which both use it), so that neither imports the other."""

from __future__ import annotations

import os
import threading


class _ReadDatabase:
    """One in-memory DuckDB database per process for :meth:`Store.read` / :meth:`Store.count`.

    Each read takes a cursor on it (a connection of its own, ~0.6 ms) and creates its view as a
    TEMP view, which only that cursor sees; a new database costs ~15 ms, and a stage makes hundreds
    of small reads. Before a fork the process drops its reference (a child never uses a database
    whose threads stayed in the parent) and the child makes its own on first use.
    """

    def __init__(self):
        self._db = None
        self._lock = threading.Lock()
        os.register_at_fork(before=self._drop, after_in_child=self._reset)

    def cursor(self):
        import duckdb

        with self._lock:
            if self._db is None:
                self._db = duckdb.connect()
            return self._db.cursor()

    def _drop(self) -> None:
        self._db = None  # cursors in use keep the database alive until they close

    def _reset(self) -> None:
        self._db, self._lock = None, threading.Lock()


READ_DB = _ReadDatabase()


def read_cursor():
    """A cursor on the process's read database: a connection of its own whose TEMP views and tables only
    it sees (close it after use), ~0.6 ms where a new database costs 12-15."""
    con = READ_DB.cursor()
    con.execute("SET enable_progress_bar = false")
    return con

"""Reading the store: in-memory DuckDB connections with one view per table, ``read`` and ``count``,
and the one-line errors (the corrupt part named) that a failed read turns into."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import CorruptPart, DamagedLog, StoreError
from .schema import TABLES, TableSpec, table_spec
from .takedowns import RAW, user_views, view_name
from .views import error_view_sql, sql_str

T = TypeVar("T")

# DuckDB errors of a read that raced with a compaction removing the parts it had listed
_VANISHED = ("no files found", "cannot open file", "no such file", "could not open file",
             "the specified key does not exist",  # S3's answer for a removed part object
             # a view's scan of the parts it named, whose filename filter pruned every file: all of
             # them were compacted away between the view's creation and the query
             "needs at least one file to read")


def vanished(exc: BaseException) -> bool:
    """True for a DuckDB error of a read whose listed parts a compaction removed meanwhile (read again)."""
    return any(v in str(exc).lower() for v in _VANISHED)


READ_TRIES = 4  # a read that lists parts, then reads them, tries this often before its error stands

# A read of whole tables whose parts hold at most this many bytes goes through a cursor of the process's
# read database (readdb.py); a larger one gets a database of its own, which gives the read's memory back
# when it closes (through the shared database, pools' peak RSS at 100k products was 1.32 GiB against 1.09)
SHARED_READ_BYTES = 8 << 20


def read_again(read: Callable[[], T], errors: type[BaseException] | tuple[type[BaseException], ...] = Exception,
               retry: Callable[[BaseException], bool] = vanished,
               explain: Callable[[BaseException], BaseException] | None = None) -> T:
    """``read()``, which lists a table's parts and reads them, run again while a compaction removes
    parts it had listed before it opened them: an error of type ``errors`` for which ``retry`` holds
    (:func:`vanished`) starts it over, :data:`READ_TRIES` times in all. Any other error, or the last,
    is raised as ``explain`` makes it (as it is without one)."""
    for attempt in range(READ_TRIES):
        try:
            return read()
        except errors as exc:
            if attempt < READ_TRIES - 1 and retry(exc):
                continue
            if explain is None:
                raise
            raise explain(exc) from None
    raise AssertionError("unreachable")


# A sandboxed connection (m5data sql): reads the store only, never installs or loads extensions.
_SANDBOX = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def part_problem(path: Path) -> str | None:
    """Why a part's footer cannot be read (None when it can)."""
    try:
        pq.ParquetFile(path).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


class _Vanished(Exception):
    """A part listed by a read was removed before it was opened (a compaction finished meanwhile)."""


class Reading:
    """The reads both backends share (a base of :class:`~m5data.storage.store.Store` and of
    :class:`~m5data.storage.s3store.S3Store`): connections with one view per table, ``read``, ``count``
    and the one-line errors of failed reads, over what each backend answers (below)."""

    def connect(self, need: tuple[str, ...] | None = None, sandbox: bool = False,
                only: tuple[str, ...] | None = None, cursor: bool = False):
        """An in-memory DuckDB connection with one view per table (no file lock, no catalog file);
        its cursors (``con.cursor()``) read the same views.

        Args:
            need: tables the caller reads (default: all). A corrupt part of one of them raises
                CorruptPart; the view of any other table with a corrupt part raises that same
                message only when it is queried, so the other tables stay readable.
            sandbox: a connection that can read the store's files only, never installs or loads
                extensions, and cannot be reconfigured (``m5data sql``).
            only: create the views of these tables only (a read of one table binds one view).
            cursor: a cursor on the process's shared read database with TEMP views
                (``readdb.py``: ~0.6 ms where a new database costs 12-15; for :meth:`read`, :meth:`count` and the report, never
                with ``sandbox``). Its views, and those its caller makes, must be TEMP (the database is shared).
        """
        import duckdb

        need = tuple(TABLES) if need is None else need

        def once():
            shared = cursor and not sandbox
            con = self._read_cursor() if shared else duckdb.connect(config=dict(_SANDBOX) if sandbox else {})
            try:
                # no bar of DuckDB's own on stdout: a query past 2 s printed one into the stage's output
                # (and the flow's logs), between rich's progress lines
                con.execute("SET enable_progress_bar = false")
                if not shared:
                    self._attach(con)
                users = sandbox and only is None  # m5data sql: the views that users query
                if users:  # they hide taken-down products, every row under raw.<table>
                    con.execute(f"CREATE SCHEMA {RAW}")
                for spec in TABLES.values():
                    if only is None or spec.name in only:
                        self._create_view(con, spec, spec.name in need, temp=cursor,
                                          name=view_name(spec.name) if users else spec.name)
                if users:
                    for name, sql in user_views().items():
                        con.execute(f"CREATE VIEW {name} AS {sql}")
                if sandbox:  # after the views: their temp tables of contested keys are made from Arrow
                    con.execute(f"SET allowed_directories = [{sql_str(str(self.root) + os.sep)}]")
                    con.execute("SET enable_external_access = false")
                    con.execute("SET lock_configuration = true")
                return con
            except BaseException:
                con.close()
                raise

        return read_again(once, _Vanished, retry=lambda exc: True, explain=lambda exc: StoreError(
            f"the parts of {self.root} keep changing while being read; try again"))

    def connect_whole(self, tables: tuple[str, ...]):
        """:meth:`connect` with the views of ``tables`` only, for a read of all their rows (a global stage's
        inputs): a cursor of the process's read database while their parts hold at most
        :data:`SHARED_READ_BYTES` (a new database costs ~16 ms of CPU; the suite's small stores made
        ~3,600 of them), else a database of its own, closed with the connection."""
        return self.connect(need=tables, only=tables, cursor=self._parts_bytes(tables) <= SHARED_READ_BYTES)

    def stored_rows(self, name: str) -> int:
        """The rows of a table's parts, the rows later writes replaced included (from the footers):
        against the rows its view holds, what a compaction would leave out."""
        return sum(self._footer_rows(p) for p in self.parts(table_spec(name).name))

    def _create_view(self, con, spec: TableSpec, strict: bool, temp: bool = False, name: str | None = None,
                     listed: bool = False) -> None:
        """Make ``spec``'s view on ``con`` (named ``name``, default the table's); ``listed``: over the
        parts there are now (a read's snapshot)."""
        import duckdb

        create = "CREATE TEMP VIEW" if temp else "CREATE VIEW"
        name = name or spec.name
        try:
            parts = self.parts(spec.name) if listed else None  # listed once: is_compacted takes them
            if parts is not None and self.is_compacted(spec.name, parts):
                parts = None  # the compacted table's plain glob
            con.execute(f"{create} {name} AS {self.read_sql(con, spec, parts=parts, shared=not temp)}")
            return
        except duckdb.Error as exc:
            error = self._explain(spec.name, exc)
            if not isinstance(error, CorruptPart) and vanished(exc):
                raise _Vanished() from None  # a compaction removed parts between glob and read: retry
        except DamagedLog as exc:  # this table's log on object storage: its view says so, the others read
            error = exc
        if strict:
            raise error
        con.execute(f"{create} {name} AS {error_view_sql(spec, str(error))}")

    def read(self, name: str, where: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """A table's current rows as Arrow (for small tables or filtered reads); ``where`` may name
        the table's own columns only.

        Raises CorruptPart naming an unreadable part of the table, StoreError for other read errors.
        """
        import duckdb

        spec = table_spec(name)
        sql = f"SELECT {', '.join(columns) if columns else '*'} FROM {name}"
        if where:
            sql += f" WHERE {where}"

        def once() -> pa.Table:  # parts the view named may be compacted away before the query runs
            con = self.connect(need=(spec.name,), only=(), cursor=True)
            try:
                # the view over the parts listed now (with key sidecars): where no key lies in two parts,
                # their rows as they are, 2-3 ms where the glob's view took 40-50 (it must see parts
                # written after it was made; this read's view lives for one query)
                self._create_view(con, spec, True, temp=True, listed=self.KEY_SIDECARS)
                return con.sql(sql).to_arrow_table()
            finally:
                con.close()

        def explain(exc: BaseException) -> BaseException:
            if isinstance(exc, _Vanished):
                return StoreError(f"the parts of {self.root} keep changing while being read; try again")
            return self._explain(spec.name, exc)

        # a damaged part (or a bad `where`): one StoreError
        result = read_again(once, (duckdb.Error, _Vanished), retry=lambda exc: isinstance(exc, _Vanished) or vanished(exc),
                            explain=explain)
        return result.cast(spec.schema) if not columns else result

    def count(self, name: str) -> int:
        """The rows of table ``name``'s view (the newest write per key): from the parts' key sidecars
        where their layout allows (:meth:`_count_newest_writes`), else by counting the view."""
        return self.count_parts(name)[0]

    def count_parts(self, name: str) -> tuple[int, list[str] | None]:
        """:meth:`count`, with the names of the parts it counted (None where it counted the view,
        whose parts may change under it): what :meth:`count_grown` counts on from."""
        import duckdb

        if self.KEY_SIDECARS:  # else the view is counted (no listing of the parts first: a request on S3)
            parts = self.parts(name)
            if parts and self.is_compacted(name):  # its view is a plain glob of these parts: their footers
                # (what a full rebuild left: 0.05 s for caption_match's 101k rows at 100k products by the
                # view, and then no parts named for count_grown to count on from)
                try:
                    return sum(self._footer_rows(p) for p in parts), [Path(str(p)).name for p in parts]
                except (OSError, pa.ArrowInvalid) as exc:  # a damaged part: one StoreError naming it
                    raise self._explain(name, exc) from None
            try:
                rows = self._count_newest_writes(table_spec(name), parts)
            except duckdb.Error as exc:  # a damaged part: one StoreError naming it
                raise self._explain(name, exc) from None
            if rows is not None:
                return rows, [Path(str(p)).name for p in parts]
        con = self.connect(need=(table_spec(name).name,), only=(table_spec(name).name,), cursor=True)
        try:
            return con.execute(f"SELECT count(*) FROM {table_spec(name).name}").fetchone()[0], None
        except duckdb.Error as exc:  # a damaged part (or a bad `where`): one StoreError
            raise self._explain(name, exc) from None
        finally:
            con.close()

    # ------------------------------------------------------------------ what each backend answers
    # Besides these, a backend gives ``parts``, ``read_sql``, ``is_compacted`` and ``root`` (views.py:
    # the folder's; s3store.py: the object store's).
    KEY_SIDECARS: bool
    """Whether the parts have key sidecars (keyindex.py): a read lists them and a count reads them
    instead of the view's window."""

    def _parts_bytes(self, tables: tuple[str, ...]) -> float:
        """The bytes of the tables' live parts (a part removed meanwhile counts none: the read lists again)."""
        raise NotImplementedError

    def _attach(self, con) -> None:
        """Give a new database what it needs to read the parts (an object store registers its filesystem)."""
        raise NotImplementedError

    def _read_cursor(self):
        """A cursor of the process's read database that reads this store's parts (readdb.py)."""
        raise NotImplementedError

    def _footer_problem(self, part) -> str | None:
        """Why a part's footer cannot be read (None when it can)."""
        raise NotImplementedError

    def _footer_rows(self, part) -> int:
        """The rows a part holds, from its footer."""
        raise NotImplementedError

    def _count_newest_writes(self, spec: TableSpec, parts: list | None = None) -> int | None:
        """The view's rows counted without its window (None where the layout does not allow it)."""
        raise NotImplementedError

    def _scan(self, con, spec: TableSpec, sql: str):
        """Arrow batches of ``sql``; a DuckDB error naming a part becomes a one-line CorruptPart."""
        import duckdb

        try:
            return con.sql(sql).to_arrow_reader(self.part_rows)
        except duckdb.Error as exc:
            raise self._explain(spec.name, exc) from None

    def _explain(self, name: str, exc: Exception) -> StoreError:
        """The StoreError for a failed read of table ``name``: the corrupt part if one is, else the error."""
        for part in self.parts(name):
            problem = self._footer_problem(part)
            if problem is not None:
                return CorruptPart(name, part, problem)
        return StoreError(f"cannot read table {name} in {self.root}: {str(exc).splitlines()[0]}")

    def bad_parts(self) -> list[tuple[str, Path, str]]:
        """``(table, part, reason)`` for every part whose footer cannot be read."""
        out = []
        for name in TABLES:
            try:
                parts = self.parts(name)
            except DamagedLog:  # its log (object storage) is not read: no part of it is known
                continue
            for part in parts:
                problem = self._footer_problem(part)
                if problem is not None:
                    out.append((name, part, problem))
        return out

    def check_parts(self) -> None:
        """Open every part's footer; raise StoreError naming the first unreadable part."""
        for name, part, problem in self.bad_parts():
            raise CorruptPart(name, part, problem)

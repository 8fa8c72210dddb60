"""Staging the layout's entries in a DuckDB database in a temp folder of the store, so that memory
stays bounded whatever the number of items, and items come back in item id order with their
caption, ``m5data_items.json`` entry and label together."""

from __future__ import annotations

import json
from pathlib import Path

from ..export.m5product_format import LIST_FILES
from . import limits
from .layout_files import json_backends, lines, not_utf8_error, open_file
from .layout_folder import LayoutError, LayoutFolder
from .utf8 import NeedsExact, NotUtf8, Utf8Reader


def _dump(value) -> bytes:
    """Compact JSON bytes of a parsed value (a lone surrogate kept: ``surrogatepass``, read back alike)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _undump(data: bytes | None):
    return None if data is None else json.loads(data.decode("utf-8", "surrogatepass"))


class Staging:
    """The layout's entries in a DuckDB database in a temp folder of the store (spilling past
    ``limits.STAGE_MEMORY``): ``captions``, ``items`` and ``labels`` ``(ord, iid, value)`` as read (``ord``
    the place in the file: a repeated key's last value wins, as with ``json.loads``), the split
    lists' ``lines``, and the ``accepted`` items' ``(pid, iid)``. Item ids are UTF-8 bytes
    (``surrogatepass``: a key that json can hold and UTF-8 cannot still sorts as Python sorts it)."""

    TABLES = {"captions": "ord BIGINT, iid BLOB, val BLOB", "items": "ord BIGINT, iid BLOB, val BLOB",
              "labels": "ord BIGINT, iid BLOB, val BLOB", "lines": "split INTEGER, n BIGINT, iid BLOB",
              "accepted": "pid VARCHAR, iid BLOB"}

    def __init__(self, store):
        import tempfile

        import duckdb

        from ..storage.temps import temp_name

        # derived/import/.tmp-<pid>-... (on object storage under TMPDIR): a killed run's folder is
        # swept by the next stage lock or doctor
        self._tmp = tempfile.TemporaryDirectory(prefix=temp_name() + "-", dir=store.work_dir("import"))
        tmp = Path(self._tmp.name)
        self.con = duckdb.connect(str(tmp / "stage.duckdb"))
        try:
            self.con.execute(f"SET memory_limit = '{limits.STAGE_MEMORY}'")
            self.con.execute(f"SET temp_directory = '{_sql_text(tmp / 'spill')}'")
            # one thread: with two, the sort of the entries (wide rows) ran out of 512 MB at 1M items;
            # with one, that sort alone stayed at ~650 MB RSS at 1M and at 6M (measured)
            self.con.execute("SET threads = 1")
            for table, columns in self.TABLES.items():
                self.con.execute(f"CREATE TABLE {table} ({columns})")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        self._tmp.cleanup()

    def _insert(self, table: str, columns: dict) -> None:
        import pyarrow as pa

        self.con.register("_batch", pa.table(columns))
        try:
            self.con.execute(f"INSERT INTO {table} SELECT * FROM _batch")
        finally:
            self.con.unregister("_batch")

    def json(self, folder: LayoutFolder, name: str, table: str, prefix: str = "") -> None:
        """Stage the entries of the object at ``prefix`` of JSON file ``name`` (the whole file is read).

        :class:`LayoutError` naming the file when it is not UTF-8, not JSON, not an object (or its
        ``items`` is not one). The C backend reads it, unless it holds what only the Python backend
        reads as ``json.loads`` does (a lone surrogate escape, an integer past 64 bits).
        """
        fast, exact = json_backends()
        try:
            n = self._json_pass(folder, name, table, prefix, fast, watch=fast is not exact)
            backend = fast
        except NeedsExact:
            with open_file(folder, name) as fh:  # UTF-8 first: the Python backend would find a bad byte noisily
                try:
                    Utf8Reader(fh).drain()
                except NotUtf8 as exc:
                    raise not_utf8_error(folder, name, exc) from None
            self.con.execute(f"DELETE FROM {table}")
            n = self._json_pass(folder, name, table, prefix, exact, watch=False)
            backend = exact
        if n == 0:  # no entry: check the shape (what holds entries is an object)
            self._check_empty(folder, name, prefix, backend)

    def _json_pass(self, folder, name, table, prefix, backend, watch: bool) -> int:
        import ijson
        import pyarrow as pa

        n, keys, values = 0, [], []

        def flush():
            self._insert(table, {"ord": pa.array(range(n - len(keys), n), pa.int64()),
                                 "iid": pa.array(keys, pa.binary()), "val": pa.array(values, pa.binary())})
            keys.clear()
            values.clear()

        with open_file(folder, name) as fh:
            reader = Utf8Reader(fh, watch)
            try:
                for key, value in backend.kvitems(reader, prefix, use_float=True, buf_size=limits.READ_BYTES):
                    keys.append(key.encode("utf-8", "surrogatepass"))
                    values.append(_dump(value))
                    n += 1
                    if len(keys) >= limits.BATCH:
                        flush()
                if keys:
                    flush()
            except NotUtf8 as exc:
                raise not_utf8_error(folder, name, exc) from None
            except OSError as exc:
                raise LayoutError(f"{folder.root / name}: {exc}") from None
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if watch and (isinstance(exc, UnicodeDecodeError) or "overflow" in str(exc)):
                    raise NeedsExact from None  # yajl's own limits, not the file's
                try:
                    reader.drain()
                except NotUtf8 as bad:
                    raise not_utf8_error(folder, name, bad) from None
                except OSError:
                    pass
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise LayoutError(f"{folder.root / name} is not valid JSON: {first}") from None
        return n

    @staticmethod
    def _check_empty(folder: LayoutFolder, name: str, prefix: str, backend) -> None:
        """A file that gave no entry (it is valid JSON): :class:`LayoutError` unless it is an object
        (and, with a ``prefix``, its member of that name is an object or absent)."""
        with open_file(folder, name) as fh:
            events = backend.parse(Utf8Reader(fh), buf_size=limits.READ_BYTES)
            if next(events)[1] != "start_map":
                raise LayoutError(f"{folder.root / name} is not a JSON object")
            if not prefix:
                return
            depth = 1
            for _prefix, event, value in events:
                if depth == 1 and event == "map_key" and value == prefix:
                    if next(events)[1] != "start_map":
                        raise LayoutError(f"{folder.root / name}: {prefix!r} is not a JSON object")
                    return
                depth += event in ("start_map", "start_array")
                depth -= event in ("end_map", "end_array")

    def lines(self, folder: LayoutFolder) -> dict[str, int]:
        """Stage the split lists' lines (``LIST_FILES`` present in the folder), in order; per list, the
        lines that cannot be an item id (not UTF-8, or longer than ``limits.MAX_LINE``)."""
        import pyarrow as pa

        bad: dict[str, int] = {}
        n, rows = 0, []

        def flush():
            self._insert("lines", {"split": pa.array([r[0] for r in rows], pa.int32()),
                                   "n": pa.array(range(n - len(rows), n), pa.int64()),
                                   "iid": pa.array([r[1] for r in rows], pa.binary())})
            rows.clear()

        for k, (split, name) in enumerate(LIST_FILES.items()):
            if name not in folder.names:
                continue
            bad[split] = 0
            with open_file(folder, name) as fh:
                try:
                    for line in lines(fh):
                        if line is not None:
                            line = line.strip()
                            if not line:
                                continue
                            try:
                                line.decode("utf-8")
                            except UnicodeDecodeError:
                                line = None
                        if line is None:
                            bad[split] += 1
                            continue
                        rows.append((k, line))
                        n += 1
                        if len(rows) >= limits.BATCH:
                            flush()
                except OSError as exc:
                    raise LayoutError(f"{folder.root / name}: {exc}") from None
        if rows:
            flush()
        return bad

    def count(self) -> int:
        """Caption entries (distinct item ids)."""
        return self.con.execute("SELECT count(DISTINCT iid) FROM captions").fetchall()[0][0]

    def entries(self):
        """``(iid, caption entry, m5data_items entry or None, label or None)`` per item id with a
        caption entry, in item id order (Python's ``sorted``: code point order = UTF-8 byte order).
        Once: the staged ``items`` and ``labels`` are dropped."""
        # Sorted into a table, then scanned (in insertion order: DuckDB's default keeps it): a sort
        # streamed to the end holds its memory, and the lookups and inserts beside it (taken, accept)
        # need some. Checkpoints before and after: blocks not yet in the database file cannot be
        # evicted, and the sort ran out of its 512 MB beside them (measured at 1M items).
        self.con.execute("CHECKPOINT")
        self.con.execute("CREATE TABLE entries AS SELECT iid, 0 AS kind, ord, val FROM captions "
                         "UNION ALL SELECT iid, 1, ord, val FROM items UNION ALL SELECT iid, 2, ord, val FROM labels "
                         "ORDER BY iid, kind, ord")
        self.con.execute("DROP TABLE items")
        self.con.execute("DROP TABLE labels")
        self.con.execute("CHECKPOINT")
        cur = self.con.cursor()  # its own connection: the others stage and look up while this streams
        try:
            iid, vals = None, [None, None, None]
            for batch in cur.sql("SELECT iid, kind, val FROM entries").to_arrow_reader(limits.BATCH):
                for row_iid, kind, val in zip(*(col.to_pylist() for col in batch.columns)):
                    if row_iid != iid:
                        if vals[0] is not None:
                            yield _entry(iid, vals)
                        iid, vals = row_iid, [None, None, None]
                    vals[kind] = val  # a later value of a repeated key wins
            if vals[0] is not None:
                yield _entry(iid, vals)
        finally:
            cur.close()

    def taken(self, pids: list[str]) -> dict[str, str]:
        """``{pid: item id}`` of the accepted items holding one of ``pids``."""
        import pyarrow as pa

        if not pids:
            return {}
        self.con.register("_pids", pa.table({"pid": pa.array(pids, pa.string())}))
        try:
            rows = self.con.execute("SELECT a.pid, a.iid FROM accepted a SEMI JOIN _pids p ON a.pid = p.pid").fetchall()
        finally:
            self.con.unregister("_pids")
        return {pid: iid.decode() for pid, iid in rows}

    def accept(self, pairs: list[tuple[str, str]]) -> None:
        import pyarrow as pa

        if pairs:
            self._insert("accepted", {"pid": pa.array([p for p, _ in pairs], pa.string()),
                                      "iid": pa.array([i.encode() for _, i in pairs], pa.binary())})

    def split_lines(self):
        """``(list index, line, accepted item's product id or None, line is a caption key)`` per staged
        line, in order."""
        sql = ("SELECT l.split, l.iid, k.pid, k.iid IS NOT NULL FROM lines l LEFT JOIN "
               "(SELECT c.iid, a.pid FROM (SELECT DISTINCT iid FROM captions) c LEFT JOIN accepted a ON a.iid = c.iid) k "
               "ON k.iid = l.iid ORDER BY l.n")
        self.con.execute("CHECKPOINT")
        cur = self.con.cursor()
        try:
            for batch in cur.sql(sql).to_arrow_reader(limits.BATCH):
                yield from zip(*(col.to_pylist() for col in batch.columns))
        finally:
            cur.close()


def _entry(iid: bytes, vals: list) -> tuple:
    return iid.decode("utf-8", "surrogatepass"), _undump(vals[0]), _undump(vals[1]), _undump(vals[2])


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


# ------------------------------------------------------------------------------------ items

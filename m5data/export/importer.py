"""``m5data import m5product DIR``: read the M5Product layout (m5product.py) into a store.

What the layout carries becomes store rows: ``products`` (title, category path from the label
list), ``specs`` (from ``pv``), ``media`` (images, videos, audios as content-addressed blobs,
status ok) and, when the split lists are there, ``splits`` rows of one version. Product ids come
from ``m5data_items.json`` when the folder is an m5data export, else ``<platform>:<item id>``.
Run ``m5data extract`` afterwards for frames, MFCC and normalised images, and ``m5data align``
for unified labels.

The folder is untrusted (a downloaded dataset): it is read through :class:`.layout_folder.LayoutFolder`
(listed once, regular files inside it only, no path or glob built from an id), item and product ids
are checked, media are sniffed like downloads (:func:`m5data.download.sniff.sniff`). A bad
item fails alone, with its reason, before any of its blobs is written.

Memory is bounded whatever the number of items (M5Product has 6.3M): the JSON files are parsed as
streams (ijson) into a staging DuckDB database in a temp folder of the store (it spills to disk),
items come back from it in item id order, ``BATCH`` at a time, and each batch's blobs are synced and
its rows written before the next one is read.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import typer

from ..verbs import one_line_errors
from .layout_folder import (ITEM_ID, PLATFORM, FolderMedia, ItemError, LayoutError, LayoutFolder, MediaFile,
                            check_item_id, check_product_id)
from .m5product import CAPTIONS, ID_LABEL, ITEMS, LABEL_LIST, LIST_FILES, parse_pv

app = typer.Typer(help="Read a dataset in another layout into the store.", no_args_is_help=True)

BATCH = 50_000  # items checked and written at a time, and rows staged at a time (tests set it small)
STAGE_MEMORY = "512MB"  # DuckDB's memory limit for the staged entries (it spills into its temp folder past it)
MAX_FAILED = 1_000  # failure lines an ImportReport keeps (all are counted)
MAX_LINE = 1 << 20  # bytes of one split list line (after leading spaces); a longer one is no item id
READ_BYTES = 1 << 20  # bytes read from a layout file at a time


@dataclass
class ImportReport:
    stats: object  # StageStats
    products: int
    specs: int
    media: Counter
    splits: dict[str, int]
    split_version: str | None
    failed: list[str] = field(default_factory=list)  # the first MAX_FAILED lines naming a failed item or list
    failed_total: int = 0  # such lines in all


JSON_TYPES = {dict: "object", list: "array"}
SHOW_FAILED = 20  # failed items named in the CLI's output (all are counted in the runs row)


# ------------------------------------------------------------------------------------ reading JSON


class _NotUtf8(Exception):
    def __init__(self, reason: str, start: int):
        super().__init__(reason)
        self.reason, self.start = reason, start


class _NeedsExact(Exception):
    """The fast backend cannot read this file as ``json.loads`` does: parse it with ijson's Python backend."""


# JSON escapes of UTF-16 surrogates: a high one not followed by a low one, a low one not after a high
# one, or one after a backslash (an escaped backslash and text, or an escape after one: not told apart)
_HIGH, _LOW = rb"\\u[dD][89abAB][0-9a-fA-F]{2}", rb"\\u[dD][c-fC-F][0-9a-fA-F]{2}"
_LONE_SURROGATE = re.compile(  # a literal start (a backslash): the search skips ahead to each one
    rb"\\(?:\\u[dD][89a-fA-F]|u[dD](?:[89abAB][0-9a-fA-F]{2}(?!%s)|(?<!%s\\u[dD])[c-fC-F][0-9a-fA-F]{2}))" % (_LOW, _HIGH))


class _Utf8Reader:
    """A layout file read through Python's strict UTF-8 decoder: :class:`_NotUtf8` at the byte a
    whole-file decode names. With ``watch``, :class:`_NeedsExact` before the first JSON escape of a lone
    surrogate is handed on: yajl reads ``"\\ud800"`` as ``"?"``, where ``json.loads`` keeps it (and
    the item then fails as not valid Unicode)."""

    def __init__(self, fh, watch: bool = False):
        self.fh, self.watch = fh, watch
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.pos = 0  # bytes read so far
        self.tail = b""  # the last bytes read: an escape may be cut by a read
        self.judged = 0  # escapes that start before this byte are judged

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # ijson asks once whether the file gives bytes
            return b""
        chunk = self.fh.read(n)
        pending = len(self.decoder.getstate()[0])  # an incomplete sequence left by the last read
        try:
            self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise _NotUtf8(exc.reason, self.pos - pending + exc.start) from None
        if self.watch:
            buf, base = self.tail + chunk, self.pos - len(self.tail)
            m = _LONE_SURROGATE.search(buf, max(0, self.judged - base - 1))  # from the backslash before
            if m and (not chunk or m.start() < len(buf) - 12):  # the last 12 bytes wait for what follows
                raise _NeedsExact
            self.judged = max(self.judged, base + len(buf) - 12)
            self.tail = buf[-18:]  # and the 6 before them, to see a high surrogate before a low one
        self.pos += len(chunk)
        return chunk

    def drain(self) -> None:
        """Read the rest: a UTF-8 error anywhere in the file is reported before a JSON error."""
        self.watch = False
        while self.read(READ_BYTES):
            pass


def _backends():
    """ijson's C backend (yajl2_c; else the best there is), then its Python one (exact, slow)."""
    import ijson

    try:
        fast = ijson.get_backend("yajl2_c")
    except ImportError:
        fast = ijson
    return fast, ijson.get_backend("python")


def _open(folder: LayoutFolder, name: str):
    try:
        return folder.open(name)
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None


def _not_utf8(folder: LayoutFolder, name: str, exc: _NotUtf8) -> LayoutError:
    return LayoutError(f"{folder.root / name} is not UTF-8 text ({exc.reason} at byte {exc.start})")


def find_captions(folder: LayoutFolder) -> str:
    """The caption JSON's name: ``captions.json``, else the first top-level JSON file that is an object
    whose first (up to 20) values are objects with a ``title``: only their start is read."""
    import ijson

    if CAPTIONS in folder.names:
        return CAPTIONS
    for name in sorted(n for n, kind in folder.names.items() if kind == "file" and n.endswith(".json")):
        try:
            with folder.open(name) as fh:
                if _starts_like_captions(_backends()[0].parse(_Utf8Reader(fh), buf_size=READ_BYTES)):
                    return name
        except (OSError, ValueError, ijson.JSONError, _NotUtf8):  # UnicodeDecodeError is a ValueError
            continue
    raise LayoutError(f"no caption JSON in {folder.root} (captions.json, or a JSON object of {{id: {{title, pv}}}})")


def _starts_like_captions(events, look: int = 20) -> bool:
    """Whether ijson ``events`` start a non-empty object whose first ``look`` values are objects with a ``title``."""
    depth, seen, title = 0, 0, False
    for _prefix, event, value in events:
        if event in ("start_map", "start_array"):
            if depth <= 1 and event != "start_map":
                return False
            title = title and depth > 1
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
            if depth == 1:  # one value read
                if not title:
                    return False
                seen += 1
                if seen == look:
                    return True
            elif depth == 0:
                return seen > 0
        elif event == "map_key":
            title = title or (depth == 2 and value == "title")
        elif depth <= 1:  # a scalar at the top or as a value
            return False
    return False


def _load(folder: LayoutFolder, name: str, default, kind: type):
    """The JSON value of the top-level file ``name`` (``default`` when absent), read whole: for the
    small files only (the label list); :class:`LayoutError` naming the file when it is no regular
    file, not UTF-8, not JSON, or not a JSON ``kind``."""
    if name not in folder.names:
        return default
    data = _read_text(folder, name)
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{folder.root / name} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise LayoutError(f"{folder.root / name} is not a JSON {JSON_TYPES[kind]}")
    return value


def _read_text(folder: LayoutFolder, name: str) -> str:
    try:
        return folder.read_bytes(name).decode("utf-8")
    except OSError as exc:
        raise LayoutError(f"{folder.root / name}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{folder.root / name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _dump(value) -> bytes:
    """Compact JSON bytes of a parsed value (a lone surrogate kept: ``surrogatepass``, read back alike)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _undump(data: bytes | None):
    return None if data is None else json.loads(data.decode("utf-8", "surrogatepass"))


def _lines(fh):
    """The lines of a binary file (cut at ``\\n`` and ``\\r``; the blank lines a ``\\r\\n`` makes are
    skipped by the reader anyway); a line longer than ``MAX_LINE`` after its leading spaces comes as None."""
    rest, overlong = b"", False
    while chunk := fh.read(READ_BYTES):
        parts = (rest + chunk).replace(b"\r", b"\n").split(b"\n")
        rest = parts.pop()
        for i, line in enumerate(parts):
            yield None if (i == 0 and overlong) or len(line.lstrip()) > MAX_LINE else line
        overlong = overlong and not parts
        rest = rest.lstrip()
        if len(rest) > MAX_LINE:
            rest, overlong = b"", True
    if overlong:
        yield None
    elif rest:
        yield rest


# ------------------------------------------------------------------------------------ staging


class _Staging:
    """The layout's entries in a DuckDB database in a temp folder of the store (spilling past
    ``STAGE_MEMORY``): ``captions``, ``items`` and ``labels`` ``(ord, iid, value)`` as read (``ord``
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

        # derived/import/.tmp-<pid>-...: a killed run's folder is swept by the next stage lock or doctor
        self._tmp = tempfile.TemporaryDirectory(prefix=temp_name() + "-", dir=store.derived_dir("import"))
        tmp = Path(self._tmp.name)
        self.con = duckdb.connect(str(tmp / "stage.duckdb"))
        try:
            self.con.execute(f"SET memory_limit = '{STAGE_MEMORY}'")
            self.con.execute(f"SET temp_directory = '{_sql_text(tmp / 'spill')}'")
            # one thread: with two, the sort of the entries (wide rows) ran out of 512 MB at 1M items;
            # with one, that sort alone stayed at ~650 MB RSS at 1M and at 6M (measured)
            self.con.execute("SET threads = 1")
            for table, columns in self.TABLES.items():
                self.con.execute(f"CREATE TABLE {table} ({columns})")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Staging:
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
        fast, exact = _backends()
        try:
            n = self._json_pass(folder, name, table, prefix, fast, watch=fast is not exact)
            backend = fast
        except _NeedsExact:
            with _open(folder, name) as fh:  # UTF-8 first: the Python backend would find a bad byte noisily
                try:
                    _Utf8Reader(fh).drain()
                except _NotUtf8 as exc:
                    raise _not_utf8(folder, name, exc) from None
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

        with _open(folder, name) as fh:
            reader = _Utf8Reader(fh, watch)
            try:
                for key, value in backend.kvitems(reader, prefix, use_float=True, buf_size=READ_BYTES):
                    keys.append(key.encode("utf-8", "surrogatepass"))
                    values.append(_dump(value))
                    n += 1
                    if len(keys) >= BATCH:
                        flush()
                if keys:
                    flush()
            except _NotUtf8 as exc:
                raise _not_utf8(folder, name, exc) from None
            except OSError as exc:
                raise LayoutError(f"{folder.root / name}: {exc}") from None
            except (ijson.JSONError, UnicodeDecodeError) as exc:
                if watch and (isinstance(exc, UnicodeDecodeError) or "overflow" in str(exc)):
                    raise _NeedsExact from None  # yajl's own limits, not the file's
                try:
                    reader.drain()
                except _NotUtf8 as bad:
                    raise _not_utf8(folder, name, bad) from None
                except OSError:
                    pass
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise LayoutError(f"{folder.root / name} is not valid JSON: {first}") from None
        return n

    @staticmethod
    def _check_empty(folder: LayoutFolder, name: str, prefix: str, backend) -> None:
        """A file that gave no entry (it is valid JSON): :class:`LayoutError` unless it is an object
        (and, with a ``prefix``, its member of that name is an object or absent)."""
        with _open(folder, name) as fh:
            events = backend.parse(_Utf8Reader(fh), buf_size=READ_BYTES)
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
        lines that cannot be an item id (not UTF-8, or longer than ``MAX_LINE``)."""
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
            with _open(folder, name) as fh:
                try:
                    for line in _lines(fh):
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
                        if len(rows) >= BATCH:
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
            for batch in cur.sql("SELECT iid, kind, val FROM entries").to_arrow_reader(BATCH):
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
            for batch in cur.sql(sql).to_arrow_reader(BATCH):
                yield from zip(*(col.to_pylist() for col in batch.columns))
        finally:
            cur.close()


def _entry(iid: bytes, vals: list) -> tuple:
    return iid.decode("utf-8", "surrogatepass"), _undump(vals[0]), _undump(vals[1]), _undump(vals[2])


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


# ------------------------------------------------------------------------------------ items


def _media_row(product_id: str, kind: str, role: str, rel: str, ref, mime: str, source: str | None = None,
               width: int | None = None, height: int | None = None, now=None) -> dict:
    media_id = hashlib.sha1(f"{product_id}|{kind}|import:{rel}".encode()).hexdigest()
    return {"media_id": media_id, "product_id": product_id, "kind": kind, "role": role, "position": 0, "url": None,
            "source_media_id": source, "blob": ref.path, "sha256": ref.sha256, "mime": mime, "bytes": ref.bytes,
            "width": width, "height": height, "status": "ok", "attempts": 0,
            "meta": json.dumps({"imported_from": rel}), "updated_at": now}


def _put(store, fh, ext: str, size: int):
    """Copy the first ``size`` bytes of an open file (its checked size: a file that grew since is cut
    there) into the blob store without a per-blob fsync (one ``blobs.sync()`` before the rows)."""
    fh.seek(0)
    left = size
    with store.blobs.writer(ext, sync=False) as w:
        while left > 0 and (chunk := fh.read(min(1 << 20, left))):
            w.write(chunk)
            left -= len(chunk)
        return w.commit()


def _image_size(path: Path) -> tuple[int | None, int | None]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.width, im.height
    except (UnidentifiedImageError, OSError):
        return None, None


def _check_caption(iid: str, rec) -> None:
    """:class:`ItemError` unless the caption entry is an object with text (or no) title and pv."""
    if not isinstance(rec, dict):
        raise ItemError("caption entry not an object", f"item {iid!r}: caption entry is not an object")
    if not all(isinstance(rec.get(k), (str, type(None))) for k in ("title", "pv")):
        raise ItemError("caption entry: title or pv not text", f"item {iid!r}: title or pv is not a string")
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): valid JSON, no valid text
        raise ItemError("caption entry not valid Unicode", f"item {iid!r}: caption holds a lone surrogate") from None


def _category_path(iid: str, label, labels: list[str]) -> list[str]:
    if label is None:
        return []
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(labels):
        raise ItemError("label not an index into the label list",
                        f"item {iid!r}: label {label!r} is not an index into {LABEL_LIST} ({len(labels)} labels)")
    return labels[label].split(" > ")


class _Failures:
    """Failure lines: the first ``MAX_FAILED`` kept, all counted."""

    def __init__(self):
        self.lines: list[str] = []
        self.total = 0

    def add(self, line: str) -> None:
        self.total += 1
        if len(self.lines) < MAX_FAILED:
            self.lines.append(line)


def import_m5product(store, folder: str | Path, platform: str = "m5product", split_version: str = "imported",
                     progress=None, max_bytes: dict[str, int] | None = None) -> ImportReport:
    """Read an M5Product-layout folder into ``store``.

    The folder is untrusted: only regular files inside it are read (:class:`LayoutFolder`), ids are
    checked (:func:`check_item_id`, :func:`check_product_id`), media are sniffed; a bad item is
    counted as failed with its reason and the run goes on; a file of the wrong shape is a
    :class:`LayoutError` raised before anything is written. Memory is bounded (``BATCH`` items at a
    time; the entries are staged in DuckDB); rows are written batch by batch, so a killed import
    leaves whole parts, and a re-run upserts the same rows.

    Args:
        store: the target store (rows are upserted: importing twice changes nothing).
        folder: the layout's root (the caption JSON, images/, videos/, audios/, label files, lists).
        platform: platform name for item ids without an ``m5data_items.json`` entry.
        split_version: version name for the split lists found (train.txt, query.txt, ...).
        progress: called with (items done, items in all).
        max_bytes: the largest media file of each kind imported (image, video, audio); None: the
            download stage's defaults (``download.max_image_bytes``, ``max_video_bytes`` for both others).
    """
    if not PLATFORM.match(platform):
        raise LayoutError(f"platform {platform!r} is not a platform name (letters, digits, '.', '_', '-')")
    with LayoutFolder(folder) as layout:
        return _import(store, layout, platform, split_version, progress, max_bytes or media_caps(None))


def media_caps(settings) -> dict[str, int]:
    """The import's cap per media kind: the download stage's (settings None: their defaults)."""
    from ..config import DownloadSettings

    dl = settings.download if settings is not None else DownloadSettings()
    return {"image": dl.max_image_bytes, "video": dl.max_video_bytes, "audio": dl.max_video_bytes}


def _import(store, folder: LayoutFolder, platform: str, split_version: str, progress,
            max_bytes: dict[str, int]) -> ImportReport:
    from ..storage.runs import StageStats, record_run

    stats = StageStats("import")
    captions_name = find_captions(folder)
    with _Staging(store) as stage:
        # every file of the layout is read and checked before the first blob is written
        stage.json(folder, captions_name, "captions")
        labels = _load(folder, LABEL_LIST, [], list)
        if not all(isinstance(name, str) for name in labels):
            raise LayoutError(f"{folder.root / LABEL_LIST} is not a JSON array of strings")
        if ID_LABEL in folder.names:
            stage.json(folder, ID_LABEL, "labels")
        if ITEMS in folder.names:
            stage.json(folder, ITEMS, "items", "items")
        bad_lines = stage.lines(folder)
        media_files = FolderMedia(folder, max_bytes)
        failed = _Failures()
        out = {"products": 0, "specs": 0, "bytes": 0, "media": Counter()}
        config = {"folder": str(folder.root), "platform": platform}
        try:
            total = stats.n_in = stage.count()
            done = 0
            for batch in _batches(stage.entries()):
                _import_batch(store, stage, batch, labels, platform, media_files, stats, failed, out)
                stats.n_out, stats.bytes = out["products"], out["bytes"]
                if progress:
                    for _ in batch:
                        done += 1
                        progress(done, total)
            splits = _import_splits(store, stage, bad_lines, platform, split_version, stats, failed)
            stats.finish("ok")
        except BaseException:
            stats.finish("failed")
            record_run(store, stats, config)
            raise
    record_run(store, stats, {**config, "split_version": split_version})
    return ImportReport(stats, out["products"], out["specs"], out["media"], splits,
                        split_version if sum(splits.values()) else None, failed.lines, failed.total)


def _batches(entries):
    batch = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _import_batch(store, stage: _Staging, batch: list[tuple], labels: list[str], platform: str,
                  media_files: FolderMedia, stats, failed: _Failures, out: dict) -> None:
    """Check, store the media of, and write the rows of one batch of items (in item id order)."""
    pids = []  # every product id this batch may claim (and some it cannot: those fail their checks)
    for iid, _rec, entry, _label in batch:
        pid = entry.get("product_id") if isinstance(entry, dict) else None
        pid = pid if isinstance(pid, str) else f"{platform}:{iid}"
        if pid.isprintable():  # a valid product id is
            pids.append(pid)
    item_of = stage.taken(pids)  # claimed by an earlier batch; then by this one, in order
    now = datetime.now(timezone.utc)
    products, specs, media, accepted = [], [], [], []
    for iid, rec, entry, label in batch:
        try:
            pid, path, opened = _check_item(iid, rec, entry, label, labels, platform, item_of, media_files)
        except ItemError as exc:
            stats.fail(exc.reason)
            failed.add(exc.detail)
            continue
        accepted.append((pid, iid))
        plat, _, source = pid.partition(":")
        pairs = parse_pv(rec.get("pv"))
        specs += [{"product_id": pid, "position": i, "property": p, "value": v} for i, (p, v) in enumerate(pairs)]
        found = _store_media(store, pid, opened, now)
        for kind, row in found.items():
            media.append(row)
            out["media"][kind] += 1
            out["bytes"] += row["bytes"] or 0
        title = rec.get("title") or None
        products.append({
            "product_id": pid, "platform": plat, "source_id": source, "title": title,
            "category_path": path, "crawled_at": now,
            "content_hash": hashlib.sha256(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode()).hexdigest(),
            "has_image": "image" in found, "has_video": "video" in found, "has_caption": bool(title),
            "has_specs": bool(pairs), "run_id": stats.run_id,
        })
    store.blobs.sync()  # the batch's blobs are durable before any row names them
    for table, rows in (("products", products), ("specs", specs), ("media", media)):
        if rows:
            with store.writer(table) as w:
                w.write(rows)
    stage.accept(accepted)
    out["products"] += len(products)
    out["specs"] += len(specs)


def _import_splits(store, stage: _Staging, bad_lines: dict[str, int], platform: str, split_version: str,
                   stats, failed: _Failures) -> dict[str, int]:
    """Write the split lists' ``splits`` rows (one write: the version's rows replace its earlier ones);
    rows per list. A failed item's lines go with it; an id with no caption entry becomes
    ``<platform>:<id>``; a line that is no item id (not UTF-8, or not the pattern) is counted."""
    names = list(LIST_FILES)
    splits = {split: 0 for split in bad_lines}
    bad = dict(bad_lines)
    rows = []
    with store.writer("splits") as w:
        for k, line, pid, known in stage.split_lines():
            split = names[k]
            if pid is None:
                if known:
                    continue  # a failed item, counted once as such
                iid = line.decode("utf-8")
                if not ITEM_ID.match(iid):
                    bad[split] += 1
                    continue
                pid = f"{platform}:{iid}"
            rows.append({"product_id": pid, "split": split, "version": split_version})
            splits[split] += 1
            if len(rows) >= BATCH:
                w.write(rows)
                rows = []
        if rows:
            w.write(rows)
    for split, n in bad.items():
        if n:
            name = LIST_FILES[split]
            stats.fail(f"{name}: line not a valid item id", n)
            failed.add(f"{name}: {n} line(s) not an item id")
    return splits


def _check_item(iid: str, rec, entry, label, labels: list[str], platform: str,
                item_of: dict[str, str], media_files: FolderMedia) -> tuple[str, list[str], list[MediaFile]]:
    """Everything about one item that can be wrong, checked before anything is stored:
    its product id, category path and open, sniffed media files (:class:`ItemError` if one is bad).
    ``entry`` is its ``m5data_items.json`` entry, ``label`` its label index (None when absent)."""
    check_item_id(iid)
    _check_caption(iid, rec)
    pid = check_product_id(iid, entry, platform)
    if pid in item_of:
        raise ItemError("product id taken by another item", f"item {iid!r}: {pid!r} is item {item_of[pid]!r}'s product id")
    path = _category_path(iid, label, labels)
    opened = media_files.open(iid)
    item_of[pid] = iid
    return pid, path, opened


def _store_media(store, pid: str, opened: list[MediaFile], now) -> dict[str, dict]:
    """Copy the item's checked files into the blob store; its ``media`` rows by kind."""
    found = {}
    try:
        for f in opened:
            ref = _put(store, f.fh, f.sniffed.ext, f.size)
            if f.kind == "image":
                w, h = _image_size(store.blobs.path(ref.path))
                found["image"] = _media_row(pid, "image", "main", f.rel, ref, f.sniffed.mime, width=w, height=h, now=now)
            elif f.kind == "video":
                found["video"] = _media_row(pid, "video", "video", f.rel, ref, f.sniffed.mime, now=now)
            else:
                source_id = found["video"]["media_id"] if "video" in found else None
                found["audio"] = _media_row(pid, "audio", "derived", f.rel, ref, f.sniffed.mime, source_id, now=now)
    finally:
        for f in opened:
            f.fh.close()
    return found


@app.command("m5product")
def m5product(
    ctx: typer.Context,
    folder: Path = typer.Argument(..., help="The M5Product-layout folder (caption JSON, images/, videos/, audios/ ...)."),
    platform: str = typer.Option("m5product", "--platform", help="Platform name for product ids (<platform>:<item id>)."),
    split_version: str = typer.Option("imported", "--split-version", help="Split version for train.txt, query.txt ... lists."),
) -> None:
    """Read an M5Product-layout folder into the store (products, specs, media blobs, category paths, split lists)."""
    from ..console import Table, esc

    from ..verbs import open_store
    from ..console import console, stage_summary

    store, settings = open_store(ctx, create=True)
    with one_line_errors(LayoutError):
        report = import_m5product(store, folder, platform=platform, split_version=split_version,
                                  max_bytes=media_caps(settings))
    console.print(stage_summary(report.stats))
    for line in report.failed[:SHOW_FAILED]:
        console.print(f"[yellow]failed:[/] {esc(line)}", highlight=False, soft_wrap=True)
    if report.failed_total > SHOW_FAILED:
        console.print(f"[yellow]failed:[/] ... and {report.failed_total - SHOW_FAILED:,} more", highlight=False)
    t = Table(title=f"imported {esc(str(folder))}")
    t.add_column("rows")
    t.add_column("count", justify="right")
    t.add_row("products", f"{report.products:,}")
    t.add_row("spec rows", f"{report.specs:,}")
    for kind, n in sorted(report.media.items()):
        t.add_row(f"media: {kind}", f"{n:,}")
    for split, n in report.splits.items():
        t.add_row(f"split {report.split_version}/{split}", f"{n:,}")
    console.print(t)

"""Which parts of a table can be read without the newest-write-per-key window.

Before compaction a table is read through a window that keeps, per key, the row of the newest write
(see ``Store.view_sql``). Over tens of millions of spec rows that window costs minutes, although
most groups (a product's spec rows) were written once: one crawl writes each product in one part.

For each part a small *key sidecar* (``tables/<table>/_keys/<part>.keys``) says how many rows it has,
whether it holds each key once, and the DuckDB ``hash`` of every group (``TableSpec.group``) in it
with the group's rows and ``_seq`` there (what a count of a re-written group's rows needs,
``Store.count_grown``).
It is made by the part's writer as it commits the part (:func:`index`), else by the first read that
needs it (parts are immutable: a part's name never changes content), and is only a cache: a missing,
stale or unreadable sidecar is made again, and a read-only store computes it in memory. From the sidecars a read splits the table (:func:`plan`):

- a group whose hash is in one part only, a part holding each key once, is one write's rows: they
  are read as they are (the window would keep every one of them);
- every other group (its hash in two parts or more: a re-crawl, or a hash collision) and every row of
  a part holding a key twice go through the window, exactly as before.

A group is never split between the two ways, so the rows read are exactly the window's.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .schema import SEQ_COLUMN
from .temps import TMP_PREFIX, temp_name

KEYS_DIR = "_keys"
SUFFIX = ".keys"  # format 3 (:func:`_save`); the ``.npz`` sidecars of formats 1 and 2 are still read


@dataclass(frozen=True)
class PartKeys:
    rows: int
    unique: bool  # every key appears once in the part, every group with one _seq
    hashes: np.ndarray  # sorted distinct uint64 DuckDB hashes of the part's groups
    counts: np.ndarray | None = None  # each group's rows in the part, by ``hashes`` (None: an older sidecar)
    seqs: np.ndarray | None = None  # each group's newest ``_seq`` in the part (its one write's, when unique)

    def find(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each of the group hashes ``wanted``: whether the part holds it, and its index in ``hashes``
        (meaningful where held): the sorted hashes searched."""
        if not len(self.hashes):
            return np.zeros(len(wanted), dtype=bool), np.zeros(len(wanted), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.hashes, wanted), len(self.hashes) - 1)
        return self.hashes[at] == wanted, at


@dataclass(frozen=True)
class Plan:
    plain: list[Path]  # parts each holding its keys once (read as they are, outside ``contested``)
    resolve: list[Path]  # parts holding a key twice: read whole through the window
    contested: np.ndarray  # group hashes found in two parts or more: read through the window
    mixed: list[Path]  # plain parts that hold contested groups too (their contested rows go to the window)
    rows: int | None = None  # the parts' rows, replaced ones included (None: a part without its sidecar)


def group_hash_sql(spec) -> str:
    """The SQL of a row's group hash (the same expression in the sidecar and in the view)."""
    return f"hash({', '.join(spec.group)})"


def sidecar_path(part: Path) -> Path:
    return part.parent / KEYS_DIR / (part.name + SUFFIX)


def _legacy_path(part: Path) -> Path:
    return part.parent / KEYS_DIR / (part.name + ".npz")  # formats 1 and 2 (NumPy's zip of arrays)


def _version() -> str:
    import duckdb

    return duckdb.__version__  # hash() may change between DuckDB versions: a sidecar is made again then


# Format 3: a header (magic, the part's size, its rows, unique, whether each group's rows and _seq follow,
# the number of groups, the DuckDB version's length), the DuckDB version, then the sorted hashes and, when
# given, the rows and newest _seq per group, each n 8-byte integers: one read and no parsing, where NumPy's
# zip of arrays (formats 1-2) cost ~1.2 ms a sidecar to open (a nightly report loads some fifty).
_MAGIC = b"M5KEYS\x00\x03"
_HEADER = struct.Struct("<8sqqqqqq")


def _load(part: Path) -> PartKeys | None:
    try:
        data = sidecar_path(part).read_bytes()
    except OSError:
        return _load_legacy(part)
    try:
        magic, size, rows, unique, detail, n, vlen = _HEADER.unpack_from(data)
        at = _HEADER.size + vlen
        if (magic != _MAGIC or size != part.stat().st_size or data[_HEADER.size:at].decode() != _version()
                or len(data) != at + 8 * n * (3 if detail else 1)):
            return None
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    hashes = np.frombuffer(data, np.uint64, n, at)
    if not detail:
        return PartKeys(rows, bool(unique), hashes)
    return PartKeys(rows, bool(unique), hashes, np.frombuffer(data, np.int64, n, at + 8 * n),
                    np.frombuffer(data, np.int64, n, at + 16 * n))


def _load_legacy(part: Path) -> PartKeys | None:
    """A sidecar of formats 1 and 2, made by an earlier version (format 1: without each group's rows)."""
    try:
        with np.load(_legacy_path(part), allow_pickle=False) as z:
            meta = z["meta"]
            if (int(meta[0]) not in (1, 2) or int(meta[1]) != part.stat().st_size
                    or str(z["version"]) != _version()):
                return None
            newer = int(meta[0]) >= 2
            return PartKeys(int(meta[2]), bool(meta[3]), z["hashes"].astype(np.uint64, copy=False),
                            z["counts"].astype(np.int64, copy=False) if newer else None,
                            z["seqs"].astype(np.int64, copy=False) if newer else None)
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _save(part: Path, keys: PartKeys) -> None:
    """Write the sidecar atomically; a store we cannot write to keeps it in memory only."""
    folder = part.parent / KEYS_DIR
    tmp = part.parent / temp_name(SUFFIX, prefix=TMP_PREFIX)  # swept with the table's temp files if we die
    detail = keys.counts is not None and keys.seqs is not None
    version = _version().encode()
    try:
        folder.mkdir(exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(_HEADER.pack(_MAGIC, part.stat().st_size, keys.rows, int(keys.unique), int(detail),
                                  len(keys.hashes), len(version)) + version)
            fh.write(np.ascontiguousarray(keys.hashes, np.uint64).tobytes())
            if detail:
                fh.write(np.ascontiguousarray(keys.counts, np.int64).tobytes())
                fh.write(np.ascontiguousarray(keys.seqs, np.int64).tobytes())
        os.replace(tmp, sidecar_path(part))
    except OSError:
        tmp.unlink(missing_ok=True)


def compute(con, part: Path, spec) -> PartKeys:
    """A part's keys, read by DuckDB (raises duckdb.Error when the part cannot be read).

    One grouped scan gives each group hash's rows and newest and oldest ``_seq``; a part is plain when
    each group comes from one write (one ``_seq``) and each key appears once: for a table whose key is
    its group, one row per group hash; otherwise the sorted 64-bit hashes of the keys, all different.
    A hash shared by two groups or two keys (about once in 10^7 parts of a million rows) only makes the
    part look as if it held a key twice: it is then read through the window, as such a part is.
    (Counting the distinct keys and groups, as formats 1-2 did, cost 0.22 CPU s a million pool rows; this, 0.07.)
    """
    src = "read_parquet(" + "'" + str(part).replace("'", "''") + "')"
    got = con.execute(f"SELECT {group_hash_sql(spec)} AS h, count(*) AS n, max({SEQ_COLUMN}) AS s, "
                      f"min({SEQ_COLUMN}) AS s0 FROM {src} GROUP BY 1").fetchnumpy()
    hashes = np.asarray(got["h"], dtype=np.uint64)
    counts = np.asarray(got["n"], dtype=np.int64)
    seqs = np.asarray(got["s"], dtype=np.int64)
    unique = bool((seqs == np.asarray(got["s0"], dtype=np.int64)).all())
    if unique and tuple(spec.key) == tuple(spec.group):
        unique = bool((counts == 1).all())
    elif unique:
        keys = con.execute(f"SELECT hash({', '.join(spec.key)}) AS k FROM {src}").fetchnumpy()["k"]
        keys = np.sort(np.asarray(keys, dtype=np.uint64))
        unique = bool((keys[1:] != keys[:-1]).all())
    order = np.argsort(hashes, kind="stable")
    return PartKeys(int(counts.sum()), unique, hashes[order], counts[order], seqs[order])


def part_keys(connection, part: Path, spec) -> PartKeys | None:
    """The part's keys from its sidecar, made when missing; None when the part cannot be read.

    ``connection`` returns a DuckDB connection; it is called only when the sidecar is missing.
    """
    import duckdb

    keys = _load(part)
    if keys is not None:
        return keys
    try:
        keys = compute(connection(), part, spec)
    except duckdb.Error:
        return None
    _save(part, keys)
    return keys


def index(part: Path, spec) -> None:
    """Make a part's sidecar as its writer publishes it (``PartWriter.commit``): the first reader then finds
    it (a nightly run's report counted the night's pools parts, 3.7 million rows, by making theirs:
    0.8 CPU s). Never fails the write: a part whose sidecar is not made here gets it from its first reader."""
    import duckdb

    from .readdb import read_cursor

    try:
        con = read_cursor()
    except duckdb.Error:
        return
    try:
        _save(part, compute(con, part, spec))
    except (duckdb.Error, OSError):
        pass
    finally:
        con.close()


def parts_keys(parts: list[Path], spec) -> list[tuple[Path, PartKeys | None]]:
    """Each part with its keys (None: unreadable), from the sidecars, made where missing."""
    from .readdb import read_cursor

    # A sidecar is made by a query on a cursor of the process's read database (~0.6 ms; a new database
    # costs 12-15 ms, and a store connection plans every table): none with every sidecar in place.
    opened = []

    def connection():
        if not opened:
            opened.append(read_cursor())
        return opened[0]

    try:
        return [(p, part_keys(connection, p, spec)) for p in parts]
    finally:
        for con in opened:
            con.close()


def plan(parts: list[Path], spec) -> Plan:
    """Split ``parts`` into those read as they are and those read through the window (see the module)."""
    known = parts_keys(parts, spec)
    plain = [(p, k) for p, k in known if k is not None and k.unique]
    resolve = [p for p, k in known if k is None or not k.unique]
    every = [k.hashes for _, k in known if k is not None]
    if len(every) > 1:
        values, counts = np.unique(np.concatenate(every), return_counts=True)
        contested = values[counts > 1]
    else:
        contested = np.empty(0, np.uint64)
    mixed = [p for p, k in plain if len(contested) and np.isin(k.hashes, contested, assume_unique=True).any()]
    rows = None if any(k is None for _, k in known) else sum(k.rows for _, k in known)
    return Plan([p for p, _ in plain], resolve, contested, mixed, rows)


def sweep(directory: Path, parts: list[Path]) -> None:
    """Remove the sidecars of parts that are gone (after a compaction or a replace)."""
    folder = directory / KEYS_DIR
    if not folder.is_dir():
        return
    live = {p.name + suffix for p in parts for suffix in (SUFFIX, ".npz")}
    for path in folder.iterdir():
        if path.name not in live:
            path.unlink(missing_ok=True)


def held(parts: list, spec, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` (group hashes) a group of ``parts`` has, from their key sidecars (made where
    missing): each sidecar's sorted hashes searched (no set of every old hash built: 0.4 -> 0.05 s for
    the 11k changed products of 1M, against 12.7 million spec rows' sidecars)."""
    found = np.zeros(len(hashes), dtype=bool)
    for _, keys in parts_keys(parts, spec):
        if keys is not None:
            found |= keys.find(hashes)[0]
    return found

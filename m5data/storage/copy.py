"""``m5data store copy SRC DST``: move a store between a folder and object storage (either way).

What a store is, not how it got there: each table is copied as the rows it reads (the newest row per
key) in one streaming write, so the copy holds one part per table and reads the same rows; blobs are
copied to the same content address (a blob whose bytes no longer hash to its name is left out and
counted: ``m5data doctor`` explains it); derived files and crawl logs are copied file by file. The
destination must hold no rows yet (a copy never merges into another store's rows). Catalog, key
sidecars, locks, temp files and the stages' states (``derived/state/``: their watermarks count the
source store's own commits, meaningless in another store) are not copied: each store makes its own,
and the first run of a global stage after a copy is a full one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .errors import StoreError
from .schema import TABLES
from .stage_state import STATE_DIR

FILE_AREAS = ("derived/", "logs/")  # copied file by file, besides the tables and blobs
NOT_COPIED = (f"derived/{STATE_DIR}/",)  # per store: watermarks are a store's own commit numbers
BATCH_ROWS = 100_000


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    blobs: int = 0
    files: int = 0
    bytes: int = 0
    bad_blobs: list[str] = field(default_factory=list)  # blobs whose content no longer matches their name


def copy_store(src, dst, progress=None) -> CopyReport:
    """Copy every table, blob and derived file of ``src`` into ``dst`` (opened stores)."""
    if full := [name for name in TABLES if dst.count(name)]:
        raise StoreError(f"the store {dst.root} already holds rows ({', '.join(full)}): copy into a new store")
    report = CopyReport()
    for name in TABLES:
        if report.rows.setdefault(name, _copy_table(src, dst, name)):
            _say(progress, f"table {name}: {report.rows[name]:,} rows")
    for rel in src.blobs.iter_paths():
        data = src.read_bytes(rel)
        if data is None:
            continue
        if hashlib.sha256(data).hexdigest() != rel.rsplit("/", 1)[1].split(".")[0]:
            report.bad_blobs.append(rel)
            continue
        dst.write_bytes(rel, data)
        report.blobs += 1
        report.bytes += len(data)
    _say(progress, f"blobs: {report.blobs:,}")
    for area in FILE_AREAS:
        for rel in src.files(area):
            if rel.startswith(NOT_COPIED):
                continue
            if (data := src.read_bytes(rel)) is not None:
                dst.write_bytes(rel, data)
                report.files += 1
                report.bytes += len(data)
    _say(progress, f"files: {report.files:,}")
    dst.refresh_catalog(quiet=True)
    return report


def _copy_table(src, dst, name: str) -> int:
    """The rows ``name`` reads in ``src``, streamed into ``dst`` as one write; the number of rows."""
    if not src.count(name):
        return 0
    con = src.connect()
    try:
        reader = con.sql(f"SELECT * FROM {name}").to_arrow_reader(BATCH_ROWS)
        rows = 0
        with dst.writer(name) as out:
            for batch in reader:
                out.write(batch)
                rows += batch.num_rows
        return rows
    finally:
        con.close()


def _say(progress, text: str) -> None:
    if progress:
        progress(text)

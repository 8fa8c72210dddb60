"""``m5data doctor [--repair]``: check a store after a crash or a disk problem, and repair it.

Checks, in order (each problem is a :class:`Finding`):

- **parts**: every Parquet part of every table reads in full and has the table's schema.
  Repair: move it aside to ``<store>/quarantine/<time>/<table>/`` (never deleted), reporting the
  rows it held when its footer still says.
- **blobs**: every media row with status ``ok`` has its file: a blob present and hashing to its
  sha256 (``quick`` checks presence only), a derived file or frames folder present.
  Repair: a downloaded row goes back to ``pending`` (``m5data download`` fetches it again); the
  derived rows of a source go back to ``pending`` without their source stamp (``m5data extract``
  makes them again). A blob whose bytes are wrong is moved to quarantine first.
- **temp files** of dead runs (their owner's PID is gone). Repair: remove them. Temp files of live
  runs are listed as info only.
- **catalog**: ``catalog.duckdb`` readable and current. Repair: rebuild it.

The logic never prints; ``doctor_cli.py`` shows the findings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import locks
from .blobs import BlobPathError, resolve_blob
from .runs import StageStats, record_run
from .schema import SEQ_COLUMN, TABLES
from .store import Store, StoreBusy
from .temps import find_temps

STAGE = "doctor"
QUARANTINE = "quarantine"
DOWNLOADED_KINDS = ("image", "video", "audio")  # kinds a URL row can have (download fetches them)

# severities: error and warning make the check fail; info is shown only
ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Finding:
    check: str  # part, blob, derived, temp, catalog
    severity: str  # error, warning, info
    path: str  # relative to the store root where it is inside it
    problem: str
    repair: str = ""  # what --repair did (or would do)
    repaired: bool = False


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # parts, blobs, derived files, temp files
    stats: StageStats | None = None
    repair: bool = False

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity in (ERROR, WARNING)]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (or, with --repair, everything wrong was repaired)."""
        return all(f.repaired for f in self.problems)


def _rel(store: Store, path: Path) -> str:
    try:
        return str(Path(path).relative_to(store.root))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------- parts
def part_problem(path: Path, spec) -> tuple[str | None, int | None]:
    """``(problem, rows)`` of one part: None when it reads in full with the table's schema.

    ``rows`` is the row count from the footer when the footer is readable (what a quarantine loses).
    """
    rows = None
    try:
        meta = pq.ParquetFile(path).metadata
        rows = meta.num_rows
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"unreadable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", rows
    schema = table.schema
    if SEQ_COLUMN not in schema.names or schema.field(SEQ_COLUMN).type != pa.int64():
        return f"wrong schema: no int64 {SEQ_COLUMN} column", rows
    for name in schema.names:
        if name == SEQ_COLUMN:
            continue
        if name not in spec.schema.names:
            return f"wrong schema: column {name!r} is not in table {spec.name}", rows
        if schema.field(name).type != spec.schema.field(name).type:
            return (f"wrong schema: column {name} is {schema.field(name).type}, "
                    f"table {spec.name} has {spec.schema.field(name).type}"), rows
    for key in spec.key:
        if key not in schema.names:
            return f"wrong schema: key column {key} missing", rows
        if table.column(key).null_count:
            return f"wrong schema: key column {key} has nulls", rows
    owner = (schema.metadata or {}).get(b"m5data.table")
    if owner is not None and owner.decode() != spec.name:
        return f"wrong table: the part says it belongs to {owner.decode()!r}", rows
    return None, rows


def _quarantine_dir(store: Store, stamp: str) -> Path:
    return store.root / QUARANTINE / stamp


def _check_parts(store: Store, report: DoctorReport, repair: bool, stamp: str) -> None:
    n = 0
    for name, spec in TABLES.items():
        for part in store.parts(name):
            n += 1
            problem, rows = part_problem(part, spec)
            if problem is None:
                continue
            lost = f"{rows:,} row(s)" if rows is not None else "an unknown number of rows (footer unreadable)"
            finding = Finding("part", ERROR, _rel(store, part), f"table {name}: {problem}",
                              f"move to {QUARANTINE}/; loses {lost} of {name}")
            if repair:
                dest = _quarantine_dir(store, stamp) / name / part.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(part, dest)
                    finding.repair = f"moved to {_rel(store, dest)}; lost {lost} of {name}"
                    finding.repaired = True
                except FileNotFoundError:  # a concurrent compaction removed it: nothing left to move
                    finding.repair, finding.repaired = "already gone", True
            report.findings.append(finding)
    report.checked["parts"] = n


# ------------------------------------------------------------------------------------------- blobs
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_OK_COLUMNS = ["media_id", "product_id", "kind", "role", "url", "source_media_id", "blob", "sha256"]
_OK_WHERE = "status = 'ok' AND blob IS NOT NULL"
BATCH = 20_000  # media rows held in Python at a time


def _ok_batches(store: Store) -> tuple[int, Iterator[list[dict]]] | None:
    """``(rows, batches)`` of media rows with status ok and a file, streamed (never every row at once);
    None when the media table cannot be read."""
    import duckdb

    from .store import StoreError

    try:
        con = store.connect(need=("media",), only=("media",))
    except StoreError:
        return None
    try:
        total = con.execute(f"SELECT count(*) FROM media WHERE {_OK_WHERE}").fetchall()[0][0]
        reader = con.sql(f"SELECT {', '.join(_OK_COLUMNS)} FROM media WHERE {_OK_WHERE}").to_arrow_reader(BATCH)
    except duckdb.Error:
        con.close()
        return None

    def batches() -> Iterator[list[dict]]:
        try:
            for batch in reader:
                yield batch.to_pylist()
        finally:
            con.close()

    return total, batches()


def blob_problem(store: Store, row: dict, verify: bool, cache: dict) -> str | None:
    """What is wrong with an ok media row's file (None when nothing is)."""
    rel = row["blob"]
    key = (rel, row.get("sha256") if verify else None)
    if key in cache:
        return cache[key]
    problem = None
    path = blob_file(store, rel)
    if path is None:  # absolute, '..' or a symlink out: never read, hashed or moved
        problem = f"blob path {rel!r} is outside the store"
    elif not path.exists():
        problem = "file missing"
    elif path.is_dir():
        if row["kind"] == "frames" and not (path / "frames.json").is_file():
            problem = "frames folder without frames.json"
    elif verify:
        want = row.get("sha256") or (path.name.split(".")[0] if rel.startswith("blobs/") else None)
        if want:
            got = _sha256(path)
            if got != want:
                problem = f"content does not match its sha256 ({got[:12]}... instead of {want[:12]}...)"
    cache[key] = problem
    return problem


def blob_file(store: Store, rel: str) -> Path | None:
    """The file of a blob path read from ``media`` (:func:`resolve_blob`), None when it leads outside the store."""
    try:
        return resolve_blob(store.root, rel)
    except BlobPathError:
        return None


def missing_blobs(store: Store) -> list[dict]:
    """Media rows with status ok whose file is not on disk, or whose path leads outside the store
    (cheap: presence only; for ``stats``). Streams the rows; returns only the missing ones."""
    found = _ok_batches(store)
    if found is None:
        return []
    return [r for batch in found[1] for r in batch
            if (path := blob_file(store, r["blob"])) is None or not path.exists()]


def _is_downloaded(row: dict) -> bool:
    return row.get("source_media_id") is None and row.get("url") is not None


def _check_blobs(store: Store, report: DoctorReport, repair: bool, verify: bool, stamp: str,
                 progress: Callable[[str, int, int], None] | None) -> None:
    found = _ok_batches(store)
    if found is None:
        report.findings.append(Finding("blob", ERROR, "tables/media", "media table unreadable: blobs not checked",
                                       "repair its parts first (--repair), then run doctor again"))
        return
    total, batches = found
    cache: dict = {}
    bad: list[tuple[dict, str]] = []
    done = 0
    # hashing reads files and releases the GIL: a few threads keep the disk and the cores busy
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        for rows in batches:
            for row, problem in zip(rows, pool.map(lambda r: blob_problem(store, r, verify, cache), rows)):
                if problem is not None:
                    bad.append((row, problem))
            done += len(rows)
            if progress is not None:
                progress("blobs", done, total)
    report.checked["media files"] = done
    if not bad:
        return
    now = datetime.now(timezone.utc)
    resets: dict[str, dict] = {}
    sources = {r["source_media_id"] for r, _ in bad if not _is_downloaded(r) and r.get("source_media_id")}
    siblings: dict[str, list[dict]] = {}
    full: dict[str, dict] = {}
    if repair:  # whole rows (writes are upserts of whole rows)
        if sources:  # a derived file missing: all derived rows of that source are made again
            for r in store.read("media", where=f"source_media_id IN ({_sql_list(sources)})").to_pylist():
                siblings.setdefault(r["source_media_id"], []).append(r)
        ids = {r["media_id"] for r, _ in bad if _is_downloaded(r)}
        if ids:
            full = {r["media_id"]: r for r in store.read("media", where=f"media_id IN ({_sql_list(ids)})").to_pylist()}
    moved: set[str] = set()
    for row, problem in bad:
        downloaded = _is_downloaded(row)
        check = "blob" if downloaded else "derived"
        action = ("back to pending: `m5data download` fetches it again" if downloaded
                  else "back to pending: `m5data extract` makes it again")
        finding = Finding(check, ERROR, row["blob"], f"{row['kind']} {row['media_id']} (status ok): {problem}", action)
        if repair:
            # the row's own path (a symlink is moved, not what it points at), once it is known to lead inside
            path = store.root / row["blob"] if blob_file(store, row["blob"]) is not None else None
            if problem.startswith("content") and row["blob"] not in moved and path is not None and path.is_file():
                dest = _quarantine_dir(store, stamp) / row["blob"]
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                moved.add(row["blob"])
            if downloaded:
                r = full[row["media_id"]]
                resets[r["media_id"]] = _pending(r, f"doctor: {problem} ({r['blob']})", now)
            else:
                for r in siblings.get(row["source_media_id"], []):
                    resets[r["media_id"]] = _pending(r, f"doctor: {problem} ({row['blob']})", now, derived=True)
            finding.repaired = True
        report.findings.append(finding)
    if resets:
        store.write("media", list(resets.values()))


def _sql_list(values) -> str:
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in sorted(values))


def _pending(row: dict, error: str, now: datetime, derived: bool = False) -> dict:
    """A media row returned to pending: its old file is forgotten, and a derived row loses its
    source stamp (meta.source_blob) so that extract sees it as not done."""
    meta = {}
    if row.get("meta"):
        try:
            meta = json.loads(row["meta"])
        except ValueError:
            meta = {}
    if not isinstance(meta, dict):
        meta = {}
    if derived:
        meta.pop("source_blob", None)
    meta["doctor"] = {"reset_at": now.isoformat(), "blob": row.get("blob"), "reason": error}
    return {**row, "status": "pending", "error": error, "blob": None if not derived else row.get("blob"),
            "sha256": None, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True), "updated_at": now}


# -------------------------------------------------------------------------------------- temp files
def _check_temps(store: Store, report: DoctorReport, repair: bool) -> None:
    import shutil

    temps = find_temps(store.root)
    report.checked["temp files"] = len(temps)
    for t in temps:
        owner = f"PID {t.pid}" if t.pid is not None else "an unnamed owner"
        if t.alive:
            report.findings.append(Finding("temp", INFO, _rel(store, t.path),
                                           f"in use by a running process ({owner}), {t.bytes:,} bytes", "kept"))
            continue
        finding = Finding("temp", WARNING, _rel(store, t.path), f"left by a dead run ({owner}), {t.bytes:,} bytes",
                          "remove")
        if repair:
            try:
                shutil.rmtree(t.path) if t.path.is_dir() and not t.path.is_symlink() else t.path.unlink()
            except FileNotFoundError:
                pass
            finding.repair, finding.repaired = "removed", True
        report.findings.append(finding)


# ----------------------------------------------------------------------------------------- catalog
def _check_catalog(store: Store, report: DoctorReport, repair: bool) -> None:
    wanted = {spec.name: store.view_sql(spec) for spec in TABLES.values()}
    have = store._catalog_views()
    if have == wanted:
        return
    if not store.catalog_path.exists():
        finding = Finding("catalog", INFO, store.catalog_path.name, "missing (derivable)", "rebuild")
    elif have is None:
        finding = Finding("catalog", WARNING, store.catalog_path.name, "unreadable (corrupt, or open for writing "
                          "by another program)", "rebuild")
    else:
        finding = Finding("catalog", INFO, store.catalog_path.name, "views out of date (derivable)", "rebuild")
    if repair:
        finding.repaired = store.refresh_catalog(quiet=True)
        finding.repair = "rebuilt" if finding.repaired else "could not rebuild (busy)"
    report.findings.append(finding)


# -------------------------------------------------------------------------------------------- run
def run(store: Store, settings=None, *, repair: bool = False, verify_blobs: bool = True,
        progress: Callable[[str, int, int], None] | None = None) -> DoctorReport:
    """Check ``store`` (and with ``repair`` fix what can be fixed); records a ``runs`` row.

    Args:
        store: the store.
        settings: effective settings (recorded in the runs row), optional.
        repair: quarantine bad parts, return media with a missing or wrong file to pending, remove
            dead runs' temp files, rebuild the catalog. Refused (StoreBusy) while any stage runs.
        verify_blobs: hash every blob against its sha256 (False: check presence only).
        progress: called as ``progress(step, done, total)`` while blobs are checked.
    """
    from ..config import as_dict

    report = DoctorReport(repair=repair)
    stats = StageStats(STAGE)
    if repair:  # exclusive: no stage may write while parts move and rows are reset
        try:
            with locks.hold(store.root, locks.STORE_LOCK, "doctor --repair", error=StoreBusy), \
                    locks.hold(store.root, STAGE, "doctor --repair", error=StoreBusy):
                _run(store, report, True, verify_blobs, progress)
        except StoreBusy as exc:
            busy = locks.holders(store.root)
            if busy:
                names = ", ".join(locks.describe(h) for n, h in busy if n != locks.STORE_LOCK)
                raise StoreBusy(f"doctor --repair: the store {store.root} is in use by {names or 'a stage'}; "
                                f"wait for it to finish or stop it") from None
            raise exc
    else:
        _run(store, report, False, verify_blobs, progress)
    stats.n_in = sum(report.checked.values())
    stats.n_out = sum(1 for f in report.problems if f.repaired)
    for f in report.problems:
        stats.fail(f"{f.check} {f.severity}")
    report.stats = stats.finish("ok" if report.ok else "failed")
    try:
        record_run(store, stats, {**(as_dict(settings) if settings is not None else {}),
                                  "job": {"repair": repair, "verify_blobs": verify_blobs}})
    except OSError:
        pass  # a read-only store can still be checked
    return report


def _run(store: Store, report: DoctorReport, repair: bool, verify: bool, progress) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    _check_temps(store, report, repair)
    _check_parts(store, report, repair, stamp)
    _check_blobs(store, report, repair, verify, stamp, progress)
    _check_catalog(store, report, repair)

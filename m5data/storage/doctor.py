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
- **catalog**: ``catalog.duckdb`` readable and current: a stale view (DuckDB on it may read other
  rows than the store) is a warning. Repair: rebuild it.

The logic never prints; ``m5data/tools/doctor_cli.py`` shows the findings. The blob check is ``doctor_blobs.py``,
the findings and the quarantine ``doctor_findings.py``; this module checks parts, temp files and the
catalog, and runs the checks.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import locks
from .doctor_blobs import blob_file, blob_problem, check_blobs, missing_blobs
from .doctor_findings import ERROR, INFO, QUARANTINE, WARNING, DoctorReport, Finding, quarantine_dir, rel
from .runs import StageStats
from .schema import SEQ_COLUMN, TABLES
from .store import Store, StoreBusy
from .temps import find_temps

__all__ = ["DOWNLOADED_KINDS", "ERROR", "INFO", "QUARANTINE", "STAGE", "WARNING", "DoctorReport", "Finding",
           "blob_file", "blob_problem", "missing_blobs", "part_problem", "run"]

STAGE = "doctor"
DOWNLOADED_KINDS = ("image", "video", "audio")  # kinds a URL row can have (download fetches them)


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

def _check_parts(store: Store, report: DoctorReport, repair: bool, stamp: str) -> None:
    n = 0
    for name, spec in TABLES.items():
        for part in store.parts(name):
            n += 1
            problem, rows = part_problem(part, spec)
            if problem is None:
                continue
            lost = f"{rows:,} row(s)" if rows is not None else "an unknown number of rows (footer unreadable)"
            finding = Finding("part", ERROR, rel(store, part), f"table {name}: {problem}",
                              f"move to {QUARANTINE}/; loses {lost} of {name}")
            if repair:
                dest = quarantine_dir(store, stamp) / name / part.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(part, dest)
                    finding.repair = f"moved to {rel(store, dest)}; lost {lost} of {name}"
                    finding.repaired = True
                except FileNotFoundError:  # a concurrent compaction removed it: nothing left to move
                    finding.repair, finding.repaired = "already gone", True
            report.findings.append(finding)
    report.checked["parts"] = n

# -------------------------------------------------------------------------------------- temp files
def _check_temps(store: Store, report: DoctorReport, repair: bool) -> None:
    import shutil

    temps = find_temps(store.local_root())
    report.checked["temp files"] = len(temps)
    for t in temps:
        owner = f"PID {t.pid}" if t.pid is not None else "an unnamed owner"
        if t.alive:
            report.findings.append(Finding("temp", INFO, rel(store, t.path),
                                           f"in use by a running process ({owner}), {t.bytes:,} bytes", "kept"))
            continue
        finding = Finding("temp", WARNING, rel(store, t.path), f"left by a dead run ({owner}), {t.bytes:,} bytes",
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
    wanted = store.catalog_views()
    have = store._catalog_views(verify=True)
    if have == wanted:
        return
    if not store.catalog_path.exists():
        finding = Finding("catalog", INFO, store.catalog_path.name, "missing (derivable)", "rebuild")
    elif have is None:
        finding = Finding("catalog", WARNING, store.catalog_path.name, "unreadable (corrupt, or open for writing "
                          "by another program)", "rebuild")
    else:
        stale = [name for name in wanted if have.get(name) != wanted[name]]
        finding = Finding("catalog", WARNING, store.catalog_path.name,
                          f"views out of date for {', '.join(stale)}{_made_for(store, have)}: DuckDB on the "
                          f"catalog may read other rows than the store", "rebuild")
    if repair:
        finding.repaired = store.refresh_catalog(quiet=True)
        finding.repair = "rebuilt" if finding.repaired else "could not rebuild (busy)"
    report.findings.append(finding)


def _made_for(store: Store, views: dict[str, str]) -> str:
    """Where a catalog of an older m5data, whose views named their store's folder, was made (when elsewhere)."""
    for sql in views.values():
        if (m := re.search(r"read_parquet\('(.*?)[/\\]tables[/\\]\w+[/\\]part-", sql)) and m.group(1) != str(store.root):
            return f" (made for the store at {m.group(1)}: copied or moved since)"
    return ""


# -------------------------------------------------------------------------------------------- run
def run(store: Store, config: dict | None = None, *, repair: bool = False, verify_blobs: bool = True,
        progress: Callable[[str, int, int], None] | None = None) -> DoctorReport:
    """Check ``store`` (and with ``repair`` fix what can be fixed). The report's ``stats`` and ``config``
    are its ``runs`` row, which the caller writes through the stage contract (``tools/doctor_cli.run_doctor``).

    Args:
        store: the store.
        config: the effective settings as a plain dict (``config.as_dict``), recorded in the runs row; optional.
        repair: quarantine bad parts, return media with a missing or wrong file to pending, remove
            dead runs' temp files, rebuild the catalog. Refused (StoreBusy) while any stage runs.
        verify_blobs: hash every blob against its sha256 (False: check presence only).
        progress: called as ``progress(step, done, total)`` while blobs are checked.
    """
    report = DoctorReport(repair=repair)
    stats = StageStats(STAGE)
    if (folder := store.local_root()) is None:  # a store on object storage: no lock to take, no temp file (doctor_s3.py)
        from .doctor_s3 import check_object_store

        check_object_store(store, report, repair)
    elif repair:  # exclusive: no stage may write while parts move and rows are reset
        try:
            with locks.hold(folder, locks.STORE_LOCK, "doctor --repair", error=StoreBusy), \
                    locks.hold(folder, STAGE, "doctor --repair", error=StoreBusy):
                _run(store, report, True, verify_blobs, progress)
        except StoreBusy as exc:
            busy = locks.holders(folder)
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
    report.config = {**(config or {}), "job": {"repair": repair, "verify_blobs": verify_blobs}}
    return report


def _check_groups(store: Store, report: DoctorReport, repair: bool) -> None:
    """Group rewrites (groups.py) committed and not yet applied: the store's openers finish them; one left
    means its tables' locks were taken (a writer stopped while applying it) or the store is read-only."""
    left = store.unfinished_groups()
    report.checked["group rewrites"] = len(left)
    if left and repair:
        store.finish_groups(wait=0.0)
    for group in left:
        finding = Finding("group", WARNING, rel(store, group), "a rewrite of several tables committed and not yet "
                          "applied: the tables may read mixed until it is", "apply it")
        if repair:
            finding.repaired = not group.exists()
            finding.repair = "applied" if finding.repaired else "not applied: its tables' locks are taken"
        report.findings.append(finding)


def _run(store: Store, report: DoctorReport, repair: bool, verify: bool, progress) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    _check_groups(store, report, repair)
    _check_temps(store, report, repair)
    _check_parts(store, report, repair, stamp)
    check_blobs(store, report, repair, verify, stamp, progress)
    _check_catalog(store, report, repair)

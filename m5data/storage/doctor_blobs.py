"""The doctor's blob check: every media row with status ok against its file (a blob present and
hashing to its sha256, a derived file or frames folder present); with ``--repair`` the rows go back to
``pending`` (download or extract makes them again) and a blob with wrong bytes goes to quarantine."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from .blobs import BlobPathError, resolve_blob
from .doctor_findings import ERROR, DoctorReport, Finding, quarantine_dir
from .store import Store


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
        return resolve_blob(store.local_root(), rel)
    except BlobPathError:
        return None


def missing_blobs(store: Store) -> list[dict]:
    """Media rows with status ok whose file is not on disk, or whose path leads outside the store
    (cheap: presence only; for ``stats``). Streams the rows; returns only the missing ones (none on
    object storage: not looked for there yet)."""
    if store.local_root() is None:
        return []
    found = _ok_batches(store)
    if found is None:
        return []
    return [r for batch in found[1] for r in batch
            if (path := blob_file(store, r["blob"])) is None or not path.exists()]


def _is_downloaded(row: dict) -> bool:
    return row.get("source_media_id") is None and row.get("url") is not None


def check_blobs(store: Store, report: DoctorReport, repair: bool, verify: bool, stamp: str,
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
            path = store.local_root() / row["blob"] if blob_file(store, row["blob"]) is not None else None
            if problem.startswith("content") and row["blob"] not in moved and path is not None and path.is_file():
                dest = quarantine_dir(store, stamp) / row["blob"]
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

"""``m5data check-shards DIR``: verify exported shards against their index (size, then sha256).

Reads every WebDataset ``<split>.index.json`` (the ``wids`` descriptor with our ``filesize`` and
``sha256`` fields) in the folder, or the ``_stats.json`` of a Parquet or M5Product export, and checks
each listed file (M5Product: each shard's records and media index, the media files those indexes
list, and the layout's JSON files and lists): missing, a size other than the indexed one (a truncated or appended shard; no hashing
needed), or a sha256 other than the indexed one (same size, other bytes). The folder may be a URL
(``s3://bucket/prefix``): one listing gives the sizes, the hashes stream the objects.

An incremental export holds every file it lists (``carry.py``: shards taken over are hard links or
copies in the folder). One written before 2026-11-29 named shards of the previous version's folder
beside it (``../<folder>/<shard>``): such a path is followed only into a folder its plan
(``_export.json``, ``inherits``) names and that holds an export plan itself; any other path out of
the folder is never read. Where the export keeps its sample list (``_samples.parquet``), the check
also finds a key listed twice in a split and a shard whose sample count differs from the list; with
hashing, it reads each tar's member names and compares them with the keys the list gives that shard
(so every sample of the split is in exactly one shard).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .folder_reader import PLAN_FILE, reader_of
from .remote import OutsideFolder, is_remote

SAMPLES_FILE = "_samples.parquet"
STATS_FILE = "_stats.json"


@dataclass
class ShardProblem:
    path: str
    problem: str


@dataclass
class CheckReport:
    folder: Path | str
    checked: int = 0
    samples: int = 0
    bytes: int = 0
    problems: list[ShardProblem] = field(default_factory=list)
    unit: str = "shard"  # what ``checked`` counts: shards, or files (M5Product: records, media, lists)

    @property
    def ok(self) -> bool:
        return not self.problems and self.checked > 0


class BadIndex(UserError, ValueError):
    """An index file that cannot be read (not JSON, or not of its shape)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


def _index_json(reader, name: str) -> dict:
    try:
        data = json.loads(reader.read_text(name))
    except (ValueError, OSError) as exc:
        raise BadIndex(name, f"unreadable index ({str(exc).splitlines()[0][:200]})") from None
    if not isinstance(data, dict):
        raise BadIndex(name, "not a JSON object")
    return data


def _entry(f, name: str, **extra) -> dict:
    if not isinstance(f, dict) or "path" not in f:
        raise BadIndex(name, "a file entry without a path")
    return {"path": f["path"], "nsamples": f.get("nsamples"), "size": f.get("size"), "sha256": f.get("sha256"), **extra}


def listed_files(folder) -> list[dict]:
    """``[{path, nsamples, size, sha256}]`` of every shard the folder's index files list (an
    M5Product export's media indexes with ``lists_media``: the files they list are checked too).

    Raises:
        BadIndex: an index file that is not JSON or not of its shape (named).
    """
    reader = reader_of(folder) if isinstance(folder, (str, Path)) else folder
    entries: list[dict] = []
    for index in reader.glob("*.index.json"):
        data = _index_json(reader, index)
        if data.get("__kind__") != "wids-shard-index-v1":
            continue
        for sh in data.get("shardlist", []):
            entries.append({"path": sh["url"], "nsamples": sh.get("nsamples"), "size": sh.get("filesize"),
                            "sha256": sh.get("sha256")})
    if not entries and reader.glob(STATS_FILE):
        data = _index_json(reader, STATS_FILE)
        try:
            for split in data.get("splits", {}).values():
                entries += [_entry(f, STATS_FILE) for f in split.get("files", [])]
                entries += [_entry(f, STATS_FILE, lists_media=True) for f in split.get("media", [])]
            entries += [_entry(f, STATS_FILE) for f in data.get("files", [])]  # M5Product: its JSON files, lists
        except (AttributeError, TypeError):
            raise BadIndex(STATS_FILE, "not of the shape an export writes") from None
    return entries


def check_shards(folder: str | Path, hash_files: bool = True, progress=None) -> CheckReport:
    """Check every indexed shard of an export folder.

    Args:
        folder: the export's ``--out`` folder, or its URL (``s3://bucket/prefix``).
        hash_files: also compare sha256 (sizes are always compared).
        progress: called with (files checked, files in all).

    Raises:
        RemoteError: a URL whose bucket, credentials or endpoint cannot be used.
    """
    reader = reader_of(folder)
    report = CheckReport(folder if is_remote(folder) else Path(folder))
    if not reader.exists():
        report.problems.append(ShardProblem(str(folder), "no such folder"))
        return report
    try:
        entries = listed_files(reader)
    except BadIndex as exc:
        report.problems.append(ShardProblem(exc.name, exc.problem))
        return report
    if not entries:
        if _plan_format(reader) == "m5product":
            report.problems.append(ShardProblem(str(folder), f"an M5Product export without {STATS_FILE} (written "
                                                             "before m5data kept one): export it again to check it"))
        else:
            report.problems.append(ShardProblem(str(folder), "no shard index (*.index.json or _stats.json) found"))
        return report
    listed = SAMPLES_FILE in reader.names()
    keys: dict[str, set[str]] | None = {} if listed and hash_files else None  # read while hashing
    media_seen: set[str] = set()  # an item in two splits is in two shards' media indexes: its files checked once
    if any(e.get("lists_media") for e in entries):
        report.unit = "file"
    for n, entry in enumerate(entries, 1):
        if _check_entry(reader, entry, hash_files, report, keys) and entry.get("lists_media"):
            _check_media(reader, entry["path"], hash_files, report, media_seen)
        if progress:
            progress(n, len(entries))
    if listed:
        _check_keys(reader, entries, keys, report)
    return report


def _plan_format(reader) -> str | None:
    try:
        return json.loads(reader.read_text(PLAN_FILE)).get("format") if PLAN_FILE in reader.names() else None
    except (ValueError, OSError, AttributeError):
        return None


def _check_keys(reader, entries: list[dict], tar_keys: dict | None, report: CheckReport) -> None:
    """Against the export's sample list: no key twice in a split, each shard's count, and each tar's
    keys (``tar_keys``, read while hashing)."""
    import io
    from collections import Counter, defaultdict

    import pyarrow.parquet as pq

    from .samples import safe_key

    try:
        rows = pq.read_table(io.BytesIO(reader.read_bytes(SAMPLES_FILE)), columns=["split", "product_id", "path"])
    except (OSError, ValueError) as exc:
        report.problems.append(ShardProblem(SAMPLES_FILE, f"unreadable sample list ({exc})"))
        return
    splits, pids, paths = (rows.column(c).to_pylist() for c in ("split", "product_id", "path"))
    twice = [(key, n) for key, n in Counter(zip(splits, pids)).items() if n > 1]
    for (split, pid), n in twice[:10]:
        report.problems.append(ShardProblem(SAMPLES_FILE, f"product {pid!r} listed {n} times in split {split!r}"))
    keys = defaultdict(set)
    for split, pid, path in zip(splits, pids, paths):
        keys[path].add(safe_key(pid))
    for entry in entries:
        path = entry["path"]
        if entry["nsamples"] is not None and len(keys.get(path, ())) != entry["nsamples"]:
            report.problems.append(ShardProblem(path, f"index says {entry['nsamples']:,} samples, the sample list "
                                                      f"{len(keys.get(path, ())):,}"))
        elif tar_keys is not None and path in tar_keys:
            found = tar_keys[path]
            if found != keys.get(path, set()):
                report.problems.append(ShardProblem(path, f"holds {len(found - keys.get(path, set()))} key(s) not "
                                                          f"listed and lacks {len(keys.get(path, set()) - found)}"))
    listed = {e["path"] for e in entries}
    for path in sorted(set(keys) - listed)[:10]:
        report.problems.append(ShardProblem(path, "in the sample list but in no index"))


def _sha256(reader, path: str, keys: dict | None) -> str:
    """The file's sha256; a tar's keys into ``keys`` as well (one read) when the check lists them."""
    if keys is None or not path.endswith(".tar"):
        return reader.sha256(path)
    digest, found = _hash_and_keys(reader, path)
    if found is not None:
        keys[path] = found
    return digest


class _Hashing:
    """A reader that hashes what is read through it (a tar is hashed and listed in one pass)."""

    def __init__(self, fh):
        self.fh, self.digest = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        block = self.fh.read(n)
        self.digest.update(block)
        return block


def _hash_and_keys(reader, path: str) -> tuple[str, set[str] | None]:
    """The sha256 of a tar shard and its sample keys (member names up to the first dot; None when
    it is no readable tar: its hash still says whether it is the indexed file)."""
    import tarfile

    with reader.open(path) as fh:
        hashing = _Hashing(fh)
        try:
            with tarfile.open(fileobj=hashing, mode="r|") as tar:
                keys = {m.name.split(".", 1)[0] for m in tar}
        except tarfile.TarError:
            keys = None
        while hashing.read(1 << 20):
            pass
    return hashing.digest.hexdigest(), keys


def _check_media(reader, index: str, hash_files: bool, report: CheckReport, seen: set[str]) -> None:
    """Check the media files an M5Product shard's media index (``{path: [size, sha256]}``) lists."""
    try:
        files = json.loads(reader.read_bytes(index))
        items = sorted((path, int(size), sha) for path, (size, sha) in files.items())
    except (ValueError, TypeError, AttributeError, OSError):
        report.problems.append(ShardProblem(index, "unreadable media index"))
        return
    for path, size, sha in items:
        if path not in seen:
            seen.add(path)
            _check_entry(reader, {"path": path, "nsamples": None, "size": size, "sha256": sha}, hash_files, report)


def _check_entry(reader, entry: dict, hash_files: bool, report: CheckReport, keys: dict | None = None) -> bool:
    """Check one indexed file: inside the folder, present, of the indexed size, of the indexed sha256
    (True when it is intact)."""
    report.checked += 1
    try:
        size = reader.size(entry["path"])
    except OutsideFolder:
        report.problems.append(ShardProblem(str(entry["path"]), "path outside the export folder (not checked)"))
        return False
    if size is None:
        report.problems.append(ShardProblem(entry["path"], "missing"))
    elif entry["size"] is not None and size != entry["size"]:
        kind = "truncated" if size < entry["size"] else "larger than indexed"
        report.problems.append(ShardProblem(entry["path"], f"{kind}: {size:,} bytes, index says {entry['size']:,}"))
    elif hash_files and entry["sha256"] and _sha256(reader, entry["path"], keys) != entry["sha256"]:
        report.problems.append(ShardProblem(entry["path"], "sha256 differs from the index (same size, other bytes)"))
    else:
        report.samples += entry["nsamples"] or 0
        report.bytes += size
        return True
    return False

"""``m5data check-shards DIR``: verify exported shards against their index (size, then sha256).

Reads every WebDataset ``<split>.index.json`` (the ``wids`` descriptor with our ``filesize`` and
``sha256`` fields) in the folder, or the ``_stats.json`` of a Parquet export, and checks each
listed file: missing, a size other than the indexed one (a truncated or appended shard; no hashing
needed), or a sha256 other than the indexed one (same size, other bytes). The folder may be a URL
(``s3://bucket/prefix``): one listing gives the sizes, the hashes stream the objects.

An incremental export's index names shards it took over from the previous version's folder beside
it (``../<folder>/<shard>``, ``incremental.py``): such a path is followed only into a folder its plan
(``_export.json``, ``inherits``) names and that holds an export plan itself; any other path out of
the folder is never read. Where the export keeps its sample list (``_samples.parquet``), the check
also finds a key listed twice in a split and a shard whose sample count differs from the list; with
hashing, it reads each tar's member names and compares them with the keys the list gives that shard
(so every sample of the split is in exactly one shard).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .remote import OutsideFolder, RemoteFolder, is_remote, sibling_name

PLAN_FILE = "_export.json"
SAMPLES_FILE = "_samples.parquet"


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

    @property
    def ok(self) -> bool:
        return not self.problems and self.checked > 0


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def inside_folder(folder: Path, rel, siblings=()) -> Path | None:
    """``folder / rel`` when ``rel`` (a path read from an index or stats file) names something inside
    ``folder`` (or inside one of the ``siblings`` folders beside it, as ``../<name>/...``), else None:
    an absolute path, another ``..`` or a symlink out is never checked or trusted."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root = Path(folder).resolve()
    if (name := sibling_name(rel)) is not None and name in siblings:
        root = root.parent / name
        rel = rel.split("/", 2)[2]
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path != root else None


class _LocalFolder:
    """An export folder on this machine, read by relative paths that must stay inside it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.siblings: set[str] = set()

    def has_sibling_file(self, name: str, rel: str) -> bool:
        return (self.folder.parent / name / rel).is_file()

    def names(self) -> dict:
        return {p.name: 0 for p in self.folder.iterdir()} if self.folder.is_dir() else {}

    def read_bytes(self, rel: str) -> bytes:
        return self._inside(rel).read_bytes()

    def open(self, rel: str):
        return open(self._inside(rel), "rb")

    def exists(self) -> bool:
        return self.folder.is_dir()

    def glob(self, pattern: str) -> list[str]:
        return [p.name for p in sorted(self.folder.glob(pattern))]

    def read_text(self, rel: str) -> str:
        return (self.folder / rel).read_text()

    def _inside(self, rel) -> Path:
        path = inside_folder(self.folder, rel, self.siblings)
        if path is None:
            raise OutsideFolder(rel)
        return path

    def size(self, rel: str) -> int | None:
        """The size of the file ``rel`` names; None when it is missing."""
        path = self._inside(rel)
        return path.stat().st_size if path.is_file() else None

    def sha256(self, rel: str) -> str:
        return file_sha256(self._inside(rel))


def reader_of(folder):
    """The reader of an export folder, or of a URL (``remote.RemoteFolder``: the same methods), that
    follows index paths into the sibling folders the export's plan says it inherits from."""
    reader = RemoteFolder(folder) if is_remote(folder) else _LocalFolder(Path(folder))
    reader.siblings = inherited_folders(reader)
    return reader


def inherited_folders(reader) -> set[str]:
    """The folders beside this export whose shards its index may name: those its plan lists under
    ``inherits`` that hold an export plan themselves (a plain folder beside it is never read)."""
    try:
        if PLAN_FILE not in reader.names():
            return set()
        names = json.loads(reader.read_text(PLAN_FILE)).get("inherits") or []
    except (ValueError, OSError, AttributeError):
        return set()
    return {n for n in names if isinstance(n, str) and sibling_name(f"../{n}/x") == n
            and reader.has_sibling_file(n, PLAN_FILE)}


def listed_files(folder) -> list[dict]:
    """``[{path, nsamples, size, sha256}]`` of every shard the folder's index files list."""
    reader = reader_of(folder) if isinstance(folder, (str, Path)) else folder
    entries: list[dict] = []
    for index in reader.glob("*.index.json"):
        data = json.loads(reader.read_text(index))
        if data.get("__kind__") != "wids-shard-index-v1":
            continue
        for sh in data.get("shardlist", []):
            entries.append({"path": sh["url"], "nsamples": sh.get("nsamples"), "size": sh.get("filesize"),
                            "sha256": sh.get("sha256")})
    if not entries and reader.glob("_stats.json"):
        data = json.loads(reader.read_text("_stats.json"))
        for split in data.get("splits", {}).values():
            entries += [{"path": f["path"], "nsamples": f.get("nsamples"), "size": f.get("size"), "sha256": f.get("sha256")}
                        for f in split.get("files", [])]
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
    entries = listed_files(reader)
    if not entries:
        report.problems.append(ShardProblem(str(folder), "no shard index (*.index.json or _stats.json) found"))
        return report
    listed = SAMPLES_FILE in reader.names()
    keys: dict[str, set[str]] | None = {} if listed and hash_files else None  # read while hashing
    for n, entry in enumerate(entries, 1):
        _check_entry(reader, entry, hash_files, report, keys)
        if progress:
            progress(n, len(entries))
    if listed:
        _check_keys(reader, entries, keys, report)
    return report


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


def _check_entry(reader, entry: dict, hash_files: bool, report: CheckReport, keys: dict | None = None) -> None:
    """Check one indexed file: inside the folder, present, of the indexed size, of the indexed sha256."""
    report.checked += 1
    try:
        size = reader.size(entry["path"])
    except OutsideFolder:
        report.problems.append(ShardProblem(str(entry["path"]), "path outside the export folder (not checked)"))
        return
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

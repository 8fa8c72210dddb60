"""``m5data check-shards DIR``: verify exported shards against their index (size, then sha256).

Reads every WebDataset ``<split>.index.json`` (the ``wids`` descriptor with our ``filesize`` and
``sha256`` fields) in the folder, or the ``_stats.json`` of a Parquet export, and checks each
listed file: missing, a size other than the indexed one (a truncated or appended shard; no hashing
needed), or a sha256 other than the indexed one (same size, other bytes). The folder may be a URL
(``s3://bucket/prefix``): one listing gives the sizes, the hashes stream the objects.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .remote import OutsideFolder, RemoteFolder, is_remote


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


def inside_folder(folder: Path, rel) -> Path | None:
    """``folder / rel`` when ``rel`` (a path read from an index or stats file) names something inside
    ``folder``, else None: an absolute path, a ``..`` or a symlink out is never checked or trusted."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root = Path(folder).resolve()
    path = (root / rel).resolve()
    return path if path.is_relative_to(root) and path != root else None


class _LocalFolder:
    """An export folder on this machine, read by relative paths that must stay inside it."""

    def __init__(self, folder: Path):
        self.folder = folder

    def exists(self) -> bool:
        return self.folder.is_dir()

    def glob(self, pattern: str) -> list[str]:
        return [p.name for p in sorted(self.folder.glob(pattern))]

    def read_text(self, rel: str) -> str:
        return (self.folder / rel).read_text()

    def _inside(self, rel) -> Path:
        path = inside_folder(self.folder, rel)
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
    """The reader of an export folder, or of a URL (``remote.RemoteFolder``: the same methods)."""
    return RemoteFolder(folder) if is_remote(folder) else _LocalFolder(Path(folder))


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
    for n, entry in enumerate(entries, 1):
        _check_entry(reader, entry, hash_files, report)
        if progress:
            progress(n, len(entries))
    return report


def _check_entry(reader, entry: dict, hash_files: bool, report: CheckReport) -> None:
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
    elif hash_files and entry["sha256"] and reader.sha256(entry["path"]) != entry["sha256"]:
        report.problems.append(ShardProblem(entry["path"], "sha256 differs from the index (same size, other bytes)"))
    else:
        report.samples += entry["nsamples"] or 0
        report.bytes += size

"""``m5data check-shards DIR``: verify exported shards against their index (size, then sha256).

Reads every WebDataset ``<split>.index.json`` (the ``wids`` descriptor with our ``filesize`` and
``sha256`` fields) in the folder, or the ``_stats.json`` of a Parquet export, and checks each
listed file: missing, a size other than the indexed one (a truncated or appended shard; no hashing
needed), or a sha256 other than the indexed one (same size, other bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ShardProblem:
    path: str
    problem: str


@dataclass
class CheckReport:
    folder: Path
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


def listed_files(folder: Path) -> list[dict]:
    """``[{path, nsamples, size, sha256}]`` of every shard the folder's index files list."""
    entries: list[dict] = []
    for index in sorted(folder.glob("*.index.json")):
        data = json.loads(index.read_text())
        if data.get("__kind__") != "wids-shard-index-v1":
            continue
        for sh in data.get("shardlist", []):
            entries.append({"path": sh["url"], "nsamples": sh.get("nsamples"), "size": sh.get("filesize"),
                            "sha256": sh.get("sha256")})
    stats = folder / "_stats.json"
    if not entries and stats.is_file():
        data = json.loads(stats.read_text())
        for split in data.get("splits", {}).values():
            entries += [{"path": f["path"], "nsamples": f.get("nsamples"), "size": f.get("size"), "sha256": f.get("sha256")}
                        for f in split.get("files", [])]
    return entries


def check_shards(folder: str | Path, hash_files: bool = True, progress=None) -> CheckReport:
    """Check every indexed shard of an export folder.

    Args:
        folder: the export's ``--out`` folder.
        hash_files: also compare sha256 (sizes are always compared).
        progress: called with (files checked, files in all).
    """
    folder = Path(folder)
    report = CheckReport(folder)
    if not folder.is_dir():
        report.problems.append(ShardProblem(str(folder), "no such folder"))
        return report
    entries = listed_files(folder)
    if not entries:
        report.problems.append(ShardProblem(str(folder), "no shard index (*.index.json or _stats.json) found"))
        return report
    for n, entry in enumerate(entries, 1):
        path = inside_folder(folder, entry["path"])
        report.checked += 1
        if path is None:
            report.problems.append(ShardProblem(str(entry["path"]), "path outside the export folder (not checked)"))
        elif not path.is_file():
            report.problems.append(ShardProblem(entry["path"], "missing"))
        else:
            size = path.stat().st_size
            if entry["size"] is not None and size != entry["size"]:
                kind = "truncated" if size < entry["size"] else "larger than indexed"
                report.problems.append(ShardProblem(entry["path"], f"{kind}: {size:,} bytes, index says {entry['size']:,}"))
            elif hash_files and entry["sha256"] and file_sha256(path) != entry["sha256"]:
                report.problems.append(ShardProblem(entry["path"], "sha256 differs from the index (same size, other bytes)"))
            else:
                report.samples += entry["nsamples"] or 0
                report.bytes += size
        if progress:
            progress(n, len(entries))
    return report

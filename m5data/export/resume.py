"""The output folder of a resumable export: the plan claimed first (``_export.json``: a folder holding
another plan is refused), the completion markers a re-run reads to skip finished shards, and the
temp files a killed run left."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import incremental as inc
from .folder_reader import PLAN_FILE
from .json_stream import write_json_atomic
from .plan import Shard
from .remote import RemoteOut
from .samples import ExportError


def existing_plan(out, version: str, fmt: str, split: str) -> dict | None:
    """The plan an earlier export left in ``out`` (None when none); one of another split version is refused
    before anything is written there."""
    existing = inc.read_file(out, PLAN_FILE)
    existing = json.loads(existing) if existing else None
    if existing is not None and existing.get("version") != version:
        raise ExportError(f"{out} holds an export of split version {existing.get('version')!r}, not {version!r}: "
                          f"export {version!r} into another folder (by default exports/{version}-{fmt}-{split}), "
                          f"or {existing.get('version')!r} into this one")
    return existing


def _refuse_opted_out(out, members) -> None:
    """A folder or prefix holding an export of a version with products opted out since is never resumed
    (its shards may hold them): one line naming them and the way out."""
    if not getattr(members, "opted_out", (0,))[0]:
        return
    n, first = members.opted_out
    raise ExportError(f"{out} holds an export of split version {members.version!r}, whose products {', '.join(first)}"
                      f"{f' (of {n:,})' if n > len(first) else ''} opted out since (m5data sql: SELECT * FROM "
                      f"opted_out): run m5data build-splits (a new version without them) and export it, or export "
                      f"into a new folder; a release folder never holds an opted-out product")


def claim(out, remote: RemoteOut | None, staging: Path | None, plan: dict, members=None) -> tuple[object, bool]:
    """Write the plan into the output, refusing one that holds another export; (the remote prefix's
    listing, whether this run resumes an earlier one of a local folder). ``members``: the export's
    :class:`~m5data.export.members.Members` (a local folder's refusal names their taken-down samples)."""
    if remote:
        listing = remote.claim(plan, PLAN_FILE)
        if PLAN_FILE in listing:  # a prefix holding this export already: resumed, as a local folder is
            _refuse_opted_out(remote.url, members)
        write_json_atomic(staging / PLAN_FILE, plan)
        remote.put(staging / PLAN_FILE, PLAN_FILE)
        return listing, False
    plan_path = out / PLAN_FILE
    resumed = plan_path.is_file()
    if resumed:
        _refuse_opted_out(out, members)
    if resumed:
        old = json.loads(plan_path.read_text())
        if old != plan:
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            gone = getattr(members, "taken_down", 0)  # a takedown since: the members are others
            why = (f" ({gone:,} sample(s) of version {members.version} are taken down (m5data takedown --list): this "
                   "folder keeps the export from before; a split version built since (m5data build-splits, or a "
                   "pipeline run's splits stage) leaves them out, and its export into a folder beside this one "
                   "writes only the shards that held them)") if gone else ""
            raise ExportError(f"{out} holds another export ({', '.join(diff)} differ): use an empty --out folder{why}")
    elif out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise ExportError(f"{out} is not empty and holds no m5data export: use an empty --out folder")
    write_json_atomic(plan_path, plan)
    return None, resumed


def remove_stale_temps(out: Path, *, before: float) -> int:
    """Remove the ``.tmp-*`` files a killed export left in ``out`` (older than this run); how many."""
    removed = 0
    for folder, _dirs, files in os.walk(out):
        for name in files:
            path = Path(folder) / name
            if name.startswith(".tmp-") and path.stat().st_mtime < before:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def shard_done(mod, out: Path, shard: Shard) -> dict | None:
    """The stats of a finished shard (its marker exists and its output has the recorded size), else None."""
    return marker_done(out, mod.stats_path(out, shard))


def marker_done(out: Path, marker: Path) -> dict | None:
    """The stats a completion marker holds when the file it names has the recorded size, else None."""
    if not marker.is_file():
        return None
    try:
        stats = json.loads(marker.read_text())
    except ValueError:
        return None
    from .folder_reader import inside_folder

    target = inside_folder(out, stats.get("path"))
    if target is None or not target.exists() or (target.is_file() and target.stat().st_size != stats.get("size")):
        return None
    return stats


def finished_shards(mod, out, remote: RemoteOut | None, listing, shards: list[Shard],
                    kept: list[dict]) -> tuple[dict[tuple[str, int], dict], dict[str, dict]]:
    """The stats of the shards and of the kept copies an earlier run of this folder finished."""
    done: dict[tuple[str, int], dict] = {}
    kept_done: dict[str, dict] = {}
    if remote:  # one listing of the prefix, then the markers read in one batch
        done = remote.finished({(sh.split, sh.index): mod.stats_path(Path(), sh).as_posix() for sh in shards},
                               listing)
        kept_done = remote.finished({k["name"]: mod.kept_stats_path(Path(), k["name"]).as_posix() for k in kept},
                                    listing)
    else:
        for sh in shards:
            if (st := shard_done(mod, out, sh)) is not None:
                done[(sh.split, sh.index)] = st
        for k in kept:
            if (st := marker_done(out, mod.kept_stats_path(out, k["name"]))) is not None:
                kept_done[k["name"]] = st
    return done, kept_done

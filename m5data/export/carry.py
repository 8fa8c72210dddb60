"""What an incremental export carries over from the previous version's folder into its own (``incremental.py``).

A previous shard whose samples all stand is **taken over**: a hard link in this folder under the name
the layout gives it (``carried_name``), a copy where the two folders are on other file systems (or the
file system has no hard links), a server-side copy on object storage (S3 ``CopyObject``: no byte
goes through this machine); then its stats file, the completion marker, which names where it came
from (``inherited_from``, ``<folder>/<file>``: never a path out of the folder). So every folder holds
all of its files: one copied alone, or published, is complete, and removing an older folder (a
takedown: docs/compliance.md) changes no later one. A hard link is the same file as the older
folder's: it costs no space, and neither folder's file is ever written again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .json_stream import write_json_atomic
from .plan import Planned, origin
from .samples import ExportError

# the previous shard's stats that are its folder's (this folder's marker names its own file)
_OWN = ("shard", "path", "stats_path", "index", "count", "from", "name", "kept_from", "inherited_from")


def taken_stats(st: dict) -> dict:
    """The stats of a taken-over shard ``st`` (a planned ``inherited`` entry) in this folder."""
    return {"shard": posix_name(st["name"]), "path": st["name"], "split": st["split"], "index": None,
            "inherited_from": origin(st["from"]), **{k: v for k, v in st.items() if k not in _OWN}}


def posix_name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def link_or_copy(src: Path, dst: Path) -> str:
    """``dst`` as a hard link to ``src`` (``"link"``), or a copy of it (``"copy"``: another file system,
    or none that links); through a temp name, so ``dst`` is whole or absent."""
    tmp = dst.with_name(f".tmp-{dst.name}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        how = "link"
    except FileNotFoundError:
        raise
    except OSError:  # EXDEV (another file system), EPERM / ENOTSUP (no hard links there)
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        how = "copy"
    os.replace(tmp, dst)
    return how


def take_over(mod, out, remote, taken: list[dict]) -> tuple[list[dict], dict]:
    """Take the previous shards ``taken`` over into the folder ``out`` (or the ``remote`` prefix), then write
    each one's marker; their stats, and how many were linked, copied or copied on the server."""
    if not taken:
        return [], {}
    if remote is not None:
        return _take_over_remote(mod, remote, taken)
    done, how = [], {}
    for st in taken:
        src, dst = out / st["from"], out / st["name"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            way = link_or_copy(src, dst)
        except OSError as exc:
            raise ExportError(f"cannot take the previous shard {src} over ({exc.strerror or exc}): "
                              "export this version with --full") from None
        if dst.stat().st_size != st["size"]:
            dst.unlink()
            raise ExportError(f"the previous shard {src} is not the file its version indexed (size differs): "
                              "export this version with --full")
        how[way] = how.get(way, 0) + 1
        stats = taken_stats(st)
        write_json_atomic(mod.kept_stats_path(out, st["name"]), stats)
        done.append(stats)
    return done, how


def finished_and_taken(mod, out, remote, listing, planned: Planned, stats) -> tuple[dict, dict]:
    """The shards an earlier run of this folder finished (``{(split, index): stats}``) and the carried ones
    (``{name: stats}``, kept copies an earlier run finished and every taken-over shard: taken over now
    where not done yet; ``stats.details["taken_over"]`` counts how)."""
    from .resume import finished_shards

    done, carried = finished_shards(mod, out, remote, listing, planned.shards, planned.kept + planned.inherited)
    taken, how = take_over(mod, out, remote, [t for t in planned.inherited if t["name"] not in carried])
    carried.update((st["path"], st) for st in taken)
    if how:
        stats.details["taken_over"] = how
    return done, carried


def _take_over_remote(mod, remote, taken: list[dict]) -> tuple[list[dict], dict]:
    """Server-side copies (one batch: fsspec runs them concurrently), then the markers (one batch too)."""
    import json

    from .remote import explained

    stats = [taken_stats(st) for st in taken]
    with explained(remote.url):
        try:
            remote.fs.copy([remote.key(st["from"]) for st in taken], [remote.key(st["name"]) for st in taken])
        except FileNotFoundError as exc:
            raise ExportError(f"cannot take a previous shard over ({exc}): export this version with --full") from None
        remote.fs.pipe({remote.key(mod.kept_stats_path(Path(), st["name"]).as_posix()):
                        (json.dumps(s, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()  # as written locally
                        for st, s in zip(taken, stats)})
    return stats, {"server copy": len(taken)}


def ordered(mod, base, planned: Planned, done: dict, carried_done: dict) -> list[dict]:
    """The shards' stats for the layout's index: the previous version's shards in its order (taken over,
    or kept copies), then the new; every path one of this folder."""
    out = []
    if base is not None:
        names = {c["from"]: c["name"] for c in planned.inherited + planned.kept}
        for st in base.shards:
            if (name := names.get(st["path"])) is not None:
                out.append({**carried_done[name], "stats_path": mod.kept_stats_path(Path(), name).as_posix()})
    for sh in planned.shards:
        out.append({**done[(sh.split, sh.index)], "stats_path": mod.stats_path(Path(), sh).as_posix()})
    return out


def index_rows(base, delta, planned: Planned, done: dict, shard_ids: dict | None, digests):
    """The samples' index: the base's samples that stand (in the taken-over and kept shards, under this
    folder's names), then the new shards' (``shard_ids``: each shard's samples, None when every shard
    was done already)."""
    from . import sample_index as si

    if shard_ids is None:  # every shard done already: their samples, cut from the ids in export order
        shard_ids = si.cut_ids(planned.fresh_order if base is not None else list(zip(
            digests.column("split").to_pylist(), digests.column("product_id").to_pylist())), planned.shards)
    placed = {done[(sh.split, sh.index)]["path"]: (sh.split, shard_ids[(sh.split, sh.index)]) for sh in planned.shards}
    if base is not None:
        names = {c["from"]: c["name"] for c in planned.inherited + planned.kept}
        return si.index_rows(delta.standing, names, placed, delta.digests)
    return si.index_rows(si.SAMPLES_SCHEMA.empty_table(), {}, placed, digests)

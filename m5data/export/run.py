"""The export stage: plan shards (plan.py), write them in a process pool, resume, finish the layout's index.

Every format cuts each split's sorted product ids into shards (``export.shard_size`` products, or
about ``export.shard_bytes`` bytes of media each), so the assignment is the same on every run of
the same store and version. A shard is written to a temp name, renamed, and then its stats file is
written: the stats file is the shard's completion marker. A re-run (after a kill, or of a finished
export) skips every shard whose stats file exists and whose output still has the recorded size;
a finished shard is never rewritten. The plan (``_export.json``) is written first; an output
folder holding another plan (other version, format, sizes or products) is refused. An ``--out``
URL (``s3://bucket/prefix``) writes each shard into a local staging folder and uploads it, marker
last (``remote.py``).

Cost is linear in products and memory is bounded by a shard: the plan is cut from one ordered
stream of the split's ids (only each shard's last id is kept), and the samples come from one ordered
pass over the store (:func:`~m5data.export.members.stream_samples`) that hands each shard's samples
to a writer (inline, or a process pool with at most two shards in flight per worker).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from .. import config as cfg
from ..stages import StageRun
from ..storage.names import shown
from ..storage.runs import StageStats
from ..storage.temps import scratch_dir
from . import incremental as inc
from .json_stream import write_json_atomic
from .members import Members, choose, split_counts, stream_samples
from .plan import Shard, ShardPlan, format_options, plan_export, plan_keys, plan_record, plan_shards, shard_samples
from .remote import FINISH_READS_SHARD_FILES, RemoteOut, is_remote
from .samples import ExportError, bad_split_names, shard_blobs

__all__ = ["FORMATS", "PLAN_FILE", "ExportReport", "Progress", "Shard", "ShardPlan", "check_settings", "export",
           "format_module", "plan_export", "plan_shards", "run", "shard_done", "shard_samples", "write_json_atomic"]

FORMATS = {"webdataset": "m5data.export.webdataset", "parquet": "m5data.export.hf_parquet",
           "m5product": "m5data.export.m5product"}
PLAN_FILE = "_export.json"
SKIPPED_SPLIT = "split with a bad name (skipped)"  # failure reason, one per split of the version
STREAM_MEMORY = "2GB"  # DuckDB's memory limit for the ordered sample stream (it spills past it)

Progress = Callable[[int, int], None]  # (shards done, shards in all)


@dataclass
class ExportReport:
    """What one export run did."""

    stats: StageStats
    out: Path | str  # a folder, or the URL of a remote export
    fmt: str
    version: str
    splits: dict[str, int]  # split -> samples
    shards: int
    shards_written: int
    shards_skipped: int
    skipped_splits: dict[str, str] = field(default_factory=dict)  # split -> why its name was refused
    shards_inherited: int = 0  # taken over from the previous version's folder (incremental.py)
    shards_kept: int = 0  # previous shards copied into this folder without the samples that left them
    base: str | None = None  # that folder's name
    changes: dict = field(default_factory=dict)  # samples new, changed, unchanged, removed since it
    full_because: str = ""  # why the export was written in full (empty when incremental)


STAGE = "export"  # its runs rows and its lock (the state is per format and split: incremental.state_name)


def check_settings(s: cfg.Settings) -> None:
    """Reject bad ``[export]`` values before any work."""
    e = s.export
    if e.shard_size < 1:
        raise cfg.ConfigError(f"config export.shard_size must be >= 1, got {e.shard_size!r}")
    if e.shard_bytes < 0:
        raise cfg.ConfigError(f"config export.shard_bytes must be >= 0 (0 = cut by shard_size), got {e.shard_bytes!r}")
    if e.workers < 0:
        raise cfg.ConfigError(f"config export.workers must be >= 0 (0 = one per core), got {e.workers!r}")
    if e.format not in FORMATS:
        raise cfg.ConfigError(f"config export.format must be one of {', '.join(FORMATS)}, got {e.format!r}")


def format_module(fmt: str):
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[fmt])


def _run_shard(fmt: str, out: str, shard: dict, options: dict, samples: list, store_root: str) -> dict:
    """Write one shard's samples in its format (top level: picklable for the process pool)."""
    sh = Shard(**{**shard, "product_ids": tuple(shard["product_ids"])})
    with shard_blobs(store_root, samples) as root:
        return format_module(fmt).write_shard(root, Path(out), sh, samples, options)


def _stream_connection(store):
    con = store.connect(only=inc.READS)  # the views of the tables a sample is made of
    con.execute(f"SET memory_limit = '{STREAM_MEMORY}'")
    tmp = str(store.work_dir("export", "tmp")).replace("'", "''")
    con.execute(f"SET temp_directory = '{tmp}'")
    return con


_worker: dict = {}  # per process: the remote filesystem of an export run (one client per process)


def _run_remote_shard(fmt: str, url: str, shard: dict, options: dict, samples: list, store_root: str, *,
                      staging: str) -> dict:
    """Write one shard into its own local staging folder, upload its files (the stats file, the
    marker, last), then drop the staging copy."""
    sh = Shard(**{**shard, "product_ids": tuple(shard["product_ids"])})
    folder = Path(staging) / f"{sh.split}-{sh.index:06d}"
    try:
        stats = _run_shard(fmt, str(folder), shard, options, samples, store_root)
        remote = _worker.setdefault(("remote", url, staging), RemoteOut(url))  # one filesystem per process and export run
        remote.upload_folder(folder, last=format_module(fmt).stats_path(Path(), sh).as_posix())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return stats


def _finish_remote(mod, fmt: str, remote: RemoteOut, staging: Path, store, version: str, members: Members,
                   ordered: list[dict], options: dict) -> None:
    """Write the layout's index files into staging (fetching the shard files ``finish`` reads) and upload them."""
    folder = staging / "_finish"
    folder.mkdir()
    fetched = [st["path"] for st in ordered] if fmt in FINISH_READS_SHARD_FILES else []
    remote.fetch(fetched, folder)
    mod.finish(store, folder, version, members, ordered, options)
    remote.upload_folder(folder, skip=set(fetched))


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
    from .check import inside_folder

    target = inside_folder(out, stats.get("path"))
    if target is None or not target.exists() or (target.is_file() and target.stat().st_size != stats.get("size")):
        return None
    return stats


def export(store, settings: cfg.Settings, *, out: str | Path, split: str = "all", fmt: str | None = None,
           version: str | None = None, progress: Progress | None = None, full: bool = False) -> ExportReport:
    """Export one split (or ``all``) of a split version in one layout; resumable, incremental.

    Args:
        store: the store to read.
        settings: effective settings (``[export]``: shard size/bytes, workers, mp3, video).
        out: the output folder (created; a folder of another export plan is refused), or an fsspec
            URL (``s3://bucket/prefix``; endpoint and credentials from the AWS environment).
        split: a split name or ``all``.
        fmt: ``webdataset``, ``parquet`` or ``m5product`` (default ``export.format``).
        version: the split version (default: the current one, ``splits.versions.current_version``).
        progress: called with (shards done, shards in all) after each shard.
        full: write every shard (default: a WebDataset export of a new split version into a sibling
            folder of the last complete one writes only new and changed samples: ``incremental.py``).

    Raises:
        ExportError: no splits, unknown version/split/format, or ``out`` holds another plan.
        RemoteError: a remote ``out`` whose bucket, credentials or endpoint cannot be used.
    """
    check_settings(settings)
    fmt = fmt or settings.export.format
    format_module(fmt)  # an unknown format: refused before the lock is taken
    with StageRun(store, STAGE, reads=inc.READS, inputs=inc.inputs(fmt, split, settings),
                  state=inc.state_name(fmt, split)) as run:
        return _export(run, settings, out=out, split=split, fmt=fmt, version=version, progress=progress, full=full)


def _export(run: StageRun, settings: cfg.Settings, *, out: str | Path, split: str, fmt: str, version: str | None,
            progress: Progress | None, full: bool) -> ExportReport:
    store, stats, marks = run.store, run.stats, run.marks
    mod = format_module(fmt)
    remote = RemoteOut(out) if is_remote(out) else None
    out = remote.url if remote else Path(out).absolute()
    staging = scratch_dir("export") if remote else None
    started = time.time()
    config = {"format": fmt, "split": split, "out": str(out), **asdict(settings.export)}
    keeps_index = fmt in inc.INCREMENTAL_FORMATS
    shared = None  # one connection for the digests, the plan and the sample stream (each costs ~0.3 s)
    base = delta = None
    try:
        members = split_counts(store, version, split)
        version = members.version
        config["version"] = version
        skipped_splits = bad_split_names(members.counts)
        for name in skipped_splits:  # a split name becomes file names: one that is not plain is skipped
            stats.fail(SKIPPED_SPLIT)
        members = members.without(skipped_splits)
        if not members.counts:
            raise ExportError(f"no split of version {version!r} has a plain name (skipped: "
                              f"{', '.join(shown(n) for n in skipped_splits)}); rebuild the splits")
        if keeps_index and not full and (kept := _unchanged(run, out, fmt, version, members,
                                                            skipped_splits)) is not None:
            run.record(config)
            return kept
        existing = inc.read_file(out, PLAN_FILE)
        existing = json.loads(existing) if existing else None
        if existing is not None and existing.get("version") != version:  # before anything is written there
            raise ExportError(f"{out} holds an export of split version {existing.get('version')!r}, not {version!r}: "
                              f"export {version!r} into another folder (by default exports/{version}-{fmt}-{split}), "
                              f"or {existing.get('version')!r} into this one")
        base, full_because = inc.find_base(store, out, fmt, split, version, settings, full=full,
                                           existing_plan=existing)
        fresh_order: list = []
        kept: list[dict] = []  # previous shards copied without the samples that left them
        labels = None
        if keeps_index:  # the labels the samples are made of, read before them (a write after is seen next time)
            shared = _stream_connection(store)
            labels = inc.label_hashes(shared)
        if base is not None:  # hash the samples that may have changed, compare with the base's
            delta = inc.compare(store, shared, members, base, marks, labels)
            fresh_order = delta.order
            if settings.export.shard_bytes:  # cut by the media's bytes: read with the members
                shards, digest = plan_export(store, members, settings.export.shard_size, settings.export.shard_bytes,
                                             mod.MEDIA_KINDS, keep=delta.fresh, con=shared)
            else:  # cut by count: from the new and changed keys, in export order already
                shards, digest = plan_keys(fresh_order, settings.export.shard_size)
            inherited = delta.inherited
            stats.details["changes"] = delta.counts
            stats.details["hashed"] = delta.hashed
            per_split: Counter = Counter()
            for st, ids in delta.kept:
                kept.append({"from": st["path"], "name": mod.kept_name(st["split"], per_split[st["split"]]),
                             "split": st["split"], "ids": ids, "sha256": st.get("sha256")})
                per_split[st["split"]] += 1
        else:
            shards, digest = plan_export(store, members, settings.export.shard_size, settings.export.shard_bytes,
                                         mod.MEDIA_KINDS)
            inherited = []
        plan = plan_record(fmt, version, shards, settings, digest)
        if getattr(mod, "LAYOUT", None):  # a folder written in an older layout is refused, not resumed into a mix
            plan["layout"] = mod.LAYOUT
        if base is not None:
            plan["base"] = {"folder": base.name, "inherited": [st["path"] for st in inherited],
                            "kept": [[k["from"], k["name"], len(k["ids"])] for k in kept]}
            plan["inherits"] = sorted({inc.sibling_name(st["path"]) for st in inherited + [{"path": k["from"]} for k in kept]})
        if remote:
            listing = remote.claim(plan, PLAN_FILE)
            write_json_atomic(staging / PLAN_FILE, plan)
            remote.put(staging / PLAN_FILE, PLAN_FILE)
        else:
            plan_path = out / PLAN_FILE
            resumed = plan_path.is_file()
            if resumed:
                old = json.loads(plan_path.read_text())
                if old != plan:
                    diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
                    raise ExportError(f"{out} holds another export ({', '.join(diff)} differ): use an empty --out folder")
            elif out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
                raise ExportError(f"{out} is not empty and holds no m5data export: use an empty --out folder")
            write_json_atomic(plan_path, plan)
        stats.n_in = (sum(sh.size for sh in shards) + sum(st["nsamples"] for st in inherited)
                      + sum(len(k["ids"]) for k in kept))
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
        skipped = len(done) + len(kept_done)
        earlier = set(done)  # the shards an earlier run of this folder finished
        todo = len(shards) - len(done)
        units = len(shards) + len(kept)
        if progress:
            progress(skipped, units)
        options = format_options(settings)
        if hasattr(mod, "prepare"):  # a decision over the whole export (M5Product item ids)
            options = mod.prepare(store, members, options)
        workers = settings.export.workers or os.cpu_count() or 1
        write = partial(_run_remote_shard, staging=str(staging)) if remote else _run_shard
        if remote:  # inline writes upload through this filesystem (a client costs about 0.3 s to create)
            _worker[("remote", str(out), str(staging))] = remote
        results = []
        shard_ids: dict[tuple[str, int], list[str]] = {}  # the samples of each shard of this folder

        def finished(st: dict) -> None:
            results.append(st)
            _account(stats, st)
            if progress:
                progress(skipped + len(results), units)

        copies = [k for k in kept if k["name"] not in kept_done]  # previous shards minus the samples that left
        copy = partial(_run_kept, fmt, str(out), remote=bool(remote), staging=str(staging) if staging else None)

        # a full export keeps its samples' digests too (for the next version's); done shards too
        hashing = keeps_index and base is None
        digests = inc.SAMPLES_SCHEMA.empty_table()
        if hashing and shards:
            digests = inc.digest_table(shared, members.sql(), members.order_sql("m.split", "m.product_id"))
        if todo or copies:
            con = None
            if todo:  # the stream takes the shared connection over (closed with it)
                con, shared = shared or _stream_connection(store), None
            pool = None
            try:
                if workers > 1 and todo + len(copies) > 1:
                    import multiprocessing as mp

                    workers = min(workers, todo + len(copies))
                    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
                running: set = set()
                for k in copies:  # first: they run in the workers while the samples are read
                    if pool is None:
                        finished(copy(k))
                    else:
                        running.add(pool.submit(copy, k))
                if not todo:
                    rows = iter(())
                elif base is not None:  # only the samples to write, in one ordered pass over the store
                    source = con if delta.rows is None else delta.rows  # (their products' rows, read for their digests)
                    rows = stream_samples(source, choose(source, members, fresh_order))
                else:
                    rows = stream_samples(con, members)
                for sh, samples in shard_samples(rows, shards):
                    shard_ids[(sh.split, sh.index)] = [s.product_id for s in samples]
                    if (sh.split, sh.index) in done:
                        continue
                    if pool is None:
                        finished(write(fmt, str(out), asdict(sh), options, samples, str(store.root)))
                        continue
                    # at most two shards per worker wait in the pool: memory stays a few shards
                    while len(running) >= 2 * workers:
                        ready, running = wait(running, return_when=FIRST_COMPLETED)
                        for fut in ready:
                            finished(fut.result())
                    running.add(pool.submit(write, fmt, str(out), asdict(sh), options, samples, str(store.root)))
                for fut in wait(running).done:
                    finished(fut.result())
            finally:
                if pool is not None:
                    pool.shutdown(cancel_futures=True)
                if con is not None:
                    con.close()
        if not todo and (base is not None or hashing):  # every shard done already: their samples, cut from the ids in export order
            shard_ids = inc.cut_ids(fresh_order if base is not None else list(zip(
                digests.column("split").to_pylist(), digests.column("product_id").to_pylist())), shards)
        for st in results:
            if "kept_from" in st:
                kept_done[st["shard"]] = st
            else:
                done[(st["split"], st["index"])] = st
        ordered = []  # the previous version's shards in its order (inherited, or kept copies), then the new
        if base is not None:
            taken = {st["path"] for st in inherited}
            copies = {k["from"]: k["name"] for k in kept}
            for st in base.shards:
                if st["path"] in taken:
                    ordered.append(dict(st))
                elif st["path"] in copies:
                    name = copies[st["path"]]
                    ordered.append({**kept_done[name], "stats_path": mod.kept_stats_path(Path(), name).as_posix()})
        for sh in shards:
            ordered.append({**done[(sh.split, sh.index)], "stats_path": mod.stats_path(Path(), sh).as_posix()})
        index_rows = None
        if keeps_index:  # the base's samples that stand (in inherited and kept shards), then the new shards'
            placed = {done[(sh.split, sh.index)]["path"]: (sh.split, shard_ids[(sh.split, sh.index)]) for sh in shards}
            if base is not None:
                index_rows = inc.index_rows(delta.standing, {k["from"]: k["name"] for k in kept}, placed, delta.digests)
            else:
                index_rows = inc.index_rows(inc.SAMPLES_SCHEMA.empty_table(), {}, placed, digests)
        if remote:
            _finish_remote(mod, fmt, remote, staging, store, version, members, ordered, options)
            if keeps_index:
                folder = staging / "_index"
                folder.mkdir()
                for name in inc.write_index_files(folder, ordered, index_rows, labels):
                    remote.put(folder / name, name)
        else:
            mod.finish(store, out, version, members, ordered, options)
            if keeps_index:
                inc.write_index_files(out, ordered, index_rows, labels)
            if resumed:
                remove_stale_temps(out, before=started)
        if "changes" not in stats.details:  # no earlier version compared: a shard an earlier run of this folder
            # finished (a resumed or repeated export) holds samples that stand; the others' are new
            new = sum(sh.size for sh in shards if (sh.split, sh.index) not in earlier)
            stats.details["changes"] = {"new": new, "changed": 0, "unchanged": stats.n_in - new, "removed": 0}
        stats.finish("ok")
    except BaseException as exc:
        run.record(config, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        if shared is not None:  # not handed to the sample stream (nothing to write, or a failure before)
            shared.close()
        if base is not None and delta is not None and delta.rows is not None:
            delta.rows.close()
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
            _worker.pop(("remote", str(out), str(staging)), None)  # the inline writes' filesystem
    if keeps_index:  # the state last: a killed export leaves the previous one
        run.complete(config, out=inc.place(store, out), version=version, base=base.name if base else None)
    else:
        run.record(config)
    return ExportReport(stats, out, fmt, version, dict(members.counts), len(shards) + len(inherited) + len(kept),
                        units - skipped, skipped, skipped_splits, shards_inherited=len(inherited), shards_kept=len(kept),
                        base=base.name if base else None, changes=stats.details["changes"],
                        full_because=full_because)


def _run_kept(fmt: str, out: str, k: dict, *, remote: bool, staging: str | None) -> dict:
    """Copy the previous shard ``k["from"]`` without the samples that left it into ``k["name"]``
    (top level: picklable for the process pool; streamed: read once, from a sibling folder or prefix;
    written locally or staged and uploaded)."""
    from .remote import RemoteFolder
    from .samples import safe_key

    mod = format_module(fmt)
    if remote:  # one filesystem per process and export run
        remote = _worker.setdefault(("remote", out, staging), RemoteOut(out))
        staging = Path(staging)
    else:
        remote = None
    keep = {safe_key(pid) for pid in k["ids"]}
    args = dict(source_name=k["from"], source_sha256=k["sha256"])
    if remote is None:
        try:
            fh = open(Path(out) / k["from"], "rb")
        except OSError as exc:
            raise ExportError(f"cannot read the previous shard {Path(out) / k['from']} ({exc.strerror}): "
                              "export this version with --full") from None
        with fh:
            return mod.write_kept(fh, Path(out), k["name"], k["split"], keep, **args)
    folder = staging / f"_kept-{k['name']}"
    try:
        with RemoteFolder(str(out), siblings={inc.sibling_name(k["from"])}).open(k["from"]) as fh:
            st = mod.write_kept(fh, folder, k["name"], k["split"], keep, **args)
        remote.upload_folder(folder, last=mod.kept_stats_path(Path(), k["name"]).as_posix())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return st


def _unchanged(run: StageRun, out, fmt: str, version: str, members: Members,
               skipped_splits: dict) -> ExportReport | None:
    """The report of an export that has nothing to do (the folder holds the last complete export, of
    ``version``, and no table it reads was written since), else None."""
    store, stats, state = run.store, run.stats, run.state
    # another version than the folder's is refused by export(), with the two versions
    if (state is None or state.get("out") != inc.place(store, out) or state.get("version") != version
            or not run.unchanged()):
        return None
    manifest = inc.read_file(out, inc.MANIFEST)
    try:
        shards = json.loads(manifest)["shards"] if manifest else None
    except (ValueError, KeyError):
        shards = None
    if shards is None:
        return None
    n = sum(st.get("nsamples", 0) for st in shards)
    stats.n_in = n
    stats.details["changes"] = {"new": 0, "changed": 0, "unchanged": n, "removed": 0}
    stats.finish("ok")
    own = [st for st in shards if not st["path"].startswith("../")]
    return ExportReport(stats, out, fmt, version, dict(members.counts), len(shards), 0, len(own), skipped_splits,
                        shards_inherited=len(shards) - len(own), base=state.get("base"), changes=stats.details["changes"],
                        full_because="nothing changed")


def _account(stats: StageStats, shard_stats: dict) -> None:
    stats.n_out += shard_stats["nsamples"]
    stats.bytes += shard_stats.get("bytes_written", shard_stats.get("size", 0))
    for reason, n in shard_stats.get("failures", {}).items():
        stats.fail(reason, n)


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: see :func:`export` for the arguments."""
    return export(store, settings, **kwargs).stats

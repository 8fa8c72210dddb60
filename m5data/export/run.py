"""The export stage: plan shards (plan.py), write them in a process pool, resume, finish the layout's index
(finish.py).

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

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

from .. import config as cfg
from ..stages import StageRun, opened
from ..storage.names import shown
from ..storage.runs import StageStats
from ..storage.temps import scratch_dir
from . import carry, faces
from . import incremental as inc
from .finish import finish
from .json_stream import write_json_atomic
from .members import Members, choose, split_counts, stream_samples
from .plan import (
    Planned,
    Shard,
    ShardPlan,
    format_options,
    plan_export,
    plan_file,
    plan_run,
    plan_shards,
    shard_samples,
)
from .remote import RemoteOut, is_remote
from .resume import PLAN_FILE, claim, existing_plan, remove_stale_temps, shard_done
from .samples import ExportError, bad_split_names
from .shards import (
    FORMATS,
    account,
    format_module,
    pool_size,
    run_kept,
    run_remote_shard,
    run_shard,
    shard_args,
    worker,
    write_all,
)

__all__ = ["FORMATS", "PLAN_FILE", "ExportReport", "Progress", "Shard", "ShardPlan", "check_settings", "export",
           "format_module", "plan_export", "plan_shards", "run", "shard_done", "shard_samples", "write_json_atomic"]

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


def _stream_connection(store):
    con = store.connect(only=inc.READS)  # the views of the tables a sample is made of
    con.execute(f"SET memory_limit = '{STREAM_MEMORY}'")
    tmp = str(store.work_dir("export", "tmp")).replace("'", "''")
    con.execute(f"SET temp_directory = '{tmp}'")
    return con


def export(store, settings: cfg.Settings, *, out: str | Path, split: str = "all", fmt: str | None = None,
           version: str | None = None, progress: Progress | None = None, full: bool = False,
           run: StageRun | None = None) -> ExportReport:
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
        run: the export stage's run, opened by the contract (``stage.run``: ``fmt`` and ``split`` are its
            settings', ``full`` is the run's own); None: opened here (``stages.opened``) for ``fmt`` and
            ``split`` (its state is theirs: one per format and split) and ``full``.

    Raises:
        ExportError: no splits, unknown version/split/format, or ``out`` holds another plan.
        RemoteError: a remote ``out`` whose bucket, credentials or endpoint cannot be used.
    """
    check_settings(settings)
    fmt = fmt or settings.export.format
    format_module(fmt)  # an unknown format: refused before the lock is taken
    if run is not None:
        return _export(run, settings, out=out, split=split, fmt=fmt, version=version, progress=progress)
    scoped = replace(settings, export=replace(settings.export, format=fmt, split=split))  # what inputs(ctx) reads
    with opened(STAGE, store, scoped, out=out, version=version, full=full) as run:
        return _export(run, settings, out=out, split=split, fmt=fmt, version=version, progress=progress)


def _export(run: StageRun, settings: cfg.Settings, *, out: str | Path, split: str, fmt: str, version: str | None,
            progress: Progress | None) -> ExportReport:
    store, stats, marks, full = run.store, run.stats, run.marks, run.full
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
        members, skipped_splits = _members(store, stats, version, split)
        version = config["version"] = members.version
        if keeps_index and not full and (unchanged := _unchanged(run, out, fmt, version, members,
                                                                 skipped_splits)) is not None:
            run.record(config)
            return unchanged
        base, full_because = inc.find_base(run, out, fmt, version, existing_plan=existing_plan(out, version, fmt, split))
        # the labels the samples are made of, read before them (a write after is seen next time)
        labels = inc.label_hashes(shared := _stream_connection(store)) if keeps_index else None
        if base is not None:  # hash the samples that may have changed, compare with the base's
            delta = inc.compare(store, shared, members, base, marks, labels)
        planned = plan_run(store, settings, mod, members, delta, shared)
        if delta is not None:
            stats.details.update(changes=delta.counts, hashed=delta.hashed)
        shards, inherited, kept = planned.shards, planned.inherited, planned.kept
        listing, resumed = claim(out, remote, staging, plan_file(fmt, version, settings, mod, base, planned), members)
        stats.n_in = planned.samples
        done, kept_done = carry.finished_and_taken(mod, out, remote, listing, planned, stats)
        skipped = len(done) + len(kept_done) - len(inherited)
        earlier = set(done)  # the shards an earlier run of this folder finished
        todo = len(shards) - len(done)
        units = len(shards) + len(kept)
        if progress:
            progress(skipped, units)
        options = _options(settings, mod, store, members)
        write, copy = _writers(fmt, out, remote, staging)
        written = []
        shard_ids: dict[tuple[str, int], list[str]] = {}  # the samples of each shard of this folder

        def finished(st: dict) -> None:
            written.append(st)
            if "kept_from" in st:
                kept_done[st["path"]] = st
            else:
                done[(st["split"], st["index"])] = st
            account(stats, st)
            if progress:
                progress(skipped + len(written), units)

        copies = [k for k in kept if k["name"] not in kept_done]  # previous shards minus the samples that left
        # a full export keeps its samples' digests too (for the next version's); done shards too
        digests = inc.SAMPLES_SCHEMA.empty_table()
        if keeps_index and base is None and shards:
            digests = inc.digest_table(shared, members.sql(), members.order_sql("m.split", "m.product_id"))
        if todo or copies:
            con = None
            if todo:  # the stream takes the shared connection over (closed with it)
                con, shared = shared or _stream_connection(store), None
            try:  # the copies first: they run in the workers while the samples are read
                args = faces.boxes_args(store, con, faces.written_sql(con, delta, members), stats, options,
                                        partial(shard_args, fmt, out, options, store.root),  # the written samples' faces
                                        frames=settings.faces.frames)  # the faces table's one frame policy, extract's too
                writes = _shard_writes(con, delta, members, planned, done, shard_ids, args, write)
                write_all(pool_size(settings.export.workers, shards, done, copies), [(copy, (k,)) for k in copies],
                          writes, finished, units=todo + len(copies))
            finally:
                if con is not None:
                    con.close()
        ordered = carry.ordered(mod, base, planned, done, kept_done)
        finish(mod, fmt, out, remote, staging, store, version, members, ordered, options,
                index=carry.index_rows(base, delta, planned, done, shard_ids if todo else None, digests) if keeps_index else None,
                labels=labels)
        if resumed:
            remove_stale_temps(out, before=started)
        if "changes" not in stats.details:  # no base compared: an earlier run's shards hold samples that stand
            stats.details["changes"] = _changes(stats.n_in, shards, earlier)
        config["masked"] = stats.details.setdefault("masked", {})  # into the runs row: personal data masked per field
        stats.finish("ok")
    except BaseException as exc:
        run.record(config, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    finally:
        if shared is not None:  # not handed to the sample stream (nothing to write, or a failure before)
            shared.close()
        if delta is not None and delta.rows is not None:
            delta.rows.close()
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
            worker.pop(("remote", str(out), str(staging)), None)  # the inline writes' filesystem
    if keeps_index:  # the state last: a killed export leaves the previous one
        run.complete(config, out=inc.place(store, out), version=version, base=base.name if base else None)
    else:
        run.record(config)
    return ExportReport(stats, out, fmt, version, dict(members.counts), len(shards) + len(inherited) + len(kept),
                        units - skipped, skipped, skipped_splits, shards_inherited=len(inherited), shards_kept=len(kept),
                        base=base.name if base else None, changes=stats.details["changes"],
                        full_because=full_because)


def _shard_writes(con, delta, members: Members, planned: Planned, done: dict, shard_ids: dict, args, write):
    """The writes of the shards not done yet, from one ordered pass over the store (``con``; none when
    every shard is done); records each shard's samples in ``shard_ids``, done ones too."""
    if con is None:
        return
    if delta is not None:  # only the samples to write, in one ordered pass over the store
        source = con if delta.rows is None else delta.rows  # (their products' rows, read for their digests)
        rows = stream_samples(source, choose(source, members, planned.fresh_order))
    else:
        rows = stream_samples(con, members)
    for sh, samples in shard_samples(rows, planned.shards):
        shard_ids[(sh.split, sh.index)] = [s.product_id for s in samples]
        if (sh.split, sh.index) not in done:
            yield write, args(sh, samples)


def _members(store, stats: StageStats, version: str | None, split: str) -> tuple[Members, dict]:
    """The split version's members, less the splits whose names are not plain (a split name becomes file
    names: one that is not plain is skipped, counted as a failure); (members, skipped splits)."""
    members = split_counts(store, version, split)
    skipped_splits = bad_split_names(members.counts)
    for _name in skipped_splits:
        stats.fail(SKIPPED_SPLIT)
    members = members.without(skipped_splits)
    if members.taken_down:
        stats.details["taken_down"] = members.taken_down
    if not members.counts:
        raise ExportError(f"no split of version {members.version!r} has a plain name (skipped: "
                          f"{', '.join(shown(n) for n in skipped_splits)}); rebuild the splits")
    return members, skipped_splits


def _options(settings: cfg.Settings, mod, store, members: Members) -> dict:
    """The format's options (``[export]``), with its decisions over the whole export."""
    options = format_options(settings)
    if hasattr(mod, "prepare"):  # a decision over the whole export (M5Product item ids)
        options = mod.prepare(store, members, options)
    return options


def _writers(fmt: str, out, remote: RemoteOut | None, staging: Path | None) -> tuple:
    """The (picklable) functions that write a new shard and a kept copy: locally, or staged and uploaded."""
    write = partial(run_remote_shard, staging=str(staging)) if remote else run_shard
    if remote:  # inline writes upload through this filesystem (a client costs about 0.3 s to create)
        worker[("remote", str(out), str(staging))] = remote
    return write, partial(run_kept, fmt, str(out), remote=bool(remote), staging=str(staging) if staging else None)


def _changes(n_in: int, shards: list[Shard], earlier: set) -> dict:
    new = sum(sh.size for sh in shards if (sh.split, sh.index) not in earlier)
    return {"new": new, "changed": 0, "unchanged": n_in - new, "removed": 0}


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
    own = [st for st in shards if not st["path"].startswith("../") and "inherited_from" not in st]
    return ExportReport(stats, out, fmt, version, dict(members.counts), len(shards), 0, len(own), skipped_splits,
                        shards_inherited=len(shards) - len(own), base=state.get("base"), changes=stats.details["changes"],
                        full_because="nothing changed")


def run(store, settings: cfg.Settings, **kwargs) -> StageStats:
    """Stage contract: see :func:`export` for the arguments."""
    return export(store, settings, **kwargs).stats

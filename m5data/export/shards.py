"""The export's shards: writing one in its format (inline or in a worker of the process pool), the
completion markers a re-run reads to skip finished shards, and the copies of a previous version's
shards without the samples that left them (``kept``)."""

from __future__ import annotations

import importlib
import os
import shutil
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Callable, Iterable

from ..egress import gate
from ..process_pool import ProcessPool
from ..storage.runs import StageStats
from . import incremental as inc
from .media import shard_blobs
from .plan import Shard, origin
from .remote import RemoteOut
from .samples import ExportError

FORMATS = {"webdataset": "m5data.export.webdataset", "parquet": "m5data.export.hf_parquet",
           "m5product": "m5data.export.m5product"}


def format_module(fmt: str):
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (formats: {', '.join(FORMATS)})")
    return importlib.import_module(FORMATS[fmt])


def run_shard(fmt: str, out: str, shard: dict, options: dict, samples: list, store_root: str) -> dict:
    """Write one shard's samples in its format (top level: picklable for the process pool)."""
    sh = Shard(**{**shard, "product_ids": tuple(shard["product_ids"])})
    if options.get("mask_personal_data"):  # the egress gate's masking; the shard's stats count the replacements
        samples, masked = gate.samples(samples)
        options = {**options, "masked": masked}
    with shard_blobs(store_root, samples) as root:
        return format_module(fmt).write_shard(root, Path(out), sh, samples, options)


worker: dict = {}  # per process: the remote filesystem of an export run (one client per process)


def run_remote_shard(fmt: str, url: str, shard: dict, options: dict, samples: list, store_root: str, *,
                     staging: str) -> dict:
    """Write one shard into its own local staging folder, upload its files (the stats file, the
    marker, last), then drop the staging copy."""
    sh = Shard(**{**shard, "product_ids": tuple(shard["product_ids"])})
    folder = Path(staging) / f"{sh.split}-{sh.index:06d}"
    try:
        stats = run_shard(fmt, str(folder), shard, options, samples, store_root)
        remote = worker.setdefault(("remote", url, staging), RemoteOut(url))  # one filesystem per process and export run
        remote.upload_folder(folder, last=format_module(fmt).stats_path(Path(), sh).as_posix())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return stats


def run_kept(fmt: str, out: str, k: dict, *, remote: bool, staging: str | None) -> dict:
    """Copy the previous shard ``k["from"]`` without the samples that left it into ``k["name"]``
    (top level: picklable for the process pool; streamed: read once, from a sibling folder or prefix;
    written locally or staged and uploaded)."""
    from .remote import RemoteFolder
    from .samples import safe_key

    mod = format_module(fmt)
    if remote:  # one filesystem per process and export run
        remote = worker.setdefault(("remote", out, staging), RemoteOut(out))
        staging = Path(staging)
    else:
        remote = None
    keep = {safe_key(pid) for pid in k["ids"]}
    args = dict(source_name=origin(k["from"]), source_sha256=k["sha256"])  # <folder>/<file>: never a ../ path
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


# below this many samples to write, the default (``export.workers`` 0) writes inline: each spawned worker
# pays ~0.4 CPU-s and 1-2 s of imports, while a demo sample writes in ~13 ms (500 samples: ~6 s inline)
POOL_MIN_SAMPLES = 500


def pool_size(workers: int, shards: list[Shard], done: dict, copies: list[dict]) -> int:
    """The processes that write an export's shards: ``workers`` when set (1 = inline); by default one per
    core, or inline when the samples of the shards to write and to copy are too few to pay a pool's start."""
    if workers:
        return workers
    work = sum(sh.size or len(sh.product_ids) for sh in shards if (sh.split, sh.index) not in done)
    work += sum(len(k["ids"]) for k in copies)
    return (os.cpu_count() or 1) if work >= POOL_MIN_SAMPLES else 1


def write_all(pool_workers: int, first: list[tuple[Callable, tuple]], writes: Iterable[tuple[Callable, tuple]],
              finished: Callable[[dict], None], *, units: int) -> None:
    """Call each ``(function, args)`` of ``first`` then of ``writes`` inline (one worker, or one unit) or in
    a process pool of ``pool_workers``, handing each result to ``finished``. ``first`` is submitted at once
    (it runs in the workers while ``writes`` is read); ``writes`` is read as the pool frees up."""
    pool = None
    try:
        if pool_workers > 1 and units > 1:
            pool_workers = min(pool_workers, units)
            pool = ProcessPool(pool_workers)  # spawned; starts inside a daemonic process too
        running: set = set()
        for fn, args in first:
            if pool is None:
                finished(fn(*args))
            else:
                running.add(pool.submit(fn, *args))
        for fn, args in writes:
            if pool is None:
                finished(fn(*args))
                continue
            # at most two shards per worker wait in the pool: memory stays a few shards
            while len(running) >= 2 * pool_workers:
                ready, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in ready:
                    finished(fut.result())
            running.add(pool.submit(fn, *args))
        for fut in wait(running).done:
            finished(fut.result())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def shard_args(fmt: str, out, options: dict, store_root, sh: Shard, samples: list) -> tuple:
    """The arguments of :func:`run_shard` (and :func:`run_remote_shard`) for one shard: picklable."""
    shard = {"split": sh.split, "index": sh.index, "count": sh.count, "product_ids": list(sh.product_ids),
             "last": sh.last, "size": sh.size}  # not dataclasses.asdict: it copied each id (2 s at 100k)
    return fmt, str(out), shard, options, samples, str(store_root)


def account(stats: StageStats, shard_stats: dict) -> None:
    stats.n_out += shard_stats["nsamples"]
    for count in ("faces_blurred", "codes_blurred", "videos_withheld"):  # export.blur_faces (faces.py), blur_codes (codes.py)
        if shard_stats.get(count):
            stats.details[count] = stats.details.get(count, 0) + shard_stats[count]
    for reason, n in shard_stats.get("videos_withheld_reasons", {}).items():  # M5Product: why (egress/video.py)
        withheld = stats.details.setdefault("videos_withheld_reasons", {})
        withheld[reason] = withheld.get(reason, 0) + n
    stats.bytes += shard_stats.get("bytes_written", shard_stats.get("size", 0))
    for reason, n in shard_stats.get("failures", {}).items():
        stats.fail(reason, n)
    for name, n in shard_stats.get("masked", {}).items():  # personal data masked, per field (m5data/masking.py)
        masked = stats.details.setdefault("masked", {})
        masked[name] = masked.get(name, 0) + n

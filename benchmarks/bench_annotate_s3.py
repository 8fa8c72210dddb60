"""Benchmark: the annotate jobs on a local store and on the same store on S3 (moto's server on 127.0.0.1,
started here), copied from one demo store.

Builds (or reuses, from the tests' cache) a demo store of ``--products`` products, copies it to a local
folder and to ``s3://.../bench``, runs dedup, match-level, pools (twice: the second is up to date),
simulate, aggregate, matcher train and tasks on each after a warm-up run on a third copy, and prints
the seconds per job and the S3 requests. ``--only-local`` leaves S3 out (to compare code versions).

    python benchmarks/bench_annotate_s3.py --products 300   # 60 at least: fewer has no crowd matches to train on
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--products", type=int, default=300)
    ap.add_argument("--only-local", action="store_true")
    args = ap.parse_args()
    from support.demo_fixtures import build_demo_store, cached_shop
    from support.s3_server import moto_server, requests

    work = Path(tempfile.mkdtemp(prefix="m5data-bench-annotate-"))
    try:
        shop = cached_shop(work / "shop", products=args.products, seed=0)
        source = build_demo_store(shop, work / "source")
        with moto_server(work / "moto") as server:
            os.environ.update(server["env"])
            run(source, shop / "truth", work, server, requests, args.only_local)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(source: Path, truth: Path, work: Path, server: dict, requests, only_local: bool) -> None:
    from m5data.annotate.crowd.job import aggregate
    from m5data.annotate.crowd.simulate import simulate
    from m5data.annotate.crowd.tasks import export_tasks
    from m5data.annotate.dedup.job import dedup
    from m5data.annotate.match_level.job import match_level
    from m5data.annotate.matcher.job import train
    from m5data.annotate.pools.job import build_pools
    from m5data.config import load
    from m5data.storage import Store
    from m5data.storage.copy import copy_store

    stores = []
    for name in ("warm-up (local)", "local"):
        shutil.copytree(source, work / name)
        stores.append((name, Store.open(work / name)))
    if not only_local:
        s3 = Store.init(f"s3://{server['bucket']}/bench")
        copy_store(stores[-1][1], s3)
        stores.append(("s3", s3))
    for name, store in stores:
        s = load(overrides={"store.path": str(store.root)}, environ={})
        jobs = (("dedup", lambda: dedup(store, s)), ("match-level", lambda: match_level(store, s)),
                ("pools", lambda: build_pools(store, s)), ("pools again", lambda: build_pools(store, s)),
                ("simulate", lambda: simulate(store, s, truth, top=20)), ("aggregate", lambda: aggregate(store, s)),
                ("matcher train", lambda: train(store, s)),
                ("tasks", lambda: export_tasks(store, work / f"tasks-{name}", top=3)))
        t0, r0, times = time.perf_counter(), requests(server["log"]), []
        for job, call in jobs:
            t = time.perf_counter()
            call()
            times.append(f"{job} {time.perf_counter() - t:.1f}")
        print(f"{name}: total {time.perf_counter() - t0:.1f} s ({', '.join(times)}); "
              f"requests {requests(server['log']) - r0}", flush=True)


if __name__ == "__main__":
    main()

"""Download + extract of a demo world through the pipeline flow: the local runner vs Dask (2 workers).

    python benchmarks/bench_flows.py                          # 1,000 products, every kind (the full run)
    python benchmarks/bench_flows.py --products 100 --kinds image,text   # a quick run
    python benchmarks/bench_flows.py --cluster --products 200 --kinds image,text
        # a real scheduler (dask scheduler + dask worker processes on 127.0.0.1): 1 worker vs 2 workers

--cluster: the same crawled store run by a separately started `dask scheduler` with 1 worker, then
with 2 workers (2 shards each time, so the work per shard is the same), each worker a
`dask worker --nthreads 1` process with its own working directory and TMPDIR, pinned to a core of its own
(worker i on core i: a one-core machine each; unpinned, one worker's ffmpeg threads already take
both cores of this machine and a second worker has nothing left to add). Prints both times, the
ratio 1 worker / 2 workers (target for download + extract: >= 1.6x), and the overhead per shard:
the same run again over the finished store (nothing pending: every shard task only starts, finds no
work and records its runs row), its wall time divided by the number of shard tasks.

The shop is generated once into --out (reused while products and seed match), served on
127.0.0.1 and crawled once; each runner then gets a copy of that crawled store and runs the flow's
download and extract stages over it (runner local: one task per stage, extract's own process pool;
runner dask: a LocalCluster of --workers processes, one shard per worker). Both share one Prefect
API. Prints seconds per runner, the ratio dask/local, and the peak RSS of the whole process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the loopback Dask cluster
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

from peak_rss import PeakRSS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="video,audio,image,text")
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers")
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench-flows")
    parser.add_argument("--cluster", action="store_true", help="real dask scheduler: 1 worker vs 2 workers")
    args = parser.parse_args()

    from m5data.config import load
    from m5data.crawler.crawl import run as crawl
    from m5data.demo.generate import generate
    from m5data.demo.server import serve_in_thread
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan
    from m5data.flows.runners import api_for_workers
    from m5data.storage import Store

    shop, crawled = args.out / f"shop-{args.products}-{args.seed}", args.out / f"crawled-{args.products}-{args.seed}"
    if not (shop / "truth" / "manifest.json").is_file():
        shutil.rmtree(shop, ignore_errors=True)
        t = time.perf_counter()
        generate(shop, products=args.products, seed=args.seed)
        print(f"generated {args.products} products in {time.perf_counter() - t:.1f} s", flush=True)
    overrides = {"download.allow_private": True, "crawl.allow_private": True, "extract.kinds": args.kinds, "flows.dask_workers": args.workers}
    results = {}
    # the crawled store's media URLs name the port: a reused crawl is served on the port it was crawled from
    port_file = crawled / "bench-port.txt"
    port = int(port_file.read_text()) if port_file.is_file() and (crawled / "store.json").is_file() else 0
    with serve_in_thread(shop, port=port, slow_seconds=0.0) as running:
        if not port:
            shutil.rmtree(crawled, ignore_errors=True)
            t = time.perf_counter()
            crawl(Store.init(crawled), load(None, {"store.path": str(crawled), "crawl.allow_private": True}, environ={}),
                  start_urls=[f"{running.url}/"])
            port_file.write_text(str(running.port))
            print(f"crawled once in {time.perf_counter() - t:.1f} s", flush=True)
        # both runners talk to the same Prefect API (the one the Dask workers need)
        with api_for_workers("dask"):
            if args.cluster:
                return cluster_mode(args, crawled, running, overrides)
            for runner in ("local", "dask"):
                path = args.out / f"run-{runner}"
                shutil.rmtree(path, ignore_errors=True)
                shutil.copytree(crawled, path)
                running.reset_faults()  # the same transient faults for both runners
                settings = load(None, {**overrides, "store.path": str(path), "flows.runner": runner}, environ={})
                plan = check_plan(settings, stages="download,extract")
                with PeakRSS(tree=True, every=0.2) as rss:
                    t = time.perf_counter()
                    outcome = run_pipeline(plan, settings, overrides)
                    seconds = time.perf_counter() - t
                counts = {s: (e["n_in"], e["n_out"], e["n_failed"]) for s, e in outcome.results.items()}
                results[runner] = {"seconds": round(seconds, 1), "peak_rss_mb": round(rss.peak / 2**20),
                                   "state": outcome.state, "shards": plan.shards, "in/out/failed": counts}
                print(f"{runner:>5}: {seconds:7.1f} s  peak RSS (process tree) {rss.peak / 2**20:6.0f} MB  "
                      f"{outcome.state}  shards {plan.shards}  {counts}", flush=True)
    ratio = results["dask"]["seconds"] / results["local"]["seconds"]
    print(f"dask ({args.workers} workers) / local = {ratio:.2f}x the time "
          f"({args.products} products, kinds {args.kinds}, {os.cpu_count()} cores)")
    print(json.dumps(results))


def cluster_mode(args, crawled: Path, running, overrides: dict) -> None:
    """1 worker vs 2 workers of a separately started scheduler; then the per-shard overhead on empty work."""
    from support.loopback import dask_cluster

    from m5data.config import load
    from m5data.flows.launch import run_pipeline
    from m5data.flows.pipeline import check_plan

    results = {}
    for n_workers in (1, 2):
        path = args.out / f"run-cluster-{n_workers}"
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(crawled, path)
        with dask_cluster(args.out / f"cluster-{n_workers}", n_workers=n_workers, pin_cores=True) as cluster:
            runs = {}
            for what in ("work", "empty"):  # empty: the same run again, nothing pending
                running.reset_faults()
                sets = {**overrides, "store.path": str(path), "flows.runner": "dask", "flows.shards": 2,
                        "flows.dask_address": cluster.address}
                settings = load(None, sets, environ={})
                plan = check_plan(settings, stages="download,extract")
                with PeakRSS(tree=True, every=0.2) as rss:
                    t = time.perf_counter()
                    outcome = run_pipeline(plan, settings, {k: v for k, v in sets.items() if k != "store.path"})
                    seconds = time.perf_counter() - t
                counts = {s: (e["n_in"], e["n_out"], e["n_failed"]) for s, e in outcome.results.items()}
                stage_s = {s: round(e["seconds"], 1) for s, e in outcome.results.items()}
                runs[what] = {"seconds": round(seconds, 1), "stage_seconds": stage_s, "state": outcome.state,
                              "peak_rss_mb": round(rss.peak / 2**20), "in/out/failed": counts}
                print(f"{n_workers} worker(s), {what:>5}: {seconds:7.1f} s  stages {stage_s}  peak RSS (this "
                      f"process tree, workers not included) {rss.peak / 2**20:5.0f} MB  {outcome.state}  {counts}",
                      flush=True)
        results[n_workers] = runs
    one, two = results[1]["work"]["seconds"], results[2]["work"]["seconds"]
    tasks = 2 * 2  # 2 stages x 2 shards
    per_shard = [results[n]["empty"]["seconds"] / tasks for n in (1, 2)]
    print(f"1 worker / 2 workers = {one / two:.2f}x faster with 2 ({args.products} products, kinds {args.kinds}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")
    print(f"overhead per shard task (run with nothing pending / {tasks} tasks): "
          f"{per_shard[0]:.2f} s (1 worker), {per_shard[1]:.2f} s (2 workers)")
    print(json.dumps({str(k): v for k, v in results.items()}))


if __name__ == "__main__":
    main()

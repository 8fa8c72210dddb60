"""Benchmark: the store's tables on object storage (moto's S3 server on 127.0.0.1, started here).

    python benchmarks/bench_store_s3.py [--writes 60] [--rows 1000000] [--part-rows 250000] [--products 60] [--opens-only]

1. Commit latency of ``Store.write`` (10 spec rows: a part PUT plus the log's LIST + put-if-absent
   entry) with 1 writer process and with 4 writer processes on one table at once: median and p99
   of the whole write and of its log commit alone, refused puts (another writer took the entry),
   and requests per write counted in the server's request log. The same writes on a local folder
   store are timed for reference.
2. A read of ``--rows`` spec rows (written by the streaming writer in parts of ``--part-rows``):
   ``count`` and ``m5data sql``'s GROUP BY, a fresh process each; requests per ``connect()``;
   ``m5data doctor --quick`` over that store.
3. The demo shop's ``--products`` products (seed 0) crawl -> download -> extract -> align ->
   build-splits -> export, each stage a ``python -m m5data`` process (2 extract and export workers),
   on a local folder store and on an S3 store: seconds per stage, the ratio S3 / local, requests per
   product, and ``m5data doctor --quick`` on each (``--products 0`` skips it).
4. Opening a store in one process (``--opens`` times, a table's count read each): CPU seconds per open
   with the process's shared botocore data loader, against a session with a loader of its own each time
   (as before 2026-11-28), alternated in this process; the ratio.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support


def _rows(who: str, k: int) -> list[dict]:
    return [{"product_id": f"{who}:{k}", "position": i, "property": f"p{i}", "value": str(k)} for i in range(10)]


def writer(url: str, who: str, writes: int, start, out) -> None:
    """One writer process: ``writes`` writes, each timed whole and for its log commit alone."""
    from m5data.storage import Store, commitlog, objects

    store = Store.open(url)
    commits, refused = [], [0]
    commit, put = commitlog.TableLog.commit, objects.ObjectStore.put

    def timed_commit(self, make):
        t = time.perf_counter()
        try:
            return commit(self, make)
        finally:
            commits.append(time.perf_counter() - t)

    def counted_put(self, rel, data, **kw):
        etag = put(self, rel, data, **kw)
        refused[0] += etag is None and "/_log/" in rel
        return etag

    commitlog.TableLog.commit, objects.ObjectStore.put = timed_commit, counted_put
    store.write("specs", _rows(who, -1))  # warm: imports, the connection pool, the log's state
    commits.clear()
    start.wait()
    totals = []
    for k in range(writes):
        t = time.perf_counter()
        store.write("specs", _rows(who, k))
        totals.append(time.perf_counter() - t)
    out.put((totals, commits, refused[0]))


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def commit_latency(url: str, writers: int, writes: int, log: Path | None) -> None:
    from support.s3_server import requests

    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(writers + 1), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(url, f"w{i}", writes, start, out)) for i in range(writers)]
    for p in procs:
        p.start()
    start.wait()
    before = requests(log) if log else 0
    t = time.perf_counter()
    results = [out.get() for _ in procs]
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
    totals = [x for r in results for x in r[0]]
    commits = [x for r in results for x in r[1]]
    refused = sum(r[2] for r in results)
    line = (f"{'s3' if log else 'local':5s} {writers} writer(s) x {writes}: write median "
            f"{statistics.median(totals) * 1e3:6.1f} ms  p99 {_p(totals, 0.99) * 1e3:6.1f} ms")
    if log:  # a local store has no log: a write is a rename
        line += (f" | log commit median {statistics.median(commits) * 1e3:6.1f} ms  p99 {_p(commits, 0.99) * 1e3:6.1f} ms"
                 f" | refused puts {refused}  requests/write {(requests(log) - before) / len(totals):.2f}")
    print(f"{line} | {len(totals) / wall:.0f} writes/s")


def big_write(url: str, rows: int, part_rows: int) -> float:
    from bench_store import batches

    from m5data.storage import Store

    store = Store.open(url, part_rows=part_rows)
    t = time.perf_counter()
    with store.writer("specs") as w:
        for batch in batches(rows // 10, 10, 100_000):
            w.write(batch)
    return time.perf_counter() - t


def demo_pipeline(products: int, work: Path, s3: dict) -> None:
    """The demo shop's pipeline on a local store and on an S3 store, stage by stage (section 3)."""
    from support.demo_fixtures import cached_shop
    from support.s3_server import requests, requests_by_kind

    from m5data.demo.server import serve_in_thread
    from m5data.storage import Store

    shop = cached_shop(work / "shops", products=products, seed=0)
    mapping = str(shop / "truth" / "level1_mapping.toml")
    sets = ["--set", "crawl.allow_private=true", "--set", "download.allow_private=true",
            "--set", "extract.workers=2", "--set", "export.workers=2", "--set", "export.shard_size=8"]
    seconds: dict[str, dict[str, float]] = {}
    reqs = 0
    with serve_in_thread(shop) as running:
        for where in ("local", "s3"):
            running.reset_faults()
            store = f"s3://{s3['bucket']}/demo" if where == "s3" else str(work / "demo-local")
            out = f"{store}/exports/v1-webdataset-all"
            Store.init(store)
            stages = {"crawl": ["crawl", "--start-url", f"{running.url}/"], "download": ["download", "--no-progress"],
                      "extract": ["extract", "--no-progress"], "align": ["align", "--mapping", mapping],
                      "splits": ["build-splits", "--version", "v1"],
                      "export": ["export", "--version", "v1", "--format", "webdataset", "--out", out]}
            before = requests(s3["log"])
            seconds[where] = {}
            for stage, args in stages.items():
                at = requests(s3["log"])
                seconds[where][stage], _ = timed([sys.executable, "-m", "m5data", "--store", store, *sets, *args])
                if where == "s3":
                    kinds = requests_by_kind(s3["log"], at)
                    print(f"demo s3 {stage:<9} requests per product: {sum(kinds.values()) / products:6.2f} ("
                          + ", ".join(f"{k} {v / products:.2f}" for k, v in sorted(kinds.items())) + ")", flush=True)
            if where == "s3":
                reqs = requests(s3["log"]) - before
                kinds = requests_by_kind(s3["log"], before)
                print("demo s3 crawl -> export, requests per product by kind: "
                      + ", ".join(f"{k} {v / products:.2f}" for k, v in sorted(kinds.items())), flush=True)
            before = requests(s3["log"])
            s, _ = timed([sys.executable, "-m", "m5data", "--store", store, "doctor", "--quick"])
            extra = f"; requests {requests(s3['log']) - before}" if where == "s3" else ""
            print(f"demo {where}: doctor --quick {s:.2f} s{extra}")
    for where in ("local", "s3"):
        total = sum(seconds[where].values())
        print(f"demo {where:<5} {products} products: {total:6.1f} s ("
              + ", ".join(f"{k} {v:.1f}" for k, v in seconds[where].items()) + ")")
    ratio = sum(seconds["s3"].values()) / sum(seconds["local"].values())
    print(f"demo crawl -> export: S3 / local {ratio:.2f}x; {reqs:,} requests ({reqs / products:.0f} per product)")


def opens(url: str, n: int) -> None:
    """Section 4: CPU per store open (and one count) with the shared botocore loader and without it."""
    from aiobotocore.session import AioSession

    from m5data.storage import Store, objects

    shared = objects._session
    cpu = {"shared loader": 0.0, "loader of its own": 0.0}
    for i in range(2 * n):
        how = "shared loader" if i % 2 else "loader of its own"
        objects._session = shared if i % 2 else AioSession
        started = time.process_time()
        Store.open(url).count("specs")
        cpu[how] += time.process_time() - started
    objects._session = shared
    per = {k: 1000 * v / n for k, v in cpu.items()}
    print(f"store opens on S3 ({n} each, alternated): " + ", ".join(f"{k} {v:.0f} ms CPU" for k, v in per.items())
          + f"; shared / own {per['shared loader'] / per['loader of its own']:.2f}")


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - t, proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=60, help="writes per writer process")
    parser.add_argument("--rows", type=int, default=1_000_000, help="spec rows for the read")
    parser.add_argument("--part-rows", type=int, default=250_000)
    parser.add_argument("--products", type=int, default=60, help="demo shop products for section 3 (0: skip)")
    parser.add_argument("--demo-only", action="store_true", help="section 3 only (requests per product by kind)")
    parser.add_argument("--opens", type=int, default=20, help="store opens of section 4 per way")
    parser.add_argument("--opens-only", action="store_true", help="section 4 only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from support.s3_server import moto_server, requests

    from m5data.storage import Store

    with tempfile.TemporaryDirectory() as tmp, moto_server(Path(tmp) / "moto") as s3:
        os.environ.update(s3["env"])
        if args.opens_only:
            url = f"s3://{s3['bucket']}/opens"
            Store.init(url).write("specs", _rows("a", 0))
            opens(url, args.opens)
            return
        if not args.demo_only:
            for n in (1, 4):
                url = f"s3://{s3['bucket']}/commits-{n}"
                Store.init(url)
                commit_latency(url, n, args.writes, s3["log"])
                local = Path(tmp) / f"local-{n}"
                Store.init(local)
                commit_latency(str(local), n, args.writes, None)

            url = f"s3://{s3['bucket']}/read"
            Store.init(url)
            seconds = big_write(url, args.rows, args.part_rows)
            print(f"streaming write of {args.rows:,} spec rows ({args.part_rows:,} per part): {seconds:.2f} s")
            py = [sys.executable, "-c"]
            before = requests(s3["log"])
            s, out = timed(py + [f"from m5data.storage import Store; print(Store.open({url!r}).count('specs'))"])
            print(f"count (fresh process): {s:.2f} s -> {int(out):,} rows; requests {requests(s3['log']) - before}")
            before = requests(s3["log"])
            s, _ = timed(py + [f"from m5data.storage import Store; Store.open({url!r}).connect().close()"])
            print(f"connect() of every table (fresh process): {s:.2f} s; requests {requests(s3['log']) - before}")
            sql = "SELECT property, count(*), count(DISTINCT value) FROM specs GROUP BY 1"
            before = requests(s3["log"])
            s, _ = timed([sys.executable, "-m", "m5data", "--store", url, "sql", sql])
            print(f"m5data sql GROUP BY over {args.rows:,} rows: {s:.2f} s; requests {requests(s3['log']) - before}")
            s, _ = timed(py + [f"from m5data.storage import Store; print(Store.open({url!r}).compact('specs'))"])
            before = requests(s3["log"])
            s2, _ = timed([sys.executable, "-m", "m5data", "--store", url, "sql", sql])
            print(f"compact: {s:.2f} s; the same query after it: {s2:.2f} s; requests {requests(s3['log']) - before}")
            before = requests(s3["log"])
            s, _ = timed([sys.executable, "-m", "m5data", "--store", url, "doctor", "--quick"])
            print(f"doctor --quick over {args.rows:,} spec rows: {s:.2f} s; requests {requests(s3['log']) - before}")
        if args.products:
            demo_pipeline(args.products, Path(tmp), s3)
        if not args.demo_only:
            opens(f"s3://{s3['bucket']}/read", args.opens)


if __name__ == "__main__":
    main()

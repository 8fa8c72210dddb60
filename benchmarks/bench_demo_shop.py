"""Demo shop: time ``generate`` at 300 and 5,000 products, then serve and fetch everything.

    python benchmarks/bench_demo_shop.py [--products 300 5000] [--workers N] [--out DIR] [--keep]

Each size is generated in its own child process, which reports wall seconds per phase, CPU
seconds of itself plus its children (the ffmpeg processes), and the peak RSS of its whole process
tree (it, its workers and ffmpeg: RSS summed, sampled by ``peak_rss.PeakRSS``). Then the shop is
served in a thread and every page and media URL of the truth is fetched once, 16 at a time,
with aiohttp (streamed, bodies discarded), to time serving and check the statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _generate(out: str, products: int, workers: int | None, queue) -> None:
    from m5data.demo.generate import generate

    timings: dict = {}
    start, cpu = time.perf_counter(), _cpu()
    generate(out, products=products, seed=0, workers=workers, timings=timings)
    queue.put({"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(_cpu() - cpu, 1),
               "phases_s": timings})


async def _fetch_all(base: str, urls: list[str]) -> Counter:
    import aiohttp

    statuses: Counter = Counter()
    sem = asyncio.Semaphore(16)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(url: str) -> None:
            async with sem:
                for _ in range(2):  # the answer-500-once URLs succeed on the retry
                    async with session.get(base + url) as resp:
                        async for _chunk in resp.content.iter_chunked(1 << 16):
                            pass
                        if resp.status != 500:
                            break
                statuses[resp.status] += 1
        await asyncio.gather(*(one(u) for u in urls))
    return statuses


def bench(products: int, root: Path, workers: int | None) -> dict:
    out = root / f"shop{products}"
    queue: mp.Queue = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=_generate, args=(str(out), products, workers, queue))
    child.start()
    from peak_rss import PeakRSS

    with PeakRSS(child.pid, tree=True) as mem:
        result = queue.get()
        child.join()
    result["tree_peak_rss_mib"] = round(mem.peak / 2**20)
    from m5data.demo import load_truth, serve_in_thread

    truth = load_truth(out)
    urls = [p["url"] for p in truth.pages] + [m["url"] for m in truth.media]
    files = [p for p in (out / "site").rglob("*") if p.is_file()]
    with serve_in_thread(out, slow_seconds=2.0) as shop:
        start = time.perf_counter()
        statuses = asyncio.run(_fetch_all(shop.url, urls))
        serve_s = time.perf_counter() - start
    result.update({"products": products, "files": len(files),
                   "site_mb": round(sum(p.stat().st_size for p in files) / 2**20, 1),
                   "fetched": len(urls), "fetch_s": round(serve_s, 1),
                   "statuses": dict(sorted(statuses.items())),
                   "load_avg_1m_after": round(os.getloadavg()[0], 1)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, nargs="+", default=[300, 5000])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="Folder for the shops (default: a temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the generated shops.")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-demo-shop-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for n in args.products:
            print(json.dumps(bench(n, root, args.workers), ensure_ascii=False), flush=True)
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

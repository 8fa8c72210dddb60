"""Crawl: time ``crawl`` of the demo shop with this checkout's code against a baseline checkout.

    python benchmarks/bench_crawl.py --baseline /path/to/old/checkout [--products 300] [--rounds 3]

The shop (default 300 products, seed 0: what ``m5data demo`` builds) is generated once (cached
under --cache, by default the test suite's demo-shop cache) and served in a thread. Each round
crawls it from its home page twice, once with each checkout's code (``PYTHONPATH`` set to the
checkout; the crawl itself runs in its own subprocess as always), alternating which goes first so
that machine noise hits both alike. Printed: wall seconds and CPU seconds of the crawl subprocess
per run, the median ratios new / baseline (CPU is the steadier figure on a shared machine),
products stored, and the peak RSS of each run's whole process tree (the Python process that runs
the crawl and the crawl subprocess: RSS summed, sampled by ``peak_rss.run_measured``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the demo shop fixtures
CHILD = r"""
import json, resource, sys, time
from m5data.config import load
from m5data.crawler.crawl import run
from m5data.storage import Store
store = Store.init(sys.argv[1])
start = time.perf_counter()
settings = load(environ={})
if hasattr(settings.crawl, "allow_private"):  # the shop is on 127.0.0.1; older checkouts had no such policy
    settings.crawl.allow_private = True
stats = run(store, settings, start_urls=[sys.argv[2] + "/"])
wall = time.perf_counter() - start
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": kids.ru_utime + kids.ru_stime, "products": stats.n_out, "pages": stats.n_in}))
"""


def crawl_once(code_root: Path, url: str, env: dict) -> dict:
    from peak_rss import run_measured

    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp:
        out = run_measured([sys.executable, "-c", CHILD, str(Path(tmp) / "store"), url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": str(code_root)}, cwd=tmp)
    if out.returncode != 0:
        raise SystemExit(f"crawl with {code_root} failed:\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "tree_peak_mb": out.peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the code to compare with")
    parser.add_argument("--products", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=ROOT / ".pytest_cache" / "d" / "m5data-demo-shop")
    args = parser.parse_args()
    from support.demo_fixtures import SLOW_SECONDS, cached_shop

    from m5data.demo.server import serve_in_thread

    args.cache.mkdir(parents=True, exist_ok=True)
    shop_dir = cached_shop(args.cache, products=args.products, seed=0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    runs: dict[str, list[dict]] = {"new": [], "baseline": []}
    with serve_in_thread(shop_dir, slow_seconds=SLOW_SECONDS) as shop:
        for i in range(args.rounds):
            order = [("new", ROOT), ("baseline", args.baseline)]
            for name, root in order if i % 2 == 0 else order[::-1]:
                shop.reset_faults()  # the answer-500-once pages fail once for each crawl
                result = crawl_once(root, shop.url, env)
                runs[name].append(result)
                print(f"round {i + 1} {name:8s} wall {result['wall_s']:.2f} s  crawl CPU {result['cpu_s']:.2f} s  products {result['products']}  "
                      f"pages {result['pages']}  tree peak RSS {result['tree_peak_mb']:.0f} MiB", flush=True)
    new = statistics.median(r["wall_s"] for r in runs["new"])
    base = statistics.median(r["wall_s"] for r in runs["baseline"])
    print(f"median wall: new {new:.2f} s, baseline {base:.2f} s, ratio new/baseline {new / base:.2f}")
    new_cpu = statistics.median(r["cpu_s"] for r in runs["new"])
    base_cpu = statistics.median(r["cpu_s"] for r in runs["baseline"])
    print(f"median crawl CPU: new {new_cpu:.2f} s, baseline {base_cpu:.2f} s, ratio new/baseline {new_cpu / base_cpu:.2f}")
    print(f"whole-tree peak RSS of a crawl: new {max(r['tree_peak_mb'] for r in runs['new']):.0f} MiB, "
          f"baseline {max(r['tree_peak_mb'] for r in runs['baseline']):.0f} MiB")


if __name__ == "__main__":
    main()

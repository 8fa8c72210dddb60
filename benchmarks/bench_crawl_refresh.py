"""Refresh crawl of the demo shop with the stored validators (conditional GETs, 304s) and without.

    python benchmarks/bench_crawl_refresh.py [--products 300] [--rounds 2]

The shop (seed 0, generated once and cached like bench_crawl's) is served in a thread and crawled
once from its home page into a store. Each round copies that store twice and runs
``crawl --refresh`` on the copies, once with ``crawl.revalidate`` on (If-None-Match /
If-Modified-Since sent: the demo shop's aiohttp FileResponse answers 304) and once off (plain GETs,
every page sent in full), alternating which goes first. Printed per run: bytes received (Scrapy's
``downloader/response_bytes``: status lines, headers and bodies), pages, 304 answers, the
new / changed / unchanged counts and wall seconds; then the medians and the ratios
with / without. Listing pages are fetched in full either way (they are not products).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the demo shop fixtures


def refresh(store_dir: Path, url: str, revalidate: bool) -> dict:
    from m5data.config import load
    from m5data.crawler.crawl import run
    from m5data.storage import Store

    settings = load(overrides={"crawl.allow_private": True, "crawl.revalidate": revalidate}, environ={})
    start = time.perf_counter()
    stats = run(Store.open(store_dir), settings, start_urls=[url + "/"], refresh=True)
    return {"wall_s": time.perf_counter() - start, "bytes": stats.bytes, "pages": stats.n_in,
            "not_modified": stats.details["not_modified"], "changes": stats.details["changes"]}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, kind, default in (("--products", int, 300), ("--rounds", int, 2),
                                ("--cache", Path, ROOT / ".pytest_cache" / "d" / "m5data-demo-shop")):
        parser.add_argument(flag, type=kind, default=default)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    from support.demo_fixtures import SLOW_SECONDS, cached_shop

    from m5data.config import load
    from m5data.crawler.crawl import run
    from m5data.demo.server import serve_in_thread
    from m5data.storage import Store

    args.cache.mkdir(parents=True, exist_ok=True)
    shop_dir = cached_shop(args.cache, products=args.products, seed=0)
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    with serve_in_thread(shop_dir, slow_seconds=SLOW_SECONDS) as shop, \
            tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        crawled = Path(tmp) / "crawled"
        first = run(Store.init(crawled), load(overrides={"crawl.allow_private": True}, environ={}),
                    start_urls=[shop.url + "/"])
        print(f"first crawl: {first.n_out} products, {first.n_in} pages, {first.bytes:,} bytes, "
              f"{Store.open(crawled).count('page_validators')} validators kept", flush=True)
        for i in range(args.rounds):
            order = [("with", True), ("without", False)]
            for name, revalidate in order if i % 2 == 0 else order[::-1]:
                copy = Path(tmp) / f"round-{i}-{name}"
                shutil.copytree(crawled, copy)
                shop.reset_faults()  # the answer-500-once pages fail once for each crawl
                result = refresh(copy, shop.url, revalidate)
                shutil.rmtree(copy)
                runs[name].append(result)
                changes = ", ".join(f"{k} {v}" for k, v in result["changes"].items())
                print(f"round {i + 1} {name:7s} validators: {result['bytes']:>11,} bytes  pages {result['pages']}  "
                      f"304s {result['not_modified']}  {changes}  wall {result['wall_s']:.2f} s", flush=True)
    med = {name: {key: statistics.median(r[key] for r in rs) for key in ("bytes", "wall_s")} for name, rs in runs.items()}
    for name in ("with", "without"):
        print(f"median {name:7s} validators: {med[name]['bytes']:,.0f} bytes, {med[name]['wall_s']:.2f} s")
    print(f"ratio with/without: bytes {med['with']['bytes'] / med['without']['bytes']:.3f}, "
          f"wall {med['with']['wall_s'] / med['without']['wall_s']:.3f}")


if __name__ == "__main__":
    main()

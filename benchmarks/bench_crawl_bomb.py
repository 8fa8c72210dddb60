"""Crawl: peak RSS of a crawl whose product links answer with gzip pages that inflate to 900 MiB.

    python benchmarks/bench_crawl_bomb.py [--pages 16] [--inflated-mib 900] [--max-page-bytes N]

A listing on 127.0.0.1 links ``--pages`` product pages, each about 0.9 MB of gzip (a gzip stream of
many small members) that inflates to ``--inflated-mib`` MiB; all of them may be in flight at once
(``crawl.concurrency`` 16). The crawl runs as always (``crawl.run``, Scrapy in a subprocess) from a
fresh Python process, which prints the ``page too large`` rows and the products stored; printed
with them, the peak RSS of that process's whole tree (it and the crawl subprocess: RSS summed,
sampled by ``peak_rss.run_measured``). Issue 35 measured 6.6 GB for one such page with Scrapy's 1 GiB default cap; the bound the
crawl must stay under is 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "crawler")]  # tests/support; test_crawl_walled's gzip bomb

CHILD = r"""
import json, sys
from m5data.config import load
from m5data.crawler.crawl import CrawlFailed, run
from m5data.storage import Store
store = Store.init(sys.argv[1])
overrides = {"crawl.max_depth": 1, "crawl.allow_private": True}
if int(sys.argv[3]):
    overrides["crawl.max_page_bytes"] = int(sys.argv[3])
try:
    stats = run(store, load(overrides=overrides, environ={}), start_urls=[sys.argv[2] + "/"])
except CrawlFailed as exc:
    stats = exc.stats
print(json.dumps({"failures": dict(stats.failures), "products": stats.n_out}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=16, help="gzip pages linked from the listing")
    parser.add_argument("--inflated-mib", type=int, default=900, help="inflated size of each gzip page")
    parser.add_argument("--max-page-bytes", type=int, default=0, help="crawl.max_page_bytes (0: the default)")
    args = parser.parse_args()
    from peak_rss import run_measured
    from support.crawl_server import Page, SiteServer
    from test_crawl_walled import gzip_bomb

    bomb = gzip_bomb(args.inflated_mib)
    server = SiteServer({f"/p/{i}.html": Page(bomb, headers={"Content-Encoding": "gzip"}) for i in range(args.pages)})
    server.add("/", "<html><body>" + "".join(f'<a href="/p/{i}.html">{i}</a>' for i in range(args.pages)) + "</body></html>")
    with server, tempfile.TemporaryDirectory(prefix="bench-bomb-") as tmp:
        out = run_measured([sys.executable, "-c", CHILD, str(Path(tmp) / "store"), server.url, str(args.max_page_bytes)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.pages} pages of {len(bomb):,} bytes gzip -> {args.inflated_mib} MiB each: "
          f"crawl tree peak RSS {out.peak / 2**20:.0f} MiB; failures {result['failures']}; "
          f"products {result['products']}")


if __name__ == "__main__":
    main()

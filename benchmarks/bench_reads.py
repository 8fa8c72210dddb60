"""The store's small reads: a DuckDB database of their own against a cursor of the process's read database.

    python benchmarks/bench_reads.py [--products 2000] [--reads 200] [--s3]

A store of ``--products`` products (10 spec rows each, written in 20 writes) on a local folder, and with
``--s3`` on moto's S3 server (127.0.0.1, started here). On each, ``--reads`` times, alternated in this
process, the same read (the products view joined to the specs view, one count):

- ``own``: ``store.connect(need, only)``, a database of its own, as every such read made before
  2026-11-29 (and every read of a store on S3: its filesystem was registered per database);
- ``cursor``: ``store.connect(need, only, cursor=True)``, a cursor of the read database (readdb.py).

Prints milliseconds and CPU milliseconds per read, and the ratio own / cursor.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support (the S3 server)

TABLES = ("products", "specs")
SQL = "SELECT count(*) FROM products p JOIN specs s USING (product_id) WHERE s.position < 5"


def fill(store, products: int) -> None:
    writes = 20
    per = max(1, products // writes)
    for w in range(writes):
        ids = [f"shop:{w}-{k}" for k in range(per)]
        store.write("products", [{"product_id": pid, "platform": "shop", "title": f"product {pid}"} for pid in ids])
        store.write("specs", [{"product_id": pid, "position": i, "property": f"p{i}", "value": str(i)}
                              for pid in ids for i in range(10)])


def one_read(store, cursor: bool) -> int:
    con = store.connect(need=TABLES, only=TABLES, cursor=cursor)
    try:
        return con.execute(SQL).fetchone()[0]
    finally:
        con.close()


def measure(store, reads: int) -> dict[str, tuple[float, float]]:
    """{way: (median ms, CPU ms a read)}, the two ways alternated."""
    walls: dict[str, list[float]] = {"own": [], "cursor": []}
    cpus: dict[str, float] = {"own": 0.0, "cursor": 0.0}
    expect = one_read(store, False)
    assert one_read(store, True) == expect  # the same answer both ways
    for _ in range(reads):
        for way in ("own", "cursor"):
            t, c = time.perf_counter(), time.process_time()
            assert one_read(store, way == "cursor") == expect
            walls[way].append(time.perf_counter() - t)
            cpus[way] += time.process_time() - c
    return {way: (statistics.median(walls[way]) * 1000, cpus[way] / reads * 1000) for way in walls}


def report(where: str, got: dict[str, tuple[float, float]]) -> None:
    own, cur = got["own"], got["cursor"]
    print(f"{where}: own database {own[0]:.2f} ms ({own[1]:.2f} CPU ms) a read, cursor {cur[0]:.2f} ms "
          f"({cur[1]:.2f} CPU ms); own / cursor: {own[0] / cur[0]:.1f}x wall, {own[1] / cur[1]:.1f}x CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--reads", type=int, default=200)
    ap.add_argument("--s3", action="store_true", help="also on moto's S3 server (started on 127.0.0.1)")
    args = ap.parse_args()
    from m5data.storage import Store

    with tempfile.TemporaryDirectory(prefix="m5data-bench-reads-") as tmp:
        store = Store.init(Path(tmp) / "store")
        fill(store, args.products)
        report(f"folder store, {args.products} products", measure(store, args.reads))
        if args.s3:
            from support.s3_server import moto_server

            with moto_server(Path(tmp) / "moto") as server, _environ(server["env"]):
                url = f"s3://{server['bucket']}/bench-reads"
                store = Store.init(url)
                fill(store, args.products)
                report(f"S3 store (moto), {args.products} products", measure(store, args.reads))


@contextlib.contextmanager
def _environ(extra: dict):
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    main()

"""Benchmark: ``build-splits`` on a store of synthetic labelled products (M5Product's 6.3 million by default).

Prints the wall time and peak RSS (of the whole process tree: RSS summed, sampled) of a full build (plan, assignment, manifest with checksums,
writing the ``splits`` rows) against the floor: a plain DuckDB scan over the same store that reads
the same columns (product_id, platform, category_path) and hashes them with the same md5, once per
product. Targets: build within 3x of the floor, peak RSS < 3 GiB. Each measured step runs in a
fresh process so that its tree's peak RSS is its own (generating the store is not measured); one-time
imports are paid before the clock starts in both steps.

    python benchmarks/bench_splits.py                       # 6,313,067 products
    python benchmarks/bench_splits.py --products 200000     # a quick run
    python benchmarks/bench_splits.py --root /tmp/bs --keep # keep (and reuse) the generated store
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the synthetic labelled store

from peak_rss import run_measured  # noqa: E402

# read the columns the build reads and hash them (the same md5), nothing else
FLOOR_SQL = """
SELECT count(*),
       sum(md5_number(product_id || '|' || coalesce(platform, '') || '|' || array_to_string(category_path, ' > ')) >> 96)
FROM products
"""

def _settings(store_root: str, threads: int):
    from m5data import config as cfg

    return cfg.load(None, {"store.path": store_root, "splits.threads": threads or None}, environ={})


def _warm_imports() -> None:
    """Pay the one-time imports before the clock starts, in both phases: the first Parquet write
    imports pandas through pyarrow (about 300 modules, 0.3 s), a cost that does not grow with the store."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        table = pa.table({"a": ["x"]})
        with pq.ParquetWriter(f"{tmp}/warm.parquet", table.schema.with_metadata({"k": "v"})) as writer:
            writer.write_table(table)


def phase(kind: str, store_root: str, threads: int) -> dict:
    """One measured step, run in a child process: ``floor`` or ``build``."""
    from m5data.splits import build
    from m5data.splits.build import open_connection
    from m5data.storage import Store

    settings = _settings(store_root, threads)
    store = Store.from_settings(settings)
    _warm_imports()
    t0 = time.perf_counter()
    if kind == "floor":
        con = open_connection(store, settings)
        try:
            out = {"result": [str(x) for x in con.execute(FLOOR_SQL).fetchone()]}
        finally:
            con.close()
    else:
        report = build(store, settings, version=f"bench-{time.time_ns()}")
        out = {"splits": {k: v["products"] for k, v in report.splits.items()}, "rows": report.stats.n_out}
    out["seconds"] = time.perf_counter() - t0
    return out


def measure(kind: str, store_root: str, threads: int) -> dict:
    """Run ``phase`` in a child process; sample the RSS of its process tree every 20 ms."""
    done = run_measured([sys.executable, __file__, "--phase", kind, "--root", store_root,
                         "--threads", str(threads)], stdout=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} step failed (exit {done.returncode})")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": done.seconds, "peak_rss": done.peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=6_313_067)
    ap.add_argument("--categories", type=int, default=6232)
    ap.add_argument("--root", default="", help="store folder (default: a temp folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the store; reuse it when it already holds --products")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = cores)")
    ap.add_argument("--phase", choices=["floor", "build"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.root, args.threads)))
        return

    from support.splits_store import write_synthetic

    from m5data.storage import Store

    root = Path(args.root or tempfile.mkdtemp(prefix="bench-splits-")) / "store"
    marker = root / ".bench-products"
    try:
        if not (marker.is_file() and marker.read_text() == str(args.products)):
            shutil.rmtree(root, ignore_errors=True)
            store = Store.init(root)
            t0 = time.perf_counter()
            write_synthetic(store, args.products, n_categories=args.categories)
            store.compact("products")  # a compacted table reads without the last-write-wins window
            print(f"generated {args.products:,} products over {args.categories:,} categories "
                  f"in {time.perf_counter() - t0:.1f}s")
            marker.write_text(str(args.products))
        floor = measure("floor", str(root), args.threads)
        built = measure("build", str(root), args.threads)
        gib = 1024 ** 3
        print(f"products: {args.products:,}  cores: {os.cpu_count()}  threads: {args.threads or 'all'}")
        print(f"floor (DuckDB scan + md5 of the same columns): {floor['seconds']:.2f}s in-process, "
              f"{floor['wall']:.2f}s wall, tree peak RSS {floor['peak_rss'] / gib:.2f} GiB")
        print(f"build-splits: {built['seconds']:.2f}s in-process, {built['wall']:.2f}s wall, "
              f"tree peak RSS {built['peak_rss'] / gib:.2f} GiB, {built['rows']:,} split rows")
        print("splits: " + ", ".join(f"{k} {v:,}" for k, v in built["splits"].items()))
        ratio = built["seconds"] / floor["seconds"]
        print(f"ratio of wall times (process start to exit, interpreter and imports included): "
              f"{built['wall'] / floor['wall']:.2f}x")
        print(f"ratio build / floor: {ratio:.2f}x (target <= 3x): {'ok' if ratio <= 3 else 'MISSED'}; "
              f"tree peak RSS {built['peak_rss'] / gib:.2f} GiB (target < 3 GiB): "
              f"{'ok' if built['peak_rss'] < 3 * gib else 'MISSED'}")
    finally:
        if not args.keep:
            shutil.rmtree(root.parent if not args.root else root, ignore_errors=True)


if __name__ == "__main__":
    main()

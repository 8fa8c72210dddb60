"""Global read stages at the papers' size: report, stats, doctor, three `m5data sql` queries, compact.

    python benchmarks/bench_report_sql.py --sizes 10000 100000 1000000 [--specs 24] [--blob-files 20000]
        [--root /work/scratch/report/bench] [--keep]

Per size, a store is built (``tests/support/splits_store.write_synthetic`` products, given titles and merchants
(one ``replace`` of the products table),
their label_map rows; ``--specs`` spec rows per product written as a crawl would, in batches of
40,000 products with ids in random order, so every part spans the whole key range; one image media
row with a real 1 KB blob for the first ``--blob-files`` products). Then each stage runs as the CLI,
in its own process: ``m5data sql`` (the first call builds the key sidecars, timed apart), ``stats``,
``report``, ``doctor --quick``, ``compact``, and the sql queries again after compaction. Prints
seconds, us/product, peak RSS, the report's HTML size, and the growth of us/product from the
smallest size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

QUERIES = {
    "count_by_category": "SELECT array_to_string(category_path, ' > ') AS c, count(*) AS n FROM products GROUP BY 1 ORDER BY n DESC LIMIT 20",
    "top_properties": "SELECT property, count(*) AS n FROM specs GROUP BY 1 ORDER BY n DESC LIMIT 20",
    "specs_of_top_category": "SELECT s.property, count(DISTINCT s.value) FROM specs s JOIN products p USING (product_id) "
                             "WHERE p.category_path[1] = 'class 1' GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
}


def build(root: Path, n: int, specs: int, blob_files: int) -> None:
    """The store of ``n`` products (see the module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "tests")]  # tests/support
    from bench_store import PROPERTIES, VALUE_WORDS
    from support.splits_store import write_synthetic

    from m5data.storage import Store

    store = Store.init(root)
    write_synthetic(store, n)
    rng = np.random.default_rng(0)
    # titles and merchants (the synthetic products have none), put in place in one rewrite of the table
    products = store.read("products", columns=["product_id", "platform", "category_path"])
    title = pc.binary_join_element_wise(pa.array(np.array(VALUE_WORDS)[rng.integers(0, 30, n)]),
                                        pc.cast(pa.array(rng.integers(0, 10**6, n)), pa.string()), "")
    merchant = pc.binary_join_element_wise("m", pc.cast(pa.array(rng.zipf(1.5, n) % 50_000), pa.string()), "")
    store.replace("products", products.append_column("title", title).append_column("merchant_id", merchant))
    names = pa.array((PROPERTIES + [f"属性{i}" for i in range(100)])[:specs])
    words = pa.array(VALUE_WORDS)
    order = rng.permutation(n)
    for lo in range(0, n, 40_000):
        ids = order[lo:lo + 40_000]
        m = len(ids)
        with store.writer("specs") as w:
            w.write(pa.table({
                "product_id": pc.binary_join_element_wise("syn:", pc.cast(pa.array(np.repeat(ids, specs)), pa.string()), ""),
                "position": pa.array(np.tile(np.arange(specs, dtype=np.int32), m)),
                "property": names.take(pa.array(np.tile(np.arange(specs), m))),
                "value": pc.binary_join_element_wise(words.take(pa.array(rng.integers(0, 30, m * specs))),
                                                     words.take(pa.array(rng.integers(0, 30, m * specs))), "")}))
    rows = []
    for i in range(min(n, blob_files)):
        data = f"image {i}".encode() * 100
        sha = hashlib.sha256(data).hexdigest()
        rel = f"blobs/{sha[:2]}/{sha}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        rows.append({"media_id": f"m{i}", "product_id": f"syn:{i}", "kind": "image", "role": "main", "position": 0,
                     "url": f"http://x/{i}.jpg", "blob": rel, "sha256": sha, "status": "ok", "bytes": len(data),
                     "quality_tier": 1 + i % 3})
    for lo in range(0, len(rows), 100_000):
        store.write("media", rows[lo:lo + 100_000])


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS MiB of its whole process tree) of one child process; raises on failure."""
    from peak_rss import run_measured

    proc = run_measured(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode not in (0, 1):  # doctor exits 1 when it finds problems; that is a result
        raise SystemExit(f"{' '.join(cmd[:6])} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    return proc.seconds, proc.peak / 2**20


def measure(root: Path, n: int, args) -> dict[str, tuple[float, float]]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    m5 = [sys.executable, "-m", "m5data", "--store", str(root)]
    out: dict[str, tuple[float, float]] = {}
    t = time.perf_counter()
    build(root, n, args.specs, args.blob_files)
    out["build store"] = (time.perf_counter() - t, 0.0)
    out["sql first (sidecars)"] = timed(m5 + ["sql", "SELECT count(*) FROM specs"], env)
    for name, q in QUERIES.items():
        out[f"sql {name}"] = timed(m5 + ["sql", q], env)
    out["stats"] = timed(m5 + ["stats"], env)
    report = root.parent / f"report-{n}"
    shutil.rmtree(report, ignore_errors=True)
    out["report"] = timed(m5 + ["report", "--out", str(report)], env)
    html = (report / "index.html").stat().st_size
    total = sum(p.stat().st_size for p in report.rglob("*") if p.is_file())
    out["report html bytes"] = (float(html), float(total))
    out["doctor --quick"] = timed(m5 + ["doctor", "--quick"], env)
    out["compact"] = timed(m5 + ["compact"], env)
    for name, q in QUERIES.items():
        out[f"sql {name} (compacted)"] = timed(m5 + ["sql", q], env)
    shutil.rmtree(report, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--specs", type=int, default=24, help="spec rows per product")
    ap.add_argument("--blob-files", type=int, default=20_000, help="products with an image blob on disk")
    ap.add_argument("--root", type=Path, default=Path("/work/scratch/report/bench"))
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    results = {}
    for n in args.sizes:
        root = args.root / f"store-{n}"
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        results[n] = measure(root, n, args)
        r = results[n]
        print(f"\n== {n:,} products ({n * args.specs:,} spec rows) ==", flush=True)
        for stage, (sec, rss) in r.items():
            if stage == "report html bytes":
                print(f"  report index.html {sec / 1e6:.2f} MB, whole folder {rss / 1e6:.2f} MB")
                continue
            print(f"  {stage:38s} {sec:8.2f} s  {sec / n * 1e6:9.2f} us/product  whole-tree peak RSS {rss:7.0f} MiB", flush=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    base = args.sizes[0]
    if len(args.sizes) > 1:
        print(f"\ngrowth of us/product from {base:,} (1.0 = linear time):")
        for stage in results[base]:
            if stage in ("report html bytes", "build store"):
                continue
            row = "  ".join(f"{n:,}: {results[n][stage][0] / n / (results[base][stage][0] / base):5.2f}x"
                            for n in args.sizes[1:])
            print(f"  {stage:38s} {row}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

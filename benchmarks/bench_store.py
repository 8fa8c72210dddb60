"""Store writer throughput vs DuckDB's own COPY ... TO parquet, on the same generated spec rows.

    python benchmarks/bench_store.py [--products 1000000] [--properties 10] [--batch 500000]

Phases, each in its own child process so that each reports its own peak RSS (of the child's whole
process tree: RSS summed, sampled by ``peak_rss.PeakRSS``):
  1. generate only (the cost both writers share),
  2. our writer: Store.writer("specs") streaming the batches into Parquet parts,
  3. DuckDB: COPY (SELECT * FROM <the same batches as an Arrow stream>) TO 'x.parquet',
then `m5data sql "SELECT property, count(*), count(DISTINCT value) FROM specs GROUP BY 1"` timed
before and after `m5data compact`. Prints rows/s, tree peak RSS and ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PROPERTIES = ["品牌", "材质", "颜色", "产地", "适用人群", "容量", "型号", "规格", "包装", "保质期",
              "尺寸", "重量", "风格", "功能", "款式", "系列", "上市时间", "适用季节", "货号", "等级"]
VALUE_WORDS = ["红色", "黑色", "白色", "浙江", "广东", "成人", "儿童", "纯棉", "不锈钢", "塑料", "500ml",
               "1L", "大号", "中号", "小号", "简约", "复古", "通用", "礼盒装", "袋装", "一级", "特级",
               "12个月", "24个月", "2026年", "春季", "冬季", "四季", "防水", "便携"]


def batches(products: int, properties: int, batch_rows: int, seed: int = 0):
    """Spec rows in long form, as Arrow batches of ``batch_rows`` rows (never all in memory)."""
    rng = np.random.default_rng(seed)
    prop_names = pa.array(PROPERTIES[:properties])
    words = pa.array(VALUE_WORDS)
    per_batch = max(1, batch_rows // properties)
    for start in range(0, products, per_batch):
        n = min(per_batch, products - start)
        ids = np.repeat(np.arange(start, start + n, dtype=np.int64) + 100_000_000_000, properties)
        product_id = pc.binary_join_element_wise("shopa:", pc.cast(pa.array(ids), pa.string()), "")
        position = pa.array(np.tile(np.arange(properties, dtype=np.int32), n))
        prop = prop_names.take(pa.array(np.tile(np.arange(properties), n)))
        a = words.take(pa.array(rng.integers(0, len(VALUE_WORDS), n * properties)))
        b = words.take(pa.array(rng.integers(0, len(VALUE_WORDS), n * properties)))
        value = pc.binary_join_element_wise(a, b, "")
        yield pa.RecordBatch.from_arrays([product_id, position, prop, value],
                                         names=["product_id", "position", "property", "value"])


def phase_generate(args, out):
    t = time.perf_counter()
    rows = sum(len(b) for b in batches(args.products, args.properties, args.batch))
    out.put((rows, time.perf_counter() - t))


def phase_ours(args, out):
    from m5data.storage import Store

    store = Store.init(args.store)
    t = time.perf_counter()
    with store.writer("specs") as w:
        for batch in batches(args.products, args.properties, args.batch):
            w.write(batch)
    seconds = time.perf_counter() - t
    store.refresh_catalog()
    out.put((w.rows, seconds))


def phase_duckdb(args, out):
    import duckdb

    schema = next(batches(1, args.properties, args.batch)).schema
    reader = pa.RecordBatchReader.from_batches(schema, batches(args.products, args.properties, args.batch))  # noqa: F841 (DuckDB scans it by name)
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM reader) TO '{args.work}/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)")
    seconds = time.perf_counter() - t
    rows = con.execute(f"SELECT count(*) FROM '{args.work}/duckdb.parquet'").fetchone()[0]
    out.put((rows, seconds))


def run_phase(fn, args):
    """Run ``fn`` in a spawned child: its rows, seconds and its process tree's peak RSS in MiB."""
    from peak_rss import PeakRSS

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=fn, args=(args, out))
    proc.start()
    with PeakRSS(proc.pid, tree=True) as mem:
        rows, seconds = out.get()
        proc.join()
    return rows, seconds, mem.peak / 2**20


def timed_sql(store: Path, sql: str) -> float:
    m5data = [sys.executable, "-m", "m5data.cli", "--store", str(store), "sql", sql]
    t = time.perf_counter()
    proc = subprocess.run(m5data, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--properties", type=int, default=10)
    parser.add_argument("--batch", type=int, default=500_000, help="rows per Arrow batch")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    keep = args.work is not None
    work = Path(args.work or tempfile.mkdtemp(prefix="m5data-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    args.work = work
    args.store = work / "store"
    try:
        rows, gen_s, gen_rss = run_phase(phase_generate, args)
        print(f"rows: {rows:,} ({args.products:,} products x {args.properties} properties)")
        print(f"generate only        : {gen_s:7.2f} s  {rows / gen_s:12,.0f} rows/s  tree peak RSS {gen_rss:7.0f} MiB")
        ours_rows, ours_s, ours_rss = run_phase(phase_ours, args)
        print(f"m5data store writer  : {ours_s:7.2f} s  {ours_rows / ours_s:12,.0f} rows/s  tree peak RSS {ours_rss:7.0f} MiB")
        duck_rows, duck_s, duck_rss = run_phase(phase_duckdb, args)
        print(f"duckdb COPY TO parquet: {duck_s:6.2f} s  {duck_rows / duck_s:12,.0f} rows/s  tree peak RSS {duck_rss:7.0f} MiB")
        assert ours_rows == duck_rows == rows
        ratio = (ours_rows / ours_s) / (duck_rows / duck_s)
        print(f"ratio writer / duckdb COPY (throughput): {ratio:.2f}x   (target >= 0.5x)")
        print(f"tree peak RSS of the writer: {ours_rss:.0f} MiB   (target < 2048 MiB)")
        sql = "SELECT property, count(*), count(DISTINCT value) FROM specs GROUP BY 1"
        before = timed_sql(args.store, sql)
        print(f"m5data sql GROUP BY over {rows:,} rows, {len(list((args.store / 'tables/specs').glob('part-*')))} parts (dedup view): {before:.2f} s")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "m5data.cli", "--store", str(args.store), "compact", "specs"],
                       check=True, capture_output=True)
        compact_s = time.perf_counter() - t
        after = timed_sql(args.store, sql)
        print(f"m5data compact specs: {compact_s:.2f} s; same query after compaction: {after:.2f} s")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

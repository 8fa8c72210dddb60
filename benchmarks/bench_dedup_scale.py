"""Benchmark the whole dedup job on stores of growing size: products/s, us/product, peak RSS, growth.

    .venv/bin/python benchmarks/bench_dedup_scale.py [--sizes 10000,100000,1000000] [--root DIR]
    .venv/bin/python benchmarks/bench_dedup_scale.py --store PATH   # an existing store (a scale world)
    .venv/bin/python benchmarks/bench_dedup_scale.py --store PATH --matcher rules,learned   # both, one process each

For each size a synthetic store is built once under ``--root`` (kept for re-runs): products
(titles of Chinese characters), one main image per product (sha256, 64-bit pHash) and about four
spec rows (brand, model number, colour, material). ``--dup-rate`` of the products are listings of
an earlier product: same specs, the title with 0-3 characters changed (a quarter at the same
merchant with the very same title), the pHash 0-9 bits away (a tenth the same blob). A share
``--placeholder`` of products show one placeholder photo (pHashes within 2 bits of one value) and
carry one boilerplate title: the big buckets a real catalogue has.

Each size runs ``dedup()`` in a fresh process (so its peak RSS is its own) and prints the seconds
of each step, the title and image rules together (exact + phash + minhash) and the whole job, as
products/s and us/product, the peak RSS, and the growth of us/product against the smallest size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

POOL = 3000  # CJK characters titles are drawn from


def build_store(path: Path, n: int, dup_rate: float, placeholder: float, seed: int = 0, batch: int = 200_000) -> None:
    """A store of ``n`` synthetic products with duplicates, written in batches (see the module doc)."""
    import numpy as np
    import pyarrow as pa

    from m5data.storage import Store

    rng = np.random.default_rng(seed)
    store = Store.init(path)
    # per product: its source (an earlier product it lists again, or itself)
    src = np.arange(n)
    dup = (rng.random(n) < dup_rate) & (np.arange(n) > 10)
    src[dup] = (rng.random(dup.sum()) * np.flatnonzero(dup)).astype(np.int64)
    while True:  # a copy of a copy lists the original
        nxt = src[src]
        if (nxt == src).all():
            break
        src = nxt
    merchant = rng.integers(0, max(10, n // 50), n)
    same_shop = dup & (rng.random(n) < 0.25)
    merchant[same_shop] = merchant[src[same_shop]]
    lengths = rng.integers(15, 46, n)
    lengths[dup] = lengths[src[dup]]
    base = rng.integers(0x4E00, 0x4E00 + POOL, (n, 45)).astype(np.uint32)
    base[dup] = base[src[dup]]
    edit = dup & ~same_shop
    for _ in range(3):
        rows = np.flatnonzero(edit & (rng.random(n) < 0.6))
        base[rows, (rng.random(len(rows)) * lengths[rows]).astype(np.int64)] = rng.integers(0x4E00, 0x4E00 + POOL, len(rows))
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(0, 2, n).astype(np.uint64)
    hashes[dup] = hashes[src[dup]]
    for _ in range(9):
        rows = np.flatnonzero(dup & (rng.random(n) < 0.5))
        hashes[rows] ^= np.uint64(1) << rng.integers(0, 64, len(rows)).astype(np.uint64)
    blob = np.arange(n)
    same_blob = dup & (rng.random(n) < 0.1)
    blob[same_blob] = blob[src[same_blob]]
    ph = rng.random(n) < placeholder
    hashes[ph] = np.uint64(0x9A3C5E7F1B2D4C6E) ^ (np.uint64(1) << rng.integers(0, 64, ph.sum()).astype(np.uint64)) \
        ^ (np.uint64(1) << rng.integers(0, 64, ph.sum()).astype(np.uint64))
    brands = rng.integers(0, 2000, n)
    brands[dup] = brands[src[dup]]
    colour = rng.integers(0, 12, n)
    colour[dup] = colour[src[dup]]
    material = rng.integers(0, 30, n)
    material[dup] = material[src[dup]]
    colours = ["黑色", "白色", "红色", "蓝色", "灰色", "绿色", "黄色", "粉色", "紫色", "银色", "金色", "棕色"]
    for s in range(0, n, batch):
        e = min(n, s + batch)
        ids = [f"syn:{i:09d}" for i in range(s, e)]
        titles = []
        for i in range(s, e):
            titles.append("正品包邮热卖新款限时特价" if ph[i] else base[i, :lengths[i]].tobytes().decode("utf-32-le"))
        store.write("products", pa.table({"product_id": ids, "platform": ["syn"] * (e - s),
                                          "source_id": [f"{i:09d}" for i in range(s, e)],
                                          "merchant_id": [f"shop{m}" for m in merchant[s:e]], "title": titles}))
        store.write("media", pa.table({
            "media_id": [f"m{i:09d}" for i in range(s, e)], "product_id": ids, "kind": ["image"] * (e - s),
            "role": ["main"] * (e - s), "position": pa.array([0] * (e - s), pa.int32()),
            "sha256": [f"{b:064x}" for b in blob[s:e]], "phash": [f"{h:016x}" for h in hashes[s:e].tolist()],
            "status": ["ok"] * (e - s)}))
        pid, pos, prop, val = [], [], [], []
        for i in range(s, e):
            for k, (p, v) in enumerate((("品牌", f"品牌{brands[i]}"), ("型号", f"M-{src[i]}"),
                                        ("颜色", colours[colour[i]]), ("材质", f"材质{material[i]}"))):
                pid.append(ids[i - s])
                pos.append(k)
                prop.append(p)
                val.append(v)
        store.write("specs", pa.table({"product_id": pid, "position": pa.array(pos, pa.int32()),
                                       "property": prop, "value": val}))


def child(path: str, matcher: str = "learned") -> None:
    """Run dedup on the store at ``path``; print one JSON line of step times and peak RSS."""
    import resource

    from m5data.annotate import near_jit, spec_jit
    from m5data.annotate.dedup import dedup
    from m5data.annotate.matcher import features_jit
    from m5data.config import load
    from m5data.storage import Store

    near_jit.warm_up()  # compiled (or loaded from numba's cache) before the clock starts
    spec_jit.warm_up()
    features_jit.warm_up()
    cpu0 = time.process_time()
    store = Store.open(path)
    settings = load(None, {"store.path": path, "annotate.dedup_matcher": matcher}, environ={})
    t0 = time.perf_counter()
    report = dedup(store, settings, full=True)  # every product grouped, whatever ran before
    print(json.dumps({"n": report.n_products, "matcher": report.matcher, "times": dict(report.seconds), "cpu_times": dict(report.cpu_seconds), "total": time.perf_counter() - t0,
                      "cpu": time.process_time() - cpu0, "groups": report.n_groups, "pairs": dict(report.pairs),
                      "candidates": dict(report.candidates), "vetoed": dict(report.vetoed),
                      "capped": dict(report.capped),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--root", type=Path, default=Path("/work/scratch/dedup/bench"))
    parser.add_argument("--store", action="append", default=[], help="an existing store instead (repeatable)")
    parser.add_argument("--dup-rate", type=float, default=0.1)
    parser.add_argument("--placeholder", type=float, default=0.01)
    parser.add_argument("--matcher", default="learned", help="annotate.dedup_matcher: rules, learned or both (comma)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.matcher)
        return 0
    stores = [Path(s) for s in args.store]
    if not stores:
        for n in (int(x) for x in args.sizes.split(",")):
            path = args.root / f"syn-{n}"
            if not (path / "tables").is_dir():
                t0 = time.perf_counter()
                build_store(path, n, args.dup_rate, args.placeholder)
                print(f"built {path} in {time.perf_counter() - t0:.1f} s", flush=True)
            stores.append(path)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = []
    for path, matcher in ((p, m) for p in stores for m in args.matcher.split(",")):
        out = subprocess.run([sys.executable, __file__, "--child", str(path), "--matcher", matcher], capture_output=True,
                             text=True)
        if out.returncode:
            print(out.stderr[-3000:])
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        t, c = r["times"], r["cpu_times"]
        rules = t["exact"] + t["phash"] + t["minhash"]
        c_rules = c["exact"] + c["phash"] + c["minhash"]
        print(f"\n{path}: {r['n']:,} products, matcher {r['matcher']}, load average {os.getloadavg()[0]:.1f}")
        print("  steps (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
        print("  steps, CPU (s): " + ", ".join(f"{k} {v:.2f}" for k, v in c.items()))
        print(f"  title + image rules (exact, phash, minhash): {rules:7.2f} s  {r['n'] / rules:10,.0f} products/s  "
              f"{rules / r['n'] * 1e6:7.1f} us/product")
        print(f"  whole job:                                   {r['total']:7.2f} s  {r['n'] / r['total']:10,.0f} products/s  "
              f"{r['total'] / r['n'] * 1e6:7.1f} us/product  (CPU {r['cpu']:.1f} s)")
        print(f"  by CPU time (what the job used, the wait for a core left out): title + image rules {c_rules:.2f} s "
              f"{r['n'] / c_rules:10,.0f} products/s {c_rules / r['n'] * 1e6:6.1f} us/product; whole job {r['cpu']:.2f} s "
              f"{r['n'] / r['cpu']:10,.0f} products/s {r['cpu'] / r['n'] * 1e6:6.1f} us/product")
        print(f"  peak RSS {r['peak_rss_mib']:,.0f} MiB; groups of 2+ {r['groups']:,}; pairs {r['pairs']}; "
              f"candidates {r['candidates']}; vetoed {r['vetoed']}; capped {r['capped']}")
    if len(results) > 1:
        def per(r, clock):
            rules = sum(r[clock][k] for k in ("exact", "phash", "minhash")) / r["n"]
            return rules, (r["total"] if clock == "times" else r["cpu"]) / r["n"]

        print("\ngrowth of us/product against the smallest size (wall; CPU):")
        for r in results:
            (w_rules, w_all), (c_rules, c_all) = per(r, "times"), per(r, "cpu_times")
            (w0_rules, w0_all), (c0_rules, c0_all) = per(results[0], "times"), per(results[0], "cpu_times")
            print(f"  {r['n']:>10,}: title + image rules {w_rules / w0_rules:5.2f}x; {c_rules / c0_rules:5.2f}x   "
                  f"whole job {w_all / w0_all:5.2f}x; {c_all / c0_all:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

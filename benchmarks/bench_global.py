"""Benchmark: the global stages at growing store sizes (issue 21: time per product grows at most 1.5x
from 10k to 1M products; peak RSS of every stage under 6 GiB at 1M).

For each ``--sizes`` (default 10k, 100k, 1M products) it builds a synthetic store (two platforms,
``--categories`` leaf categories long-tailed as in M5Product, a title and four spec rows per product,
a small JPEG main image for ``--media-share`` of the products, from a pool of 16 blobs), then runs in
order, each stage in a fresh child process whose peak RSS (the whole process tree, sampled every
20 ms) is its own: ``align``, ``build-splits``, ``check-splits``, ``shard-query`` (one shard's
samples assembled by a query over the whole store: what the export paid per shard before it
streamed), ``export`` webdataset, parquet and m5product (``export.workers = 1``). Prints seconds, us/product, peak RSS per stage and size, then the growth of us/product
from the smallest to each larger size (target <= 1.5x) and the RSS target at the largest.

    python benchmarks/bench_global.py --sizes 10000,100000 --root /work/scratch/me/bg
    python benchmarks/bench_global.py --code /path/to/other/checkout   # the same stores, other code

``--code`` runs the stages with another checkout's ``m5data`` (a baseline), on stores built here.
Stores are kept under ``--root`` (reused when they hold the asked size) unless ``--clean``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/support: the synthetic categories

from peak_rss import run_measured  # noqa: E402

STAGES = ("align", "build-splits", "check-splits", "shard-query", "export-webdataset", "export-parquet", "export-m5product")
PLATFORMS = ("pa", "pb")
N_CLASSES = 14
GIB = 1024 ** 3


# ---------------------------------------------------------------------------------------------- store


def _jpeg(seed: int) -> bytes:
    import numpy as np
    import simplejpeg

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    return simplejpeg.encode_jpeg(np.ascontiguousarray(img), quality=80)


def build_store(root: Path, n: int, n_categories: int, media_share: float, seed: int = 0, chunk: int = 200_000) -> None:
    """Write ``n`` products (half per platform), their specs and main images, and the level-1 mapping file."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from support.splits_store import categories

    from m5data.storage import Store

    store = Store.init(root)
    cats = categories(n_categories, n_classes=N_CLASSES, seed=seed)
    # each platform names the leaves its own way: level 1 "class c" / "类 c", level 2 and 3 by the
    # sub-class number (platform b renames a third of them, so align has near and different names)
    paths = {p: [[f"class {c}" if p == "pa" else f"类 {c}", f"sub {s}" if p == "pa" or s % 3 else f"新 sub {s}"]
                 + ([f"subsub {s}.{ss}"] if ss else []) for c, s, ss in cats] for p in PLATFORMS}
    words = pa.array([f"词{k}" for k in range(2000)], pa.string())
    blobs = [store.blobs.put_bytes(_jpeg(seed * 100 + k), "jpg", sync=False) for k in range(16)]
    store.blobs.sync()
    weights = 1.0 / (np.arange(n_categories) + 10.0)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    with store.writer("products") as prod, store.writer("specs") as specs, store.writer("media") as media:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            num = np.arange(lo, lo + m)
            plat = np.where(num % 2 == 0, 0, 1)
            cat = rng.choice(n_categories, size=m, p=weights)
            ids = pc.binary_join_element_wise(
                pc.take(pa.array([f"{p}:" for p in PLATFORMS]), pa.array(plat)), pc.cast(pa.array(num), pa.string()), "")
            category_path = pa.array([paths[PLATFORMS[k]][c] for k, c in zip(plat.tolist(), cat.tolist())],
                                     pa.list_(pa.string()))
            w = rng.integers(0, len(words), (m, 6))
            title = pc.binary_join_element_wise(*[pc.take(words, pa.array(w[:, j])) for j in range(6)],
                                                pc.cast(pa.array(cat), pa.string()), " ")
            prod.write(pa.table({"product_id": ids, "platform": pc.take(pa.array(list(PLATFORMS)), pa.array(plat)),
                                 "source_id": pc.cast(pa.array(num), pa.string()), "title": title,
                                 "category_path": category_path}))
            pos = np.tile(np.arange(4, dtype=np.int32), m)
            specs.write(pa.table({
                "product_id": pc.take(ids, pa.array(np.repeat(np.arange(m), 4))), "position": pa.array(pos),
                "property": pc.take(pa.array([f"属性{i}" for i in range(4)]), pa.array(pos)),
                "value": pc.take(words, pa.array(rng.integers(0, len(words), 4 * m)))}))
            rows = np.flatnonzero(rng.random(m) < media_share)
            pick = rng.integers(0, len(blobs), len(rows))
            mids = pc.take(ids, pa.array(rows))
            media.write(pa.table({
                "media_id": pc.binary_join_element_wise(mids, pa.scalar("|image_norm"), ""), "product_id": mids,
                "kind": pa.array(["image_norm"] * len(rows)), "role": pa.array(["derived"] * len(rows)),
                "position": pa.array(np.zeros(len(rows), np.int32)),
                "blob": pc.take(pa.array([b.path for b in blobs]), pa.array(pick)),
                "mime": pa.array(["image/jpeg"] * len(rows)), "status": pa.array(["ok"] * len(rows)),
                "bytes": pc.take(pa.array([b.bytes for b in blobs], pa.int64()), pa.array(pick))}))
    for table in ("products", "specs", "media"):
        store.compact(table)
    classes = "\n".join(f'{c} = "class {c}"' for c in range(1, N_CLASSES + 1))
    plats = "\n".join(f'[platforms.{p}]\n' + "\n".join(
        f'"{"class" if p == "pa" else "类"} {c}" = {c}' for c in range(1, N_CLASSES + 1)) for p in PLATFORMS)
    (root / "mapping.toml").write_text(f"[classes]\n{classes}\n\n{plats}\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------- stages


def phase(stage: str, root: str, work: str) -> dict:
    """One measured stage, in a child process (imports paid before the clock starts)."""
    from m5data import config as cfg
    from m5data.storage import Store

    settings = cfg.load(None, {"store.path": root, "export.workers": 1, "align.workers": 1}, environ={})
    store = Store.from_settings(settings)
    import pyarrow.parquet  # noqa: F401  (first Parquet write imports pandas: not a per-product cost)

    t0 = time.perf_counter()
    if stage == "align":
        from m5data.align.run import align

        report = align(store, settings, mapping=Path(root) / "mapping.toml", review_out=Path(work) / "review.csv")
        out = {"pairs": report.n_pairs, "subclasses": report.n_subclasses}
    elif stage == "build-splits":
        from m5data.splits.build import build

        report = build(store, settings, version="bench", replace=True)
        out = {"rows": report.stats.n_out}
    elif stage == "check-splits":
        from m5data.splits.check import check

        report = check(store, settings, version="bench")
        out = {"ok": report.ok, "violations": [v.rule for v in report.violations]}
    elif stage == "shard-query":
        # what the export paid per shard before it streamed: one shard's samples assembled by a
        # query over the whole store (load_samples); times shards = the part that grew as N^2
        from m5data.export.sample_rows import load_samples

        con = store.connect()
        try:
            ids = [r[0] for r in con.execute("SELECT product_id FROM splits WHERE version = 'bench' ORDER BY 1 "
                                             "LIMIT 1000 OFFSET (SELECT count(*) // 2 FROM splits)").fetchall()]
            t0 = time.perf_counter()
            load_samples(con, ids)
        finally:
            con.close()
        shards = -(-store.count("splits") // settings.export.shard_size)
        out = {"one_shard_s": time.perf_counter() - t0, "shards": shards}
    else:
        from m5data.export.run import export

        fmt = stage.split("-", 1)[1]
        dest = Path(work) / stage
        shutil.rmtree(dest, ignore_errors=True)
        report = export(store, settings, out=dest, fmt=fmt, version="bench")
        out = {"samples": report.stats.n_out, "shards": report.shards}
    out["seconds"] = time.perf_counter() - t0
    return out


def measure(stage: str, root: Path, work: Path, code: str) -> dict:
    """Run ``phase`` in a child process; sample the RSS of its process tree every 20 ms."""
    done = run_measured([sys.executable, __file__, "--phase", stage, "--root", str(root), "--work", str(work)],
                        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=code))
    if done.returncode:
        return {"failed": done.returncode, "peak_rss": done.peak}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_rss": done.peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--categories", type=int, default=6232)
    ap.add_argument("--media-share", type=float, default=0.1, help="share of products with a main image")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--root", default="/tmp/bench-global")
    ap.add_argument("--code", default=str(ROOT), help="checkout whose m5data runs the stages")
    ap.add_argument("--clean", action="store_true", help="remove each store after its size is measured")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.root, args.work)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    stages = [s for s in args.stages.split(",") if s]
    results: dict[str, dict[int, dict]] = {s: {} for s in stages}
    print(f"code: {args.code}  cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}")
    for n in sizes:
        root = Path(args.root) / f"store-{n}"
        work = Path(args.root) / f"work-{n}"
        marker = root / ".bench-global"
        want = json.dumps([n, args.categories, args.media_share])
        if not (marker.is_file() and marker.read_text() == want):
            shutil.rmtree(root, ignore_errors=True)
            t0 = time.perf_counter()
            build_store(root, n, args.categories, args.media_share)
            marker.write_text(want)
            print(f"store of {n:,} products built in {time.perf_counter() - t0:.1f} s")
        work.mkdir(parents=True, exist_ok=True)
        for stage in stages:
            r = measure(stage, root, work, args.code)
            results[stage][n] = r
            if "failed" in r:
                print(f"{n:>9,}  {stage:<18} FAILED (exit {r['failed']})  tree peak RSS {r['peak_rss'] / GIB:.2f} GiB")
                continue
            extra = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss")}
            print(f"{n:>9,}  {stage:<18} {r['seconds']:9.2f} s  {r['seconds'] / n * 1e6:9.1f} us/product  "
                  f"tree peak RSS {r['peak_rss'] / GIB:5.2f} GiB  {json.dumps(extra)[:90]}  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
        shutil.rmtree(work, ignore_errors=True)
        if args.clean:
            shutil.rmtree(root, ignore_errors=True)
    print("\ngrowth of us/product against the smallest size (target <= 1.5x), whole-tree peak RSS at the largest (< 6 GiB):")
    for stage in stages:
        ok = {n: r for n, r in results[stage].items() if "failed" not in r}
        if not ok:
            continue
        first = min(ok)
        base = ok[first]["seconds"] / first
        growth = "  ".join(f"{n:,}: {ok[n]['seconds'] / n / base:.2f}x" for n in sorted(ok) if n != first)
        last = max(ok)
        print(f"  {stage:<18} {growth or '-'}   tree peak RSS at {last:,}: {ok[last]['peak_rss'] / GIB:.2f} GiB")


if __name__ == "__main__":
    main()

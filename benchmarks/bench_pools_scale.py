"""Benchmark ``annotate pools`` end to end at growing store sizes: seconds, us/product, peak RSS.

    .venv/bin/python benchmarks/bench_pools_scale.py [--sizes 10000,100000,1000000] [--queries 0.003867]
        [--images 256] [--image descriptor|none] [--search exact] [--root /work/scratch/pools]

For each size a synthetic store is built once under ``--root`` (products with Chinese titles drawn
from word pools, their captions and jieba-like tokens, and a main image per product whose
normalised copy is one of ``--images`` real JPEG files: every product decodes an image, as in a
real store). Then, each in a fresh process (peak RSS: of the process tree while the run goes, RSS
summed, sampled by ``peak_rss.PeakRSS``, memory-maps included):

* a full run (``--fresh`` checkpoints, no cached vectors): read, embed, search, write;
* a re-run with every block done (the issue's "seconds" target);

Queries: ``--queries`` defaults to the papers' share, 24,410 query-c of 6,313,067 products
(0.387%): "the papers' query count scaled to the size". The gallery is every product.
Prints per size the phases' seconds, us/product and the growth of us/product against the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

PAPERS_QUERY_SHARE = 24_410 / 6_313_067


def build_store(root: Path, n: int, n_images: int, seed: int = 0) -> Path:
    """A store of ``n`` synthetic products with captions and main images (built once; reused)."""
    import io

    import numpy as np
    import pyarrow as pa
    from PIL import Image

    from m5data.storage import Store

    path = root / f"store-{n}"
    if (path / "built.ok").is_file():
        return path
    store = Store.init(path)
    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(n_images):  # real JPEGs: gradients, blocks and noise, so descriptors differ
        a = np.zeros((256, 256, 3), np.uint8)
        a[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :] * (i % 3 != 0)
        a[..., 1] = rng.integers(0, 255)
        a[..., 2] = np.linspace(255, 0, 256, dtype=np.uint8)[:, None] * (i % 2)
        y, x = rng.integers(0, 192, 2)
        a[y:y + 64, x:x + 64] = rng.integers(0, 255, 3)
        a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=85)
        ref = store.blobs.put_bytes(buf.getvalue(), "jpg")
        blobs.append((ref.path, ref.sha256, f"{int(rng.integers(0, 2**63)):016x}"))
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    words = ["".join(rng.choice(chars, rng.integers(1, 4))) for _ in range(20_000)]
    batch = 50_000
    with store.writer("products") as wp, store.writer("captions") as wc, store.writer("media") as wm:
        for s in range(0, n, batch):
            m = min(batch, n - s)
            ids = [f"synth:{i:08d}" for i in range(s, s + m)]
            lengths = rng.integers(4, 14, m)
            picks = rng.integers(0, len(words), int(lengths.sum()))
            tokens, o = [], 0
            for ln in lengths:
                tokens.append([words[j] for j in picks[o:o + ln]])
                o += ln
            texts = ["".join(t) for t in tokens]
            wp.write(pa.table({"product_id": ids, "platform": ["synth"] * m, "source_id": [i[6:] for i in ids],
                               "title": texts}))
            wc.write(pa.table({"product_id": ids, "text": texts, "tokens": tokens, "n_chars": [len(t) for t in texts],
                               "lang": ["zh"] * m, "status": ["ok"] * m}))
            img = rng.integers(0, len(blobs), m)
            wm.write(pa.table({
                "media_id": [f"m{i}" for i in ids] + [f"n{i}" for i in ids],
                "product_id": ids + ids, "kind": ["image"] * m + ["image_norm"] * m,
                "role": ["main"] * m + ["derived"] * m, "position": [0] * (2 * m),
                "source_media_id": [None] * m + [f"m{i}" for i in ids],
                "blob": [None] * m + [blobs[j][0] for j in img], "sha256": [None] * m + [blobs[j][1] for j in img],
                "phash": [None] * m + [blobs[j][2] for j in img], "status": ["ok"] * (2 * m)}))
            print(f"  store {n:,}: {s + m:,} products written", file=sys.stderr, flush=True)
    (path / "built.ok").write_text("ok")
    return path


def child(args) -> int:
    """One pools run in this process; prints a JSON line with its timings and the tree's peak RSS."""
    from peak_rss import PeakRSS

    from m5data.annotate.pools.job import build_pools
    from m5data.config import load
    from m5data.storage import Store

    store = Store.open(args.child)
    s = load(None, {"store.path": str(store.root), "pools.queries": args.queries,
                    "pools.image": args.image, "pools.search": args.search}, environ={})
    t0 = time.perf_counter()
    with PeakRSS(tree=True) as mem:
        report = build_pools(store, s, fresh=args.fresh, ann_check=args.ann_check)
    total = time.perf_counter() - t0
    use = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": total, "cpu": use.ru_utime + use.ru_stime, "phases": report.timings, "products": report.n_products,
                      "queries": report.n_queries, "resumed": report.n_resumed, "blocks": report.n_blocks,
                      "ann_recall": report.ann_recall,
                      "peak_rss": mem.peak}))
    return 0


def run_child(store: Path, args, *, fresh: bool, drop_vectors: bool) -> dict:
    if drop_vectors:
        for f in (store / "derived" / "pools").glob("vectors-*"):
            f.unlink()
    cmd = [sys.executable, __file__, "--child", str(store), "--queries", str(args.queries), "--image", args.image,
           "--search", args.search, "--ann-check", str(args.ann_check)] + (["--fresh"] if fresh else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"pools run failed on {store}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=float, default=PAPERS_QUERY_SHARE, help="share (<= 1) or count (> 1)")
    parser.add_argument("--images", type=int, default=256, help="distinct JPEG files the products' images are drawn from")
    parser.add_argument("--image", default="descriptor", help="descriptor or none")
    parser.add_argument("--search", default="exact")
    parser.add_argument("--ann-check", type=int, default=0)
    parser.add_argument("--root", default="/work/scratch/pools")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--fresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    base = None
    print(f"annotate pools, queries {args.queries:g} of the products, image {args.image}, search {args.search}; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for n in [int(x) for x in args.sizes.split(",")]:
        t0 = time.perf_counter()
        store = build_store(root, n, args.images)
        built = time.perf_counter() - t0
        full = run_child(store, args, fresh=True, drop_vectors=True)
        again = run_child(store, args, fresh=False, drop_vectors=False)
        us = full["seconds"] / n * 1e6
        base = base or us
        phases = ", ".join(f"{k} {v:.1f}" for k, v in full["phases"].items())
        print(f"{n:>9,} products, {full['queries']:,} queries ({full['blocks']} blocks; store built in {built:.0f} s): "
              f"full run {full['seconds']:.1f} s = {us:,.0f} us/product ({us / base:.2f}x the smallest), "
              f"CPU {full['cpu']:.0f} s = {full['cpu'] / n * 1e6:,.0f} us/product, tree peak RSS {full['peak_rss'] / 2**20:,.0f} MiB [{phases}]"
              + (f"; ANN recall {full['ann_recall']:.4f}" if full.get("ann_recall") is not None else ""))
        print(f"{'':>9}  re-run with every block done: {again['seconds']:.1f} s "
              f"({again['resumed']}/{again['blocks']} blocks resumed), tree peak RSS {again['peak_rss'] / 2**20:,.0f} MiB "
              f"[{', '.join(f'{k} {v:.1f}' for k, v in again['phases'].items())}]; load {os.getloadavg()[0]:.1f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

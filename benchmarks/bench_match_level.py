"""Benchmark ``annotate match-level`` at growing store sizes: is the time per product flat?

    .venv/bin/python benchmarks/bench_match_level.py --sizes 10000,100000[,1000000] [--root DIR]
        [--world-root DIR] [--keep]

For each size a store is made under ``--root`` (kept between runs: a store already there is reused):

* with ``--world-root``: the scale world ``<world-root>/world-<N>`` (``m5data demo-shop generate
  --profile scale``) is turned into a store by ``m5data.demo.scale.build_scale_store`` and aligned
  (label_map) with the world's level-1 mapping when the builder did not write one;
* without: a synthetic store written table by table (products, captions with jieba-like tokens,
  label_map over about ``6232 * sqrt(N / 1M)`` sub-classes in 14 classes, Zipf-like sizes, specs,
  main images as 64x64 JPEGs shared by 256 products each (each with its own pHash, so that no
  descriptor is shared by more than the search's tie padding), 3% of captions naming another class).

Then match-level runs in a fresh child process per size and the table prints wall seconds, CPU
seconds, us per product, the peak RSS of the process tree while it runs (the child and any workers:
RSS summed, sampled by ``peak_rss.PeakRSS``; until 2026-11-29 ``ru_maxrss``), the seconds of
each step in CPU seconds (read + describe, image neighbours, classifier folds) and the growth of us/product
against the smallest size. Wall time on a shared machine is the load's: CPU time is the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

CLASSES = 14


def _word(rng, n: int = 2) -> str:
    return "".join(chr(0x4E00 + int(rng.integers(0, 6000))) for _ in range(n))


def synthetic_store(path: Path, n: int, seed: int = 0, chunk: int = 50_000) -> None:
    """A store with what match-level reads, written in chunks (bounded memory)."""
    import io

    import numpy as np
    from PIL import Image

    from m5data.storage import Store

    rng = np.random.default_rng(seed)
    store = Store.init(path)
    n_sub = max(CLASSES, round(6232 * math.sqrt(n / 1_000_000)))
    sub_class = np.sort(rng.integers(0, CLASSES, n_sub))
    sub_class[:CLASSES] = np.arange(CLASSES)
    sub_words = [[_word(rng) for _ in range(6)] for _ in range(n_sub)]
    class_words = [[_word(rng) for _ in range(8)] for _ in range(CLASSES)]
    brands = [_word(rng, 3) for _ in range(500)]
    noise = [_word(rng) for _ in range(3000)]
    weights = 1.0 / np.arange(1, n_sub + 1) ** 0.8
    weights /= weights.sum()
    rows = [{"platform": "demo", "raw_path": f"c{sub_class[s]} > s{s}", "raw_level1": f"c{sub_class[s]}",
             "raw_level2": f"s{s}", "class_id": int(sub_class[s]) + 1, "sub_class_id": 1000 + s, "subsub_class_id": 0,
             "method": "identical"} for s in range(n_sub)]
    store.write("label_map", rows)
    # the images: 256 products share one file (decoding is still paid per product)
    blobs = []
    hues = rng.integers(0, 255, (CLASSES, 3))
    n_img = max(CLASSES, n // 256)
    for i in range(n_img):
        c = i % CLASSES
        px = np.clip(hues[c] + rng.normal(0, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(px).save(buf, "JPEG", quality=85)
        rel = f"derived/bench/{i:06d}.jpg"
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(buf.getvalue())
        blobs.append(rel)
    with store.writer("products") as wp, store.writer("captions") as wc, store.writer("specs") as ws, \
            store.writer("media") as wm:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            subs = rng.choice(n_sub, m, p=weights)
            pids = [f"demo:{start + i:09d}" for i in range(m)]
            mismatch = rng.random(m) < 0.03
            prod, caps, specs, media = [], [], [], []
            for i, (pid, s) in enumerate(zip(pids, subs)):
                c = int(sub_class[s])
                said = int(rng.choice(np.flatnonzero(sub_class != c))) if mismatch[i] else s
                brand = brands[int(rng.integers(0, len(brands)))]
                toks = [brand, *rng.choice(sub_words[said], 3, replace=False).tolist(),
                        class_words[int(sub_class[said])][int(rng.integers(0, 8))], noise[int(rng.integers(0, 3000))]]
                prod.append({"product_id": pid, "platform": "demo", "source_id": pid[5:],
                             "category_path": [f"c{c}", f"s{s}"]})
                caps.append({"product_id": pid, "text": "".join(toks), "tokens": toks, "status": "ok"})
                specs.append({"product_id": pid, "position": 0, "property": "品牌", "value": brand})
                j = int(rng.integers(0, n_img // CLASSES)) * CLASSES + c
                j = min(j, n_img - 1)
                media.append({"media_id": f"i{pid}", "product_id": pid, "kind": "image", "role": "main", "position": 0,
                              "status": "ok", "phash": f"{int(rng.integers(0, 2**63)):016x}"})
                media.append({"media_id": f"n{pid}", "product_id": pid, "kind": "image_norm", "role": "derived",
                              "source_media_id": f"i{pid}", "blob": blobs[j], "status": "ok"})
            wp.write(prod)
            wc.write(caps)
            ws.write(specs)
            wm.write(media)


def scale_store(path: Path, world: Path) -> None:
    """A store from a scale world (crawl-free builder of the ``scale`` work), aligned when needed."""
    from m5data.demo.scale import build_scale_store
    from m5data.storage import Store

    build_scale_store(world, path)
    store = Store.open(path)
    if not store.count("label_map"):
        from m5data.align.run import align
        from m5data.config import load

        align(store, load(None, {"store.path": str(path)}, environ={}),
              mapping=world / "truth" / "level1_mapping.toml")


def run_one(path: str) -> dict:
    """Run match-level on one store in this process; returns its figures."""
    from peak_rss import PeakRSS

    from m5data.annotate.match_level.job import match_level
    from m5data.config import load
    from m5data.storage import Store

    store = Store.open(path)
    settings = load(None, {"store.path": path}, environ={})
    steps: dict[str, float] = {}  # CPU seconds per step (wall time is the load's on a shared machine)
    last = [time.process_time()]

    def progress(step, done, total):
        now = time.process_time()
        steps[step] = steps.get(step, 0.0) + now - last[0]
        last[0] = now

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with PeakRSS(tree=True) as mem:
        report = match_level(store, settings, progress=progress)
    wall = time.perf_counter() - t0
    steps["write"] = time.process_time() - last[0]
    return {"products": report.stats.n_in, "seconds": wall, "cpu": time.process_time() - cpu0,
            "tree_gib": mem.peak / 2**30, "steps": steps,
            "levels": report.levels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--root", default="/tmp/bench_match_level")
    ap.add_argument("--world-root", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        path = root / (f"scale-{n}" if args.world_root else f"synthetic-{n}")
        if not (path / ".built").exists():
            t = time.perf_counter()
            if args.world_root:
                scale_store(path, Path(args.world_root) / f"world-{n}")
            else:
                synthetic_store(path, n)
            (path / ".built").touch()
            print(f"built {path} in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", str(path)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        if out.returncode:
            sys.exit(f"match-level failed on {path}:\n{out.stderr[-4000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        base = results[0]["cpu"] / results[0]["products"]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items())
        print(f"{r['products']:>9,} products  {r['seconds']:8.1f} s wall  {r['cpu']:8.1f} s cpu  "
              f"{r['cpu'] / r['products'] * 1e6:8.0f} us/product (cpu)  tree peak RSS {r['tree_gib']:.2f} GiB  "
              f"growth {r['cpu'] / r['products'] / base:.2f}x  [cpu s: {steps}]  load {os.getloadavg()[0]:.1f}",
              flush=True)


if __name__ == "__main__":
    main()

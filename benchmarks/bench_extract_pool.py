"""Extract's worker pool: forked from a preloaded fork server (ours) against spawned workers (before).

    python benchmarks/bench_extract_pool.py               # 6 runs of 4 videos, then one run of 24
    python benchmarks/bench_extract_pool.py --runs 3 --per-run 2
    python benchmarks/bench_extract_pool.py --kind image --per-run 20   # product images (faces looked for)

Each case runs in a fresh process that calls ``extract.run.run`` (``workers = 2``; video + audio, or
with ``--kind image`` images) on ``--runs`` small stores one after the other (a flow's shards, a test
session, a scheduled run), then on one store holding all their media. The baseline is the same process with the pool's
context set back to ``spawn``. CPU is the machine's busy time from ``/proc/stat`` over the case
(user + nice + system + irq + softirq): the fork server outlives its parent and is reaped by init,
so ``getrusage`` would not count it. Run it on an otherwise quiet machine.
Prints CPU-s and wall per case and the ratios ours / spawn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from bench_extract import generate  # noqa: E402

CHILD = r"""
import hashlib, json, multiprocessing, sys, time
from pathlib import Path
from m5data.config import load
import m5data.extract.pool as extract_pool
import m5data.extract.run as extract_run
from m5data.storage import Store

def main():
    mode, scratch, groups, kind = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
    if mode == "spawn":  # the pool as it was: every worker a fresh interpreter
        extract_pool.pool_context = lambda: multiprocessing.get_context("spawn")
    settings = load(overrides={"extract.workers": 2}, environ={})
    out = []
    for g, paths in enumerate(groups):
        store = Store.init(scratch / f"{mode}-{g}")
        rows = []
        for i, p in enumerate(paths):
            ref = store.blobs.put_file(Path(p), Path(p).suffix[1:])
            rows.append({"media_id": hashlib.sha1(p.encode()).hexdigest(), "product_id": f"bench:{i}", "kind": kind,
                         "role": "video" if kind == "video" else "main", "blob": ref.path, "sha256": ref.sha256,
                         "bytes": ref.bytes, "status": "ok"})
        store.write("media", rows)
        t = time.perf_counter()
        st = extract_run.run(store, settings, kinds="video,audio" if kind == "video" else "image", progress=False)
        out.append({"items": len(paths), "ok": st.n_out, "failed": st.n_failed, "wall": time.perf_counter() - t})
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


def busy_seconds() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def images(work: Path, n: int, seed: int) -> list[str]:
    """N product-photo-sized JPEGs (800x800 and 750x1000, smooth shapes and noise); reused when present."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        path = work / "images" / f"i{i:03d}.jpg"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            w, h = (800, 800) if i % 3 else (750, 1000)
            base = rng.integers(0, 255, 3)
            pixels = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
            im = Image.fromarray(pixels)
            draw = ImageDraw.Draw(im)
            for _ in range(4):
                x, y = int(rng.integers(0, w - 200)), int(rng.integers(0, h - 200))
                draw.ellipse((x, y, x + int(rng.integers(60, 200)), y + int(rng.integers(60, 200))),
                             fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            im.save(path, quality=90)
        out.append(str(path))
    return out


def case(mode: str, scratch: Path, groups: list[list[str]], kind: str) -> dict:
    script = scratch / "child.py"
    script.write_text(CHILD)
    c0, t0 = busy_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), mode, str(scratch), json.dumps(groups), kind],
                          capture_output=True, text=True, cwd=ROOT)
    time.sleep(1.0)  # the fork server and its workers end just after their parent
    wall, cpu = time.perf_counter() - t0, busy_seconds() - c0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} case failed:\n{proc.stderr[-3000:]}")
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    bad = [r for r in runs if r["failed"]]
    if bad:
        raise SystemExit(f"{mode}: failed items {bad}")
    return {"cpu": cpu, "wall": wall - 1.0, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6, help="small extract runs in one process")
    ap.add_argument("--per-run", type=int, default=4, help="videos (images) per small run")
    ap.add_argument("--kind", choices=("video", "image"), default="video",
                    help="video: videos with sound (frames, mp3, MFCC); image: product images (normalised, faces)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "m5data-bench-extract-pool")
    args = ap.parse_args()
    if args.kind == "video":
        videos = [str(p) for p, _ in generate(args.work, args.runs * args.per_run, 4, 12, "320x240", seed=3)]
    else:
        videos = images(args.work, args.runs * args.per_run, seed=3)
    random.Random(0).shuffle(videos)
    groups = [videos[i * args.per_run:(i + 1) * args.per_run] for i in range(args.runs)] + [videos]
    results = {}
    for mode in ("spawn", "forkserver", "spawn", "forkserver"):  # each twice, interleaved: the second counts
        scratch = Path(tempfile.mkdtemp(dir=args.work))
        try:
            results[mode] = case(mode, scratch, groups, args.kind)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    what = "videos" if args.kind == "video" else "images"
    print(f"\n{args.runs} extract runs of {args.per_run} {what}, then one of {len(videos)} (workers = 2, "
          f"{'video + audio' if args.kind == 'video' else 'image'})")
    print(f"{'pool':<26} {'busy CPU':>10} {'wall':>9} {'small runs wall':>16} {'big run wall':>13}")
    for mode, label in (("spawn", "spawned workers (before)"), ("forkserver", "fork server (ours)")):
        r = results[mode]
        small = sum(x["wall"] for x in r["runs"][:-1])
        print(f"{label:<26} {r['cpu']:9.1f}s {r['wall']:8.1f}s {small:15.1f}s {r['runs'][-1]['wall']:12.1f}s")
    s, f = results["spawn"], results["forkserver"]
    print(f"extract pool ({what}): fork server / spawn = {f['cpu'] / s['cpu']:.2f}x CPU, {f['wall'] / s['wall']:.2f}x wall")


if __name__ == "__main__":
    main()

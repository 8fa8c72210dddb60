"""Extract's worker pool: forked from a preloaded fork server (ours) against spawned workers (before).

    python benchmarks/bench_extract_pool.py               # 6 runs of 4 videos, then one run of 24
    python benchmarks/bench_extract_pool.py --runs 3 --per-run 2

Each case runs in a fresh process that calls ``extract.run.run`` (``workers = 2``, video + audio)
on ``--runs`` small stores one after the other (a flow's shards, a test session, a scheduled run),
then on one store holding all their videos. The baseline is the same process with the pool's
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
    mode, scratch, groups = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    if mode == "spawn":  # the pool as it was: every worker a fresh interpreter
        extract_pool.pool_context = lambda sound=True: multiprocessing.get_context("spawn")
    settings = load(overrides={"extract.workers": 2}, environ={})
    out = []
    for g, paths in enumerate(groups):
        store = Store.init(scratch / f"{mode}-{g}")
        rows = []
        for i, p in enumerate(paths):
            ref = store.blobs.put_file(Path(p), "mp4")
            rows.append({"media_id": hashlib.sha1(p.encode()).hexdigest(), "product_id": f"bench:{i}", "kind": "video",
                         "role": "video", "blob": ref.path, "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok"})
        store.write("media", rows)
        t = time.perf_counter()
        st = extract_run.run(store, settings, kinds="video,audio", progress=False)
        out.append({"videos": len(paths), "ok": st.n_out, "failed": st.n_failed, "wall": time.perf_counter() - t})
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


def busy_seconds() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def case(mode: str, scratch: Path, groups: list[list[str]]) -> dict:
    script = scratch / "child.py"
    script.write_text(CHILD)
    c0, t0 = busy_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), mode, str(scratch), json.dumps(groups)],
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
    ap.add_argument("--per-run", type=int, default=4, help="videos per small run")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "m5data-bench-extract-pool")
    args = ap.parse_args()
    videos = [str(p) for p, _ in generate(args.work, args.runs * args.per_run, 4, 12, "320x240", seed=3)]
    random.Random(0).shuffle(videos)
    groups = [videos[i * args.per_run:(i + 1) * args.per_run] for i in range(args.runs)] + [videos]
    results = {}
    for mode in ("spawn", "forkserver", "spawn", "forkserver"):  # each twice, interleaved: the second counts
        scratch = Path(tempfile.mkdtemp(dir=args.work))
        try:
            results[mode] = case(mode, scratch, groups)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.runs} extract runs of {args.per_run} videos, then one of {len(videos)} (workers = 2, video + audio)")
    print(f"{'pool':<26} {'busy CPU':>10} {'wall':>9} {'small runs wall':>16} {'big run wall':>13}")
    for mode, label in (("spawn", "spawned workers (before)"), ("forkserver", "fork server (ours)")):
        r = results[mode]
        small = sum(x["wall"] for x in r["runs"][:-1])
        print(f"{label:<26} {r['cpu']:9.1f}s {r['wall']:8.1f}s {small:15.1f}s {r['runs'][-1]['wall']:12.1f}s")
    s, f = results["spawn"], results["forkserver"]
    print(f"extract pool: fork server / spawn = {f['cpu'] / s['cpu']:.2f}x CPU, {f['wall'] / s['wall']:.2f}x wall")


if __name__ == "__main__":
    main()

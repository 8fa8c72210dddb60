"""Benchmark: export of the demo store to a local S3 endpoint vs to a local folder (seconds, ratio).

Builds (or reuses, under ``--work``) the demo store of ``--products`` products and writes a split
version (or, with ``--synthetic N``, bench_export.py's synthetic store of N products: bigger
media, built in seconds), starts moto's S3 server on 127.0.0.1 in its own process, then alternates for ``--rounds``
rounds: ``export --format F`` into a fresh local folder, and into a fresh ``s3://`` prefix (each
shard staged locally, uploaded, marker last), and times the floor of the S3 side: the local
export's files uploaded one by one with ``s3fs.put_file`` (the same bytes, no export logic).
Prints the best time of each, MB, us/product, the ratios S3/local and S3/(local + upload floor),
the peak RSS of this process's tree (it and any export workers: RSS summed, sampled by
``peak_rss.PeakRSS``; the moto server left out) and, on its own, of the moto server. Usage::

    python benchmarks/bench_export_s3.py --products 60 --rounds 3
    python benchmarks/bench_export_s3.py --synthetic 300 --shard-size 50 --workers 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]  # tests/support


def demo_store(work: Path, products: int):
    """The demo store with a split version ``v1`` (built once under ``work``)."""
    from support.demo_fixtures import build_demo_store, cached_shop

    from m5data.config import load
    from m5data.splits.build import build as build_splits
    from m5data.storage import Store

    root = work / f"store-{products}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        build_demo_store(cached_shop(work, products=products, seed=0), root)
        store = Store.open(root)
        build_splits(store, load(None, {"store.path": str(root)}, environ={}), version="v1")
        (root / ".complete").touch()
    return Store.open(root)


def synthetic_store(work: Path, products: int):
    """bench_export.py's synthetic store (one split ``train``), built once under ``work``."""
    from bench_export import build_store

    from m5data.storage import Store

    root = work / f"synthetic-{products}"
    if not (root / ".complete").exists():
        shutil.rmtree(root, ignore_errors=True)
        build_store(root, products)
        (root / ".complete").touch()
    return Store.open(root)


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def main() -> None:
    import boto3
    from peak_rss import PeakRSS

    from m5data.config import load
    from m5data.export.run import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=60, help="demo world size")
    ap.add_argument("--synthetic", type=int, default=0, help="use bench_export's synthetic store of N products instead")
    ap.add_argument("--format", default="webdataset", choices=("webdataset", "parquet", "m5product"))
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating local / S3 exports; best of each")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "m5data-bench-s3",
                    help="where the demo shop and store are built (kept for the next run)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = synthetic_store(args.work, args.synthetic) if args.synthetic else demo_store(args.work, args.products)
    what = f"synthetic store of {args.synthetic}" if args.synthetic else f"demo store of {args.products}"
    print(f"{what} products ready in {time.perf_counter() - t0:.1f} s")
    moto, url = start_moto()
    os.environ.update(AWS_ENDPOINT_URL_S3=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_PROFILE", None)
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket="m5data-bench")
    settings = load(None, {"store.path": str(store.root), "export.shard_size": args.shard_size,
                           "export.workers": args.workers}, environ={})
    import s3fs

    times: dict[str, list[float]] = {"local": [], "s3": [], "upload": []}
    samples = size = 0
    try:
        with PeakRSS(tree=True, exclude=(moto.pid,)) as mem, PeakRSS(moto.pid) as moto_mem:
            for r in range(args.rounds):
                for side in ("local", "s3"):
                    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
                        out = f"s3://m5data-bench/round{r}" if side == "s3" else Path(tmp) / "out"
                        t = time.perf_counter()
                        report = export(store, settings, out=out, split="all", fmt=args.format)
                        times[side].append(time.perf_counter() - t)
                        samples, size = report.stats.n_out, report.stats.bytes
                        if side == "local":  # the floor: the same files, uploaded as they are
                            fs = s3fs.S3FileSystem(skip_instance_cache=True)
                            t = time.perf_counter()
                            for f in sorted(p for p in out.rglob("*") if p.is_file()):
                                fs.put_file(str(f), f"m5data-bench/floor{r}/{f.relative_to(out).as_posix()}")
                            times["upload"].append(time.perf_counter() - t)
                            fs.rm(f"m5data-bench/floor{r}", recursive=True)
                    if side == "s3":  # the server keeps objects in memory: empty the prefix
                        s3fs.S3FileSystem(skip_instance_cache=True).rm(f"m5data-bench/round{r}", recursive=True)
    finally:
        moto.terminate()
        moto.wait(10)
    local, remote, upload = min(times["local"]), min(times["s3"]), min(times["upload"])
    print(f"{args.format} export of {samples} samples ({size / 1e6:.1f} MB, {what} products), "
          f"--shard-size {args.shard_size}, --workers {args.workers}, best of {args.rounds}; load {os.getloadavg()[0]:.1f}")
    print(f"  local folder : {local:6.2f} s  {local / samples * 1e6:9.0f} us/sample  {size / 1e6 / local:6.1f} MB/s  "
          f"(all: {', '.join(f'{t:.2f}' for t in times['local'])})")
    print(f"  local S3     : {remote:6.2f} s  {remote / samples * 1e6:9.0f} us/sample  {size / 1e6 / remote:6.1f} MB/s  "
          f"(all: {', '.join(f'{t:.2f}' for t in times['s3'])})")
    print(f"  upload floor : {upload:6.2f} s  (the local export's files, put one by one; "
          f"all: {', '.join(f'{t:.2f}' for t in times['upload'])})")
    print(f"  ratio S3 / local: {remote / local:.2f};  S3 / (local + upload floor): {remote / (local + upload):.2f}")
    print(f"  tree peak RSS: this process and its workers {mem.peak / 2**20:.0f} MiB; "
          f"moto server {moto_mem.peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()

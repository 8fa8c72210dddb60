"""Benchmark: WebDataset export throughput vs Python's tarfile writing the same bytes, and read-back speed.

Builds a synthetic store (``--products`` products; real JPEG images and frames made with numpy +
simplejpeg, MFCC arrays, mp3-sized audio blobs; a pool of distinct media reused across products),
writes a ``splits`` version, then measures in the same invocation:

- (a) ``m5data export --format webdataset`` inline (one process) and with ``--workers``;
- (b) the floor: the same members (names and source files, listed beforehand) written with
  ``tarfile`` directly, one process, no queries, no JSON, no hashing;
- (c) reading the shards back with ``webdataset.WebDataset`` (samples/s, all members decoded as bytes).

Prints MB/s, the ratio (a)/(b) (target >= 0.8) and the peak RSS of the process tree (this process
and the export's workers: RSS summed, sampled by ``peak_rss.PeakRSS``) over (a), (b) and (c). Usage::

    python benchmarks/bench_export.py --products 3000 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _jpeg(rng, h: int, w: int) -> bytes:
    import simplejpeg

    y = np.linspace(0, 255, h)[:, None, None]
    x = np.linspace(0, 255, w)[None, :, None]
    base = (y * rng.uniform(0.2, 1) + x * rng.uniform(0.2, 1)) % 256
    img = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    return simplejpeg.encode_jpeg(np.ascontiguousarray(img), quality=85)


def build_store(root: Path, products: int, seed: int = 0, pool: int = 64, frames: int = 8) -> tuple[object, int]:
    """A store of ``products`` synthetic products with image, caption, specs, frames, MFCC, mp3; returns (store, media bytes)."""
    from m5data.storage import Store

    rng = np.random.default_rng(seed)
    store = Store.init(root)
    images, frame_dirs, mfccs, mp3s = [], [], [], []
    for k in range(pool):
        images.append(store.blobs.put_bytes(_jpeg(rng, 600, 600), "jpg", sync=False))
        folder = root / "derived" / "frames" / f"{k:02x}" / f"video{k:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(frames):
            (folder / f"{i + 1:06d}.jpg").write_bytes(_jpeg(rng, 360, 640))
            names.append(f"{i + 1:06d}.jpg")
        (folder / "frames.json").write_text(json.dumps({"files": names}))
        frame_dirs.append(str(folder.relative_to(root)))
        buf = io.BytesIO()
        np.save(buf, rng.normal(size=(frames, 40, 87)).astype("float32"))
        mfccs.append(store.blobs.put_bytes(buf.getvalue(), "npy", sync=False))
        mp3s.append(store.blobs.put_bytes(rng.bytes(128_000 // 8 * frames), "mp3", sync=False))
    store.blobs.sync()
    prows, srows, mrows, split_rows = [], [], [], []
    for n in range(products):
        pid = f"bench:{100000000000 + n}"
        k = int(rng.integers(pool))
        prows.append({"product_id": pid, "platform": "bench", "source_id": str(100000000000 + n),
                      "title": f"商品 {n} 女装 连衣裙 夏季 新款 {k}", "category_path": ["服装", f"类{k % 8}"]})
        srows += [{"product_id": pid, "position": i, "property": f"属性{i}", "value": f"值{(n + i) % 13}"} for i in range(6)]
        for kind, ref_or_dir in (("image_norm", images[k]), ("frames", frame_dirs[k]), ("mfcc", mfccs[k]), ("audio", mp3s[k])):
            blob = ref_or_dir if isinstance(ref_or_dir, str) else ref_or_dir.path
            mrows.append({"media_id": f"{pid}|{kind}", "product_id": pid, "kind": kind, "role": "derived", "position": 0,
                          "blob": blob, "status": "ok", "bytes": None if isinstance(ref_or_dir, str) else ref_or_dir.bytes})
        split_rows.append({"product_id": pid, "split": "train", "version": "bench"})
    store.write("products", prows)
    store.write("specs", srows)
    store.write("media", mrows)
    store.write("splits", split_rows)
    media_bytes = sum(r.bytes for r in images + mfccs + mp3s)
    return store, media_bytes


def tarfile_floor(members: list[tuple[str, Path | bytes]], out: Path, shard_size_members: list[int],
                  fsync: bool = False) -> int:
    """Write ``members`` with plain tarfile (one shard per group of sizes); returns bytes written.
    With ``fsync`` each shard is fsynced when closed, the durability the export gives its shards."""
    total = 0
    pos = 0
    for i, count in enumerate(shard_size_members):
        path = out / f"floor-{i:06d}.tar"
        with open(path, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w") as tar:
                for name, src in members[pos:pos + count]:
                    data = src if isinstance(src, bytes) else src.read_bytes()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        pos += count
        total += path.stat().st_size
    return total


def floor_members(store, shard_dir: Path) -> tuple[list[tuple[str, Path | bytes]], list[int]]:
    """The exported shards' members, as (name, source file) where a file in the store holds the bytes
    (image, frames, mfcc, mp3) and as bytes for the small generated ones (txt, json)."""
    from m5data.export.media import frame_files
    from m5data.export.sample_rows import load_samples
    from m5data.export.samples import product_id_from_key

    con = store.connect()
    try:
        all_ids = [r[0] for r in con.execute("SELECT product_id FROM splits ORDER BY product_id").fetchall()]
        samples = {s.product_id: s for s in load_samples(con, all_ids)}
    finally:
        con.close()
    members, counts = [], []
    for tar_path in sorted(shard_dir.glob("train-*.tar")):
        n = 0
        with tarfile.open(tar_path) as tar:
            for m in tar:
                key, _, field = m.name.partition(".")
                s = samples[product_id_from_key(key)]
                src = {"jpg": s.image, "mfcc.npy": s.mfcc, "mp3": s.mp3}.get(field)
                if src:
                    members.append((m.name, store.local_root() / src))
                elif field.startswith("frame"):
                    members.append((m.name, frame_files(store.root, s.frames)[int(field[5:].split(".")[0])]))
                else:
                    members.append((m.name, tar.extractfile(m).read()))
                n += 1
        counts.append(n)
    return members, counts


def main() -> None:
    from peak_rss import PeakRSS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=3000)
    ap.add_argument("--shard-size", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of floor and export; best of each")
    ap.add_argument("--frames", type=int, default=8, help="1-fps frames per product")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    from m5data.config import load
    from m5data.export.run import export

    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        t0 = time.perf_counter()
        store, _ = build_store(tmp / "store", args.products, frames=args.frames)
        print(f"synthetic store: {args.products:,} products built in {time.perf_counter() - t0:.1f} s")

        def run_export(out: Path, workers: int) -> tuple[float, int]:
            settings = load(None, {"store.path": str(store.root), "export.shard_size": args.shard_size,
                                   "export.workers": workers}, environ={})
            t = time.perf_counter()
            report = export(store, settings, out=out, split="all", fmt="webdataset")
            dt = time.perf_counter() - t
            size = sum(p.stat().st_size for p in out.glob("*.tar"))
            assert report.stats.n_out == args.products
            return dt, size

        with PeakRSS(tree=True) as mem:
            # warm the page cache once so that neither side pays the first read of the blobs
            run_export(tmp / "warm", 1)
            members, counts = floor_members(store, tmp / "warm")
            shutil.rmtree(tmp / "warm")

            # alternate the two sides; best of --rounds each (the machine is shared: the best run is the
            # one least disturbed). CPU seconds (this process and its threads) are the steadier measure.
            floor_runs, sync_runs, ours_runs = [], [], []
            for r in range(args.rounds):
                for runs, fsync in ((floor_runs, False), (sync_runs, True)):
                    floor_dir = tmp / "floor"
                    shutil.rmtree(floor_dir, ignore_errors=True)
                    floor_dir.mkdir()
                    t, c = time.perf_counter(), time.process_time()
                    floor_bytes = tarfile_floor(members, floor_dir, counts, fsync=fsync)
                    runs.append((time.perf_counter() - t, time.process_time() - c))
                shutil.rmtree(tmp / "ours1", ignore_errors=True)
                c = time.process_time()
                ours_s, ours_bytes = run_export(tmp / "ours1", 1)
                ours_runs.append((ours_s, time.process_time() - c))
            shutil.rmtree(tmp / "floor", ignore_errors=True)
            floor_s, floor_cpu = min(w for w, _ in floor_runs), min(c for _, c in floor_runs)
            sync_s, sync_cpu = min(w for w, _ in sync_runs), min(c for _, c in sync_runs)
            ours_s, ours_cpu = min(w for w, _ in ours_runs), min(c for _, c in ours_runs)
            par_s, par_bytes = run_export(tmp / "oursN", args.workers)
            same = (tmp / "ours1" / "train.index.json").read_bytes() == (tmp / "oursN" / "train.index.json").read_bytes()
            shutil.rmtree(tmp / "oursN")

            mb = 1e6
            print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {args.rounds} rounds")
            print(f"(b) tarfile floor, 1 process:          {floor_bytes / mb:8.1f} MB in {floor_s:6.2f} s = "
                  f"{floor_bytes / mb / floor_s:7.1f} MB/s  (CPU {floor_cpu:.2f} s)")
            print(f"(b') tarfile floor + fsync per shard:  {floor_bytes / mb:8.1f} MB in {sync_s:6.2f} s = "
                  f"{floor_bytes / mb / sync_s:7.1f} MB/s  (CPU {sync_cpu:.2f} s)")
            print(f"(a) m5data export, 1 process:          {ours_bytes / mb:8.1f} MB in {ours_s:6.2f} s = "
                  f"{ours_bytes / mb / ours_s:7.1f} MB/s  (CPU {ours_cpu:.2f} s)")
            print(f"(a) m5data export, {args.workers} workers:          {par_bytes / mb:8.1f} MB in {par_s:6.2f} s = "
                  f"{par_bytes / mb / par_s:7.1f} MB/s")
            print(f"ratio (a, 1 process) / (b), MB/s wall:    {(ours_bytes / ours_s) / (floor_bytes / floor_s):.2f}  (target >= 0.8)")
            print(f"ratio (a, 1 process) / (b'), MB/s wall:   {(ours_bytes / ours_s) / (floor_bytes / sync_s):.2f}")
            print(f"ratio (a, 1 process) / (b), MB per CPU-s: {(ours_bytes / ours_cpu) / (floor_bytes / floor_cpu):.2f}")
            print(f"ratio (a, {args.workers} workers) / (b), MB/s wall:    {(par_bytes / par_s) / (floor_bytes / floor_s):.2f}")
            print(f"ratio (a, {args.workers} workers) / (b'), MB/s wall:   {(par_bytes / par_s) / (floor_bytes / sync_s):.2f}")
            print(f"parallel shards byte-identical to inline ones (index sha256s equal): {same}")

            import webdataset as wds

            urls = [str(p) for p in sorted((tmp / "ours1").glob("*.tar"))]
            t = time.perf_counter()
            n = 0
            for sample in wds.WebDataset(urls, shardshuffle=False):
                n += 1
            read_s = time.perf_counter() - t
            print(f"(c) webdataset read-back: {n:,} samples in {read_s:.2f} s = {n / read_s:,.0f} samples/s "
                  f"({ours_bytes / mb / read_s:.1f} MB/s)")
        print(f"tree peak RSS (this process and the export's workers): {mem.peak / 2**20:.0f} MiB")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

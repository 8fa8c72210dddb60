"""Benchmark: peak RSS and bytes written by download and extract on issue 35's hostile media.

* download: eight 1 MB gzip-encoded image bodies that inflate to 1 GiB each (``gzip_bomb``),
  served from 127.0.0.1 with ``Content-Encoding: gzip``, once with ``download.image_max_side=512``
  (bodies re-encoded, small ones read in one call before the fix) and once streaming to blobs;
* extract: one 1080p noise frame in a Matroska file claiming 1,200 s (the frame amplifier), and a
  14000x14000 frame (refused from the probe), with the default settings.

Each stage runs in a child process: its peak RSS is its whole process tree's (the child, ffmpeg,
re-encoding workers: their RSS summed, sampled every 10 ms by ``peak_rss.run_measured``). Bytes written are the files
under the store's ``derived/`` and ``blobs/`` made by the run (the source video's blob excluded).

    python benchmarks/bench_hostile_media.py [--bombs 8] [--inflated-mib 1024] [--skip-download]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # media_samples: the hostile video builders the tests use
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak_rss


def measured(args: list[str]) -> tuple[dict, int]:
    """Run ``args`` with this checkout first on the path: (its last stdout line as JSON, its process
    tree's peak RSS in bytes)."""
    from peak_rss import run_measured

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as err:
        done = run_measured(args, stdout=subprocess.PIPE, stderr=err, env=env, every=0.01)
        if done.returncode != 0:
            err.seek(0)
            sys.exit(f"{args[2:]} failed:\n{err.read().decode()[-3000:]}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1]), done.peak


def written(root: Path, skip: set[str]) -> int:
    return sum(p.stat().st_size for area in ("derived", "blobs") for p in (root / area).rglob("*")
               if p.is_file() and p.name not in skip)


# ------------------------------------------------------------------ children: one stage each
def child(stage: str, store_root: str, overrides: str) -> None:
    from m5data.config import load
    from m5data.storage import Store

    settings = load(overrides=json.loads(overrides), environ={}, cwd=Path(store_root))
    store = Store(store_root)
    if stage == "download":
        from m5data.download.run import run

        stats = run(store, settings)
    else:
        from m5data.extract.run import run

        stats = run(store, settings, kinds="video", progress=False)
    rows = store.read("media").to_pylist()
    print(json.dumps({"statuses": stats.statuses if stage == "download" else dict(stats.failures),
                      "rows": [{k: r.get(k) for k in ("kind", "status", "error", "frame_count", "meta")}
                               for r in rows]}, default=str))


# ------------------------------------------------------------------ the two measures
def bench_download(n: int, inflated: int) -> None:
    from support.media_server import MediaServer, gzip_bomb, media_rows

    from m5data.storage import Store

    bomb = gzip_bomb(inflated)
    print(f"download: {n} gzip bodies of {len(bomb):,} bytes, each inflating to {inflated:,} "
          f"(limit download.max_image_bytes)")
    with MediaServer({"bomb.jpg": bomb}) as srv, tempfile.TemporaryDirectory() as tmp:
        for side in (512, 0):
            store = Store.init(Path(tmp) / f"store{side}")
            store.write("media", media_rows([srv.url(f"/gzip/bomb.jpg?copy={i}") for i in range(n)]))
            over = {"download.allow_private": True, "download.retries": 0, "download.image_max_side": side,
                    "download.workers": 1}
            out, peak = measured([sys.executable, __file__, "--child", "download", str(store.root), json.dumps(over)])
            print(f"  image_max_side={side:<4} whole-tree peak RSS {peak / 2**20:7,.0f} MiB  statuses {out['statuses']}  "
                  f"blobs written {written(store.local_root(), set()):,} bytes")


def bench_extract() -> None:
    from support.media_samples import amplifying_video, huge_frame_video

    from m5data.config import load
    from m5data.storage import Store

    defaults = load(environ={}, cwd=ROOT / "tests").extract
    print(f"extract (defaults: max_frames {defaults.max_frames}, frame_max_side {defaults.frame_max_side}, "
          f"max_item_bytes {defaults.max_item_bytes:,}, max_video_pixels {defaults.max_video_pixels:,}):")
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("amplifier (1 noise frame, 1,200 s)", amplifying_video),
                           ("14000x14000 frame", huge_frame_video)):
            store = Store.init(Path(tmp) / f"store-{make.__name__}")
            video = make(Path(tmp) / f"{make.__name__}.mkv")
            ref = store.blobs.put_file(video, "mkv")
            store.write("media", [{"media_id": make.__name__, "product_id": "bench:1", "kind": "video",
                                   "role": "video", "position": 0, "url": "http://shop.test/v.mkv",
                                   "blob": ref.path, "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok"}])
            out, peak = measured([sys.executable, __file__, "--child", "extract", str(store.root),
                                  json.dumps({"extract.workers": 1})])
            by_kind = {r["kind"]: r for r in out["rows"]}
            frames = by_kind.get("frames") or {}
            cut = json.loads(frames["meta"]).get("cut") if frames.get("meta") else None
            print(f"  {name}: input {ref.bytes:,} bytes; whole-tree peak RSS {peak / 2**20:,.0f} MiB; "
                  f"written {written(store.local_root(), {Path(ref.path).name}):,} bytes; "
                  f"video {by_kind['video']['status']}; frames {frames.get('status')} "
                  f"({frames.get('frame_count')} frames){'; cut: ' + cut if cut else ''}"
                  + (f"; error: {by_kind['video']['error']}" if by_kind["video"]["error"] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bombs", type=int, default=8)
    parser.add_argument("--inflated-mib", type=int, default=1024)
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-extract", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "STORE", "OVERRIDES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not args.skip_download:
        bench_download(args.bombs, args.inflated_mib << 20)
    if not args.skip_extract:
        bench_extract()


if __name__ == "__main__":
    main()

"""Benchmark: m5data download vs img2dataset on the same 2,000 JPEGs served from 127.0.0.1.

Both tools fetch every image, resize it to a longest side of 256 (aspect kept), re-encode it as
JPEG quality 90 and write it out: ours into the store's content-addressed blobs plus a status row
per URL, img2dataset into WebDataset shards (``--resize_mode keep_ratio_largest``). Both get two
worker processes. Each run is a subprocess (start-up included, like a user's command) and its
peak RSS is the largest sum of RSS over its process tree, sampled every 50 ms
(``peak_rss.run_measured``). The server runs in its own process, restarted for each run.

Then both run again with 5% injected faults (500-then-200, 404, 2 s slow, truncated) and the
final status counts are printed.

``--floor`` first times the bare loop of the image work on the same JPEGs (all bytes read into
memory first; then per image, in one thread with no I/O: libjpeg-turbo decode at the smallest
reduced DCT scale still at least the target (simplejpeg ``min_width``/``min_height``), OpenCV
INTER_AREA to a longest side of 256, JPEG quality 90 encode, sha256) and prints its images per
CPU-second, then our run's images per CPU-second (CPU of its whole process tree) over it.

Our package is compiled to bytecode first (``compileall``), as ``pip install`` does for
img2dataset's: where ``PYTHONDONTWRITEBYTECODE`` is set, an uncompiled checkout would otherwise
compile every module of its own again on each start (``--no-compile`` keeps that cost).

img2dataset is installed into its own venv (``--venv``, default /tmp/img2dataset-venv) with
``python -m venv`` + ``pip install img2dataset`` unless it is already there.

    python benchmarks/bench_download.py [--n 2000] [--fault-rate 0.05] [--skip-img2dataset] [--floor] [--no-faults]
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peak_rss import run_measured

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def make_images(folder: Path, n: int, noise: float = 24) -> int:
    """``n`` distinct photo-like 640x480 JPEGs: gradient, shapes and Gaussian sensor noise of
    standard deviation ``noise`` (24: about 107 KB a file, busy like a real photo; 0: about 25 KB)."""
    from PIL import Image, ImageChops, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("img*.jpg"))) == n:
        return sum(p.stat().st_size for p in folder.glob("img*.jpg"))
    grain = [Image.effect_noise((640, 480), noise).convert("RGB") for _ in range(4)] if noise else None
    total = 0
    for i in range(n):
        rng = random.Random(i)
        im = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
        draw = ImageDraw.Draw(im)
        for _ in range(20):
            x, y = rng.randrange(640), rng.randrange(480)
            box = [x, y, x + rng.randrange(20, 300), y + rng.randrange(20, 200)]
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
        if grain:
            im = ImageChops.add(im, grain[i % 4], scale=1.0, offset=-128)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
        (folder / f"img{i}.jpg").write_bytes(out.getvalue())
        total += len(out.getvalue())
    return total


class Server:
    """The test media server (tests/support/media_server.py) in its own process."""

    def __init__(self, folder: Path, tmp: Path):
        self.port_file = tmp / f"port-{time.monotonic_ns()}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}  # tests/support
        self.proc = subprocess.Popen([PY, "-m", "support.media_server", "--dir", str(folder),
                                      "--port-file", str(self.port_file)], cwd=ROOT, env=env)
        deadline = time.time() + 60
        while not self.port_file.exists():
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("media server did not start")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self.port_file.read_text()}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def url_paths(n: int, fault_rate: float, seed: int = 0) -> tuple[list[str], dict[str, str]]:
    """URL paths for ``n`` images; a ``fault_rate`` share spread evenly over four faults."""
    rng = random.Random(seed)
    faulted = set(rng.sample(range(n), round(n * fault_rate)))
    kinds = ["flaky", "dead", "slow", "truncated"]
    paths, fault = [], {}
    for k, i in enumerate(sorted(faulted)):
        fault[i] = kinds[k % 4]
    for i in range(n):
        f = fault.get(i)
        paths.append({None: f"/f/img{i}.jpg", "flaky": f"/flaky/1/img{i}.jpg", "dead": f"/status/404/{i}",
                      "slow": f"/slow/2000/img{i}.jpg", "truncated": f"/truncated/img{i}.jpg"}[f])
    return paths, {paths[i]: f for i, f in fault.items()}


def floor_rate(folder: Path, n: int, max_side: int = 256, quality: int = 90) -> float:
    """Images per CPU-second of the bare image work (see the module docstring), one thread, no I/O."""
    import hashlib

    import cv2
    import simplejpeg

    cv2.setNumThreads(1)
    datas = [(folder / f"img{i}.jpg").read_bytes() for i in range(n)]
    t0 = time.process_time()
    for data in datas:
        w, h, _, _ = simplejpeg.decode_jpeg_header(data)
        scale = max_side / max(w, h)
        target = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=target[0], min_height=target[1])
        pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
        hashlib.sha256(simplejpeg.encode_jpeg(pixels, quality, colorspace="RGB", colorsubsampling="420")).digest()
    return n / (time.process_time() - t0)


def measure(cmd: list[str], env: dict | None = None, log: Path | None = None) -> tuple[float, int, int, float]:
    """Run ``cmd``; return (wall s, peak RSS of its process tree in bytes, exit code, CPU s of the tree).

    CPU seconds (user + system of the command and every descendant it waited for, from ``os.wait4``)
    are what to compare on a busy machine, where wall time depends on what else runs.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL
    done = run_measured(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, every=0.05)
    if log:
        out.close()
    return done.seconds, done.peak, done.returncode, done.cpu


POOL = "mixed"  # set from --pool


def run_ours(urls: list[str], tmp: Path, tag: str) -> dict:
    store = tmp / f"store-{tag}"
    shutil.rmtree(store, ignore_errors=True)
    subprocess.run([PY, "-m", "m5data.cli", "--store", str(store), "init"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    lst = tmp / f"urls-{tag}.txt"
    lst.write_text("\n".join(urls) + "\n")
    cmd = [PY, "-m", "m5data.cli", "--store", str(store), "--set", "download.allow_private=true",
           "--set", "download.jpeg_quality=90", "--set", "download.retries=2", "--set", "download.backoff=0.2", "--set", f"download.pool={POOL}",
           "download", str(lst), "--no-progress", "--image-max-side", "256", "--workers", "2",
           "--concurrency", "64", "--per-host", "64", "--max-failure-rate", "1"]
    wall, peak, rc, cpu = measure(cmd, log=tmp / f"ours-{tag}.log")
    sys.path.insert(0, str(ROOT))
    from m5data.storage import Store

    st = Store.open(store)
    con = st.connect()
    try:
        statuses = dict(con.sql("SELECT status, count(*) FROM media GROUP BY 1 ORDER BY 1").fetchall())
        run = con.sql("SELECT seconds, failures FROM runs ORDER BY ended_at DESC LIMIT 1").fetchall()[0]
        ok_paths = {r[0] for r in con.sql("SELECT url FROM media WHERE status = 'ok'").fetchall()}
    finally:
        con.close()
    blobs = list(st.blobs.iter_paths())
    bad = sum(not st.blobs.verify(b) for b in blobs)
    return {"wall": wall, "peak": peak, "rc": rc, "cpu": cpu, "ok": statuses.get("ok", 0), "statuses": statuses,
            "inner": run[0], "failures": json.loads(run[1]), "ok_urls": ok_paths, "blobs": len(blobs), "bad_blobs": bad}


def ensure_img2dataset(venv: Path) -> Path | None:
    exe = venv / "bin" / "img2dataset"
    if exe.exists():
        return exe
    print(f"installing img2dataset into {venv} ...", flush=True)
    try:
        subprocess.run([PY, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "img2dataset"], check=True)
    except subprocess.CalledProcessError as exc:
        print(f"img2dataset could not be installed: {exc}")
        return None
    return exe if exe.exists() else None


def run_img2dataset(exe: Path, urls: list[str], tmp: Path, tag: str, retries: int) -> dict:
    out = tmp / f"i2d-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    lst = tmp / f"urls-{tag}.txt"
    lst.write_text("\n".join(urls) + "\n")
    cmd = [str(exe), "--url_list", str(lst), "--output_folder", str(out), "--output_format", "webdataset",
           "--image_size", "256", "--resize_mode", "keep_ratio_largest", "--processes_count", "2",
           "--thread_count", "64", "--number_sample_per_shard", "500", "--encode_quality", "90",
           "--timeout", "10", "--retries", str(retries)]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    wall, peak, rc, cpu = measure(cmd, env=env, log=tmp / f"i2d-{tag}.log")
    stats = [json.loads(Path(p).read_text()) for p in glob.glob(str(out / "*_stats.json"))]
    errors: dict[str, int] = {}
    for s in stats:
        for k, v in s.get("status_dict", {}).items():
            errors[k] = errors.get(k, 0) + v
    return {"wall": wall, "peak": peak, "rc": rc, "cpu": cpu, "ok": sum(s.get("successes", 0) for s in stats),
            "failed": sum(s.get("failed_to_download", 0) + s.get("failed_to_resize", 0) for s in stats),
            # shards run two at a time (one per process): their summed durations / 2 is the time inside
            "inner": sum(s.get("duration", 0) for s in stats) / 2, "statuses": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--noise", type=float, default=24, help="sensor noise of the generated JPEGs (0 = smooth, small files)")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/img2dataset-venv"))
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "m5data-bench-download")
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument("--floor", action="store_true", help="time the bare image loop; print ours over it")
    parser.add_argument("--no-faults", action="store_true", help="the clean runs only")
    parser.add_argument("--no-compile", action="store_true", help="do not compile m5data to bytecode first")
    parser.add_argument("--pool", choices=["mixed", "process", "thread"], default="mixed",
                        help="where our downloader re-encodes images (download.pool)")
    args = parser.parse_args()
    global POOL
    POOL = args.pool
    tmp = args.work
    tmp.mkdir(parents=True, exist_ok=True)
    images = tmp / f"images-{args.n}-noise{args.noise:g}"
    size = make_images(images, args.n, args.noise)
    print(f"{args.n} JPEGs 640x480 (noise {args.noise:g}), {size / args.n / 1000:.0f} KB on average; "
          f"{os.cpu_count()} cores")
    exe = None if args.skip_img2dataset else ensure_img2dataset(args.venv)
    if not args.no_compile:
        subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "m5data")], check=True, stdout=subprocess.DEVNULL)
    floor = None
    if args.floor:
        floor = floor_rate(images, args.n)
        print(f"[floor] bare image loop: {floor:.0f} images per CPU-second (one thread, no I/O)", flush=True)

    results = {}
    phases = (("clean", 0.0),) if args.no_faults else (("clean", 0.0), ("faults", args.fault_rate))
    for phase, rate in phases:
        paths, faults = url_paths(args.n, rate)
        for tool in ("ours", "img2dataset"):
            if tool == "img2dataset" and exe is None:
                continue
            server = Server(images, tmp)
            try:
                urls = [server.base + p for p in paths]
                res = run_ours(urls, tmp, phase) if tool == "ours" else \
                    run_img2dataset(exe, urls, tmp, phase, retries=2)
            finally:
                server.close()
            results[(phase, tool)] = res
            print(f"[{phase}] {tool:11s} {res['ok']:5d} ok of {args.n}  wall {res['wall']:6.2f} s  "
                  f"{res['ok'] / res['wall']:7.1f} samples/s end to end  "
                  f"({res['ok'] / res['inner']:.1f}/s inside the run)  CPU {res['cpu']:.1f} s "
                  f"({res['ok'] / res['cpu']:.0f} samples per CPU-second)  whole-tree peak RSS {res['peak'] / 2**20:.0f} MiB  "
                  f"exit {res['rc']}  load {os.getloadavg()[0]:.1f}", flush=True)
            if tool == "ours":
                print(f"    blobs {res['blobs']} (failing their sha256: {res['bad_blobs']}); statuses {res['statuses']}")
                if floor and phase == "clean":
                    print(f"    ours / floor: {res['ok'] / res['cpu']:.0f} / {floor:.0f} = "
                          f"{res['ok'] / res['cpu'] / floor:.2f} of the bare loop's images per CPU-second")
                if faults:
                    reachable = {server.base + p for p in paths if faults.get(p) not in ("dead", "truncated")}
                    missing = reachable - res["ok_urls"]
                    print(f"    reachable {len(reachable)}, stored ok {len(reachable & res['ok_urls'])}, "
                          f"missing {len(missing)}; failure reasons {res['failures']}")
                    by_fault: dict[str, int] = {}
                    for p in paths:
                        f = faults.get(p)
                        if f and server.base + p in res["ok_urls"]:
                            by_fault[f] = by_fault.get(f, 0) + 1
                    print(f"    ok by injected fault: {by_fault} (of {len(faults) // 4} each)")
            else:
                print(f"    failed {res['failed']}; errors {res['statuses']}")
        if (phase, "ours") in results and (phase, "img2dataset") in results:
            a, b = results[(phase, "ours")], results[(phase, "img2dataset")]
            print(f"[{phase}] ratio ours/img2dataset: {(a['ok'] / a['wall']) / (b['ok'] / b['wall']):.2f} samples/s "
                  f"end to end, {(a['ok'] / a['inner']) / (b['ok'] / b['inner']):.2f} inside the runs, "
                  f"{(a['ok'] / a['cpu']) / (b['ok'] / b['cpu']):.2f} samples per CPU-second")


if __name__ == "__main__":
    main()

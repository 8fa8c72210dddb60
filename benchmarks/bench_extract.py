"""Extract stage throughput against its baselines, on generated 24-fps videos with audio.

    python benchmarks/bench_extract.py                # 50 videos of 10-60 s (the full run)
    python benchmarks/bench_extract.py --videos 10    # a quick run
    python benchmarks/bench_extract.py --videos 10 --parts frames --moviepy-videos 0   # frames only

Frames, on three sets: the generated videos, the real ones in ../shared/realdata/media/video and
a few of the demo shop's (m5data.demo renders them); every video one after the other, the ffmpeg
variants interleaved per video (their order rotating), the least CPU of --repeats runs kept:
  (a) ours, once per extract.video_decode mode, as the stage's job in a pool of a worker per core does it:
      exact = ffprobe + our single ffmpeg pass (1 fps -> scale -> showinfo -> JPEG quality 90); fast (the
      default) and fastest = the same facts read in-process by PyAV + the in-process frame pass on one
      thread (m5data/extract/frames_av.py). CPU is this process's and its children's (ffmpeg, ffprobe)
      together. The ffprobe alone is timed too (exact pays it once for frames and sound), and exact's
      frame pass without it is printed,
  (b) the bare command `ffmpeg -i IN -vf fps=1 OUT/%06d.jpg`,
  (c) a naive moviepy loop: VideoFileClip(IN).get_frame(t) for each second, saved with Pillow
      (generated set only).
  Prints ours/(b) per mode (target <= 0.70 for the default) and, per mode, the quality of the
  frames kept against the exact decode (tests/support/framecheck.py): the worst SSIM at the stored size
  and the worst timestamp shift, with the video they come from.
Audio: seconds of audio per second of compute for our one ffmpeg pass (mp3 + samples at
22,050 Hz mono) + per-second MFCC blocks, against the earlier path (mp3 with moviepy, then a
second ffmpeg decode for the samples), and the MFCC blocks against the floor,
`librosa.feature.mfcc` directly on the preloaded samples.
Memory: the whole stage (`extract.run.run`, one worker: a one-process pool) on the first few videos and
on all of them, each in a fresh process: the peak RSS of its whole process tree (the stage's process, the
fork server, its worker, ffmpeg: summed, sampled by benchmarks/peak_rss.py) should not grow with the
number of videos.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/support/framecheck.py: the kept frames against the exact decode
os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))

from peak_rss import run_measured  # noqa: E402

from m5data.extract.video import DECODE_MODES, ffmpeg_exe  # noqa: E402


def generate(work: Path, n: int, lo: float, hi: float, size: str, seed: int) -> list[tuple[Path, float]]:
    """N test videos (testsrc2 pattern + a tone with noise), 24 fps, H.264 + AAC; reused when present."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        seconds = round(rng.uniform(lo, hi), 2)
        path = work / "videos" / f"v{i:03d}_{seconds:05.2f}s_{size}.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.mp4")
            subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d={seconds}",
                            "-f", "lavfi", "-i", f"sine=frequency={220 + 20 * i}:sample_rate=44100:duration={seconds}",
                            "-f", "lavfi", "-i", f"anoisesrc=a=0.05:r=44100:d={seconds}",
                            "-filter_complex", "[1:a][2:a]amix=inputs=2[a]", "-map", "0:v", "-map", "[a]",
                            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
                            str(tmp)], check=True)
            tmp.replace(path)
        out.append((path, seconds))
    return out


REALDATA = ROOT.parent / "shared" / "realdata" / "media" / "video"


def real_videos() -> list[tuple[Path, float]]:
    """The real videos of ../shared/realdata (none when it is not there)."""
    from m5data.extract.video import probe

    found = sorted(p for p in REALDATA.glob("*") if p.suffix in (".mp4", ".webm", ".mkv", ".mov")) \
        if REALDATA.is_dir() else []
    return [(p, probe(p).duration or 0.0) for p in found]


def demo_videos(work: Path, n: int) -> list[tuple[Path, float]]:
    """The first ``n`` intact videos of a 60-product demo shop (seed 0), rendered as the demo renders them."""
    from m5data.demo.generate import media_jobs
    from m5data.demo.media import video_command
    from m5data.demo.world import WorldConfig, build_world

    site = work / "demo"
    jobs = [j for j in media_jobs(build_world(WorldConfig(products=60, seed=0)), site)
            if j["render"]["type"] == "video" and j["fault"] == "none"][:n]
    todo = [(j, site / j["url"].lstrip("/")) for j in jobs]
    missing = [(j, out) for j, out in todo if not out.is_file()]
    for _, out in missing:
        out.parent.mkdir(parents=True, exist_ok=True)
    if missing:
        subprocess.run(video_command(missing), check=True)
    return [(out, j["render"]["frames"] / j["render"]["fps"]) for j, out in todo]


def ours(video: Path, out: Path, decode: str = "fast") -> int:
    """What the stage's video job in a pool of several workers does for frames: the probe of its mode, then
    the frame pass (on one thread in the modes other than exact)."""
    from m5data.extract.probe import start_probe
    from m5data.extract.video import extract_frames

    return extract_frames(video, out, start_probe(video, decode), max_side=720, decode=decode,
                          single_thread=True).count


def probe_only(video: Path, out: Path) -> int:
    """The ffprobe that (a) starts first: paid once per video for frames and sound together."""
    from m5data.extract.video import probe

    probe(video)
    return 0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg, ffprobe)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bare(video: Path, out: Path) -> int:
    out.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(video), "-vf", "fps=1", str(out / "%06d.jpg")],
                   check=True)
    return len(list(out.glob("*.jpg")))


def naive_moviepy(video: Path, out: Path) -> int:
    from moviepy import VideoFileClip
    from PIL import Image

    out.mkdir(parents=True)
    with VideoFileClip(str(video), audio=False) as clip:
        n = math.ceil(clip.duration)
        for k in range(n):
            Image.fromarray(clip.get_frame(k)).save(out / f"{k + 1:06d}.jpg", quality=90)
    return n


def bench_frames(videos, scratch: Path, moviepy_limit: int, modes=DECODE_MODES, repeats: int = 1) -> dict:
    import av  # noqa: F401  (imports outside the clock: a worker imports them once)
    import ffmpeg  # noqa: F401
    import moviepy  # noqa: F401
    from PIL import Image  # noqa: F401

    names = ["bare", "probe", *modes]
    times = dict.fromkeys([*names, "moviepy"], 0.0)
    cpu = dict(times)
    frames = dict.fromkeys(times, 0)
    runners = {"bare": bare, "probe": probe_only, "moviepy": naive_moviepy,
               **{m: lambda v, o, m=m: ours(v, o, m) for m in modes}}

    def timed(name, video, out) -> tuple[float, float, int]:
        t, c = time.perf_counter(), cpu_seconds()
        n = runners[name](video, out)
        spent = time.perf_counter() - t, cpu_seconds() - c, n
        shutil.rmtree(out, ignore_errors=True)
        return spent

    for i, (video, _) in enumerate(videos):
        video.read_bytes()  # page cache warm for all
        best: dict[str, tuple[float, float, int]] = {}
        for r in range(repeats):
            k = (i + r) % len(names)
            for name in names[k:] + names[:k]:
                got = timed(name, video, scratch / f"{name}-{i}")
                best[name] = min(best.get(name, got), got, key=lambda x: x[1])
        for name, (wall, spent, n) in best.items():
            times[name] += wall
            cpu[name] += spent
            frames[name] += n
    mp_seconds = 0.0
    for i, (video, seconds) in enumerate(videos[:moviepy_limit]):
        wall, spent, n = timed("moviepy", video, scratch / f"moviepy-{i}")
        times["moviepy"] += wall
        cpu["moviepy"] += spent
        frames["moviepy"] += n
        mp_seconds += seconds
    total_seconds = sum(s for _, s in videos)
    return {"times": times, "cpu": cpu, "frames": frames, "video_seconds": total_seconds,
            "moviepy_video_seconds": mp_seconds}


def bench_audio(videos, scratch: Path) -> dict:
    import librosa
    import numpy as np

    from m5data.extract.audio import extract_audio, load_samples, mfcc_blocks
    from m5data.extract.video import probe

    sr = 22050
    warm = load_samples(videos[0][0], sr, channels=2, max_duration=2)
    mfcc_blocks(warm, 1, sample_rate=sr)  # numba compile / cache load outside the clock
    librosa.feature.mfcc(y=warm, sr=sr, n_mfcc=40, n_fft=1024, hop_length=256)
    wall = dict.fromkeys(("onepass", "mp3", "decode", "blocks", "floor"), 0.0)
    cpu = dict(wall)
    audio_seconds = 0.0

    def timed(name, fn):
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        wall[name] += time.perf_counter() - t
        cpu[name] += cpu_seconds() - c
        return out

    for i, (video, seconds) in enumerate(videos):
        info = probe(video)
        timed("onepass", lambda: extract_audio(video, scratch / f"b{i}.mp3", sample_rate=sr,
                                               channels=info.audio_channels))
        timed("mp3", lambda: moviepy_mp3(video, scratch / f"a{i}.mp3"))
        y = timed("decode", lambda: load_samples(video, sr, channels=info.audio_channels))
        timed("blocks", lambda: mfcc_blocks(y, math.ceil(seconds), sample_rate=sr))
        y = np.ascontiguousarray(y)
        timed("floor", lambda: librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, n_fft=1024, hop_length=256))
        audio_seconds += len(y) / sr
        (scratch / f"a{i}.mp3").unlink()
        (scratch / f"b{i}.mp3").unlink()
    return {"audio_seconds": audio_seconds, "wall": wall, "cpu": cpu}


def moviepy_mp3(video: Path, out: Path) -> None:
    """The earlier mp3 path (baseline): moviepy decodes to numpy and pipes to a second ffmpeg."""
    from moviepy import AudioFileClip

    clip = AudioFileClip(str(video), fps=44_100)
    try:
        clip.write_audiofile(str(out), fps=44_100, codec="libmp3lame", bitrate="128k", logger=None)
    finally:
        clip.close()


RSS_CHILD = """
import json, sys, hashlib
from pathlib import Path
from m5data.config import load
from m5data.extract.run import run
from m5data.storage import Store
store = Store.init(sys.argv[1])
rows = []
for i, p in enumerate(json.loads(sys.argv[2])):
    ref = store.blobs.put_file(Path(p), "mp4")
    rows.append({"media_id": hashlib.sha1(p.encode()).hexdigest(), "product_id": f"bench:{i}", "kind": "video",
                 "role": "video", "blob": ref.path, "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok"})
store.write("media", rows)
s = load(overrides={"extract.workers": 1}, environ={})
st = run(store, s, kinds="video,audio", progress=False)
print(json.dumps({"n_out": st.n_out, "n_failed": st.n_failed, "seconds": st.seconds}))
"""


def bench_rss(videos, scratch: Path, sizes: list[int]) -> list[dict]:
    out = []
    for n in sizes:
        paths = json.dumps([str(v) for v, _ in videos[:n]])
        proc = run_measured([sys.executable, "-c", RSS_CHILD, str(scratch / f"store-{n}"), paths],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"stage run on {n} videos failed:\n{proc.stderr[-3000:]}")
        out.append({"videos": n, "tree_mb": proc.peak / 2**20, **json.loads(proc.stdout.strip().splitlines()[-1])})
        shutil.rmtree(scratch / f"store-{n}")
    return out


def frame_quality(videos, scratch: Path, modes) -> dict[str, dict]:
    """Per mode, the worst SSIM and the worst timestamp shift of the kept frames against the exact decode."""
    from support.framecheck import compare_decodes

    from m5data.extract.video import probe

    worst = {m: {"ssim": (1.0, ""), "shift": (0.0, ""), "missing": 0} for m in modes if m != "exact"}
    for video, _ in videos:
        info = probe(video)
        for mode, w in worst.items():
            q = compare_decodes(video, info, scratch, decode=mode, max_side=720)
            if q.worst_ssim < w["ssim"][0]:
                w["ssim"] = (q.worst_ssim, video.name)
            if q.worst_shift > w["shift"][0]:
                w["shift"] = (q.worst_shift, video.name)
            w["missing"] += abs(q.exact_frames - q.frames)
    return worst


def report_frames(videos, scratch: Path, args, label: str = "generated", moviepy: bool = True) -> None:
    modes = [m.strip() for m in args.decode.split(",") if m.strip()]
    limit = 0 if not moviepy else args.moviepy_videos if args.moviepy_videos is not None else len(videos)
    f = bench_frames(videos, scratch, limit, modes, args.repeats)
    tt, cc, fr = f["times"], f["cpu"], f["frames"]
    share = f["moviepy_video_seconds"] / f["video_seconds"]  # (c) may run on the first videos only
    print(f"\nframes (1 per second), {label}: {len(videos)} videos, {f['video_seconds']:.0f} s; least CPU of "
          f"{args.repeats} run(s) per video")
    print("                                    wall       CPU   frames  video-s per wall-s")
    rows = [(m, f"(a) ours, {m}{' (default)' if m == 'fast' else ''}") for m in modes]
    rows += [("probe", "    exact's ffprobe"), ("bare", "(b) bare ffmpeg")] + ([("moviepy", "(c) moviepy loop")] if tt["moviepy"] else [])
    for key, name in rows:
        seconds = f["video_seconds"] * (share if key == "moviepy" else 1)
        rate = seconds / tt[key] if tt[key] else float("nan")
        print(f"  {name:<28} {tt[key]:9.2f} s {cc[key]:8.2f} s  {fr[key]:6d}  {rate:8.1f}")
    quality = frame_quality(videos, scratch, modes) if args.quality else {}
    for m in modes:
        line = f"  ours ({m}) / (b) = {tt[m] / tt['bare']:.2f} wall, {cc[m] / cc['bare']:.2f} CPU"
        if m == "exact":
            line += f" (frame pass alone, without the ffprobe: {(cc[m] - cc['probe']) / cc['bare']:.2f} CPU)"
        if m == "fast":
            line += "  (target <= 0.70)"
        if m in quality:
            q = quality[m]
            line += (f"; worst SSIM {q['ssim'][0]:.4f} ({q['ssim'][1] or '-'}), worst timestamp shift "
                     f"{q['shift'][0]:.3f} s ({q['shift'][1] or '-'})"
                     + (f", {q['missing']} frames fewer or more than exact" if q["missing"] else ""))
        print(line)
    if tt["moviepy"] and "fast" in modes:
        print(f"  (c) / ours  = {tt['moviepy'] / (tt['fast'] * share):.2f} wall, "
              f"{cc['moviepy'] / (cc['fast'] * share):.2f} CPU  (per second of video)")


def report_audio(videos, scratch: Path) -> None:
    a = bench_audio(videos, scratch)
    secs = a["audio_seconds"]
    print("\naudio (mp3 128k + MFCC n_fft 1024 hop 256, 40 coefficients, 22,050 Hz)            wall      CPU")
    for key, label in (("onepass", "ours: one pass mp3 + samples"), ("mp3", "earlier: mp3 (moviepy)"),
                       ("decode", "earlier: decode to 22,050 Hz"), ("blocks", "MFCC blocks"),
                       ("floor", "floor: librosa.feature.mfcc")):
        print(f"  {label:<30} {a['wall'][key]:8.2f} s {a['cpu'][key]:8.2f} s")
    for unit in ("wall", "cpu"):
        t = a[unit]
        ours, earlier = t["onepass"] + t["blocks"], t["mp3"] + t["decode"] + t["blocks"]
        print(f"  [{unit}] mp3 + MFCC: ours {secs / ours:6.1f} audio-s per compute-s, earlier {secs / earlier:6.1f}; "
              f"ours / earlier = {ours / earlier:.2f}; blocks alone / floor = {t['blocks'] / t['floor']:.2f}")


def report_rss(videos, scratch: Path, args) -> None:
    sizes = sorted({min(args.rss_small, len(videos)), len(videos)})
    print("\npeak RSS of the whole stage (video + audio, extract.workers = 1: a one-process pool, since the"
          " in-process frame pass never runs in the stage's process), fresh process each")
    for r in bench_rss(videos, scratch, sizes):
        print(f"  {r['videos']:3d} videos: peak RSS of the stage's whole process tree {r['tree_mb']:6.0f} MiB, "
              f"{r['seconds']:.0f} s, {r['n_out']} ok, {r['n_failed']} failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=50)
    ap.add_argument("--min-seconds", type=float, default=10.0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--size", default="640x360", help="frame size of the generated videos")
    ap.add_argument("--moviepy-videos", type=int, default=None, help="run the slow moviepy loop on the first N only")
    ap.add_argument("--rss-small", type=int, default=5, help="videos in the small stage run of the memory check")
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated videos here (reused across runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="frames,audio,rss", help="which measurements to run (comma-separated)")
    ap.add_argument("--decode", default=",".join(DECODE_MODES), help="extract.video_decode modes to measure (comma-separated)")
    ap.add_argument("--repeats", type=int, default=3, help="frame passes per video and variant (the least CPU counts)")
    ap.add_argument("--sets", default="generated,real,demo", help="video sets of the frames part (comma-separated)")
    ap.add_argument("--demo-videos", type=int, default=8, help="demo shop videos in the demo set")
    ap.add_argument("--no-quality", dest="quality", action="store_false", help="skip the SSIM / timestamp check")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-extract-"))
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    t = time.perf_counter()
    videos = generate(work, args.videos, args.min_seconds, args.max_seconds, args.size, args.seed)
    total = sum(s for _, s in videos)
    print(f"{len(videos)} videos, {total:.0f} s of 24-fps {args.size} video with audio "
          f"(ready in {time.perf_counter() - t:.0f} s) in {work}; {os.cpu_count()} cores")

    parts = {p.strip() for p in args.parts.split(",")}
    if "frames" in parts:
        sets = {x.strip() for x in args.sets.split(",")}
        if "generated" in sets:
            report_frames(videos, scratch, args)
        real = real_videos() if "real" in sets else []
        if real:
            report_frames(real, scratch, args, f"real ({REALDATA})", moviepy=False)
        if "demo" in sets:
            report_frames(demo_videos(work, args.demo_videos), scratch, args, "demo shop", moviepy=False)
    if "audio" in parts:
        report_audio(videos, scratch)
    if "rss" in parts:
        report_rss(videos, scratch, args)
    shutil.rmtree(scratch, ignore_errors=True)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

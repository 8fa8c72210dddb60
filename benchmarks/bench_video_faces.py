"""The video face check (m5data/egress/video.py): its cost per second of video against a bare decode.

    python benchmarks/bench_video_faces.py             # the check as configured, and two other samplings
    python benchmarks/bench_video_faces.py --only-default

Videos: the face-free real ones of ../shared/realdata/media/video (Big Buck Bunny 30 s at 1280x720 VP8,
moviepy's example 640x360 H.264) and a 20 s 1280x720 H.264 slideshow of two JD product photos (a still
product video). A face ends a scan at its first picture, so the face-free videos, scanned to their end,
are the cost that counts. Per video and sampling, in this one invocation: the bare decode
``ffmpeg -v error -i x -f null -`` (wall and CPU seconds, its own process), the check
(``scan``: ffprobe, ffmpeg's pictures through a pipe, the detector on each, one OpenCV thread as in the
export's pool) in wall and CPU seconds (this process and its children), per second of video, the ratio
check / decode, and the peak RSS of the whole process tree while the check runs
(``peak_rss.PeakRSS(tree=True)``: this process, ffprobe and ffmpeg).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from peak_rss import PeakRSS  # noqa: E402

from m5data.egress import video  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata" / "media"
VIDEOS = ("video/big_buck_bunny_0_30.webm", "video/example.mp4")
SAMPLINGS = ((4, 480), (5, 320), (0, 320))  # (pictures a second, longer side); 0: every frame


def cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def slideshow(out: Path) -> Path:
    """20 s at 1280x720, 25 fps, H.264: two JD product photos, 10 s each."""
    pics = ("images/550f6d32Nf6b37d9d.jpg", "images/577c67c9Nefee4677.jpg")
    args = [a for p in pics for a in ("-loop", "1", "-t", "10", "-i", str(REALDATA / p))]
    scaled = "".join(f"[{i}:v]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,"
                     f"setsar=1,fps=25,format=yuv420p[v{i}];" for i in range(2))
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-filter_complex", scaled + "[v0][v1]concat=n=2:v=1[c]",
                    "-map", "[c]", "-c:v", "libx264", str(out)], check=True)
    return out


def seconds(path: Path) -> float:
    streams = video.probe(path)
    return max(s.seconds for s in streams)


def native_rate(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    num, _, den = out.partition("/")
    return float(num) / float(den or 1)


def bare_decode(path: Path) -> tuple[float, float]:
    t, c = time.perf_counter(), cpu()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"], check=True)
    return time.perf_counter() - t, cpu() - c


def check(path: Path, fps: int, side: int) -> tuple[float, float, int, int, str]:
    """(wall s, CPU s, pictures, tree peak RSS bytes, status) of one scan with this sampling."""
    video.FPS, video.SIDE = fps or native_rate(path), side  # 0: the fps filter at the video's own rate, every frame
    with PeakRSS(tree=True, every=0.02) as mem:
        t, c = time.perf_counter(), cpu()
        verdict = video.scan(path, max_pictures=10**6)
        wall, used = time.perf_counter() - t, cpu() - c
    return wall, used, f"{verdict.pictures}/{verdict.detected}", mem.peak, verdict.status


def main() -> None:
    import tempfile

    import cv2

    ap = argparse.ArgumentParser()
    ap.add_argument("--only-default", action="store_true")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # as in the export's pool
    samplings = SAMPLINGS[:1] if args.only_default else SAMPLINGS
    with tempfile.TemporaryDirectory() as tmp:
        paths = [REALDATA / v for v in VIDEOS] + [slideshow(Path(tmp) / "slideshow.mp4")]
        from m5data.faces.detect import detect

        detect(cv2.imread(str(REALDATA / "faces/astronaut.png")))  # the network loaded before any timing
        print(f"{'video':28} {'sampling':>10} {'secs':>5} {'pics/det':>9} {'decode wall/cpu s':>18} "
              f"{'check wall/cpu s':>17} {'cpu s per video-s':>17} {'ratio wall/cpu':>15} {'peak MiB':>9}")
        totals: dict = {}
        for path in paths:
            secs = seconds(path)
            dw, dc = bare_decode(path)
            for fps, side in samplings:
                cw, cc, n, peak, status = check(path, fps, side)
                name = f"{fps or 'all'}@{side}"
                agg = totals.setdefault(name, [0.0, 0.0, 0.0, 0.0, 0.0, 0])
                for i, v in enumerate((secs, dw, dc, cw, cc)):
                    agg[i] += v
                agg[5] = max(agg[5], peak)
                print(f"{path.name:28} {name:>10} {secs:5.1f} {n:>9} {dw:8.2f} /{dc:7.2f} {cw:8.2f} /{cc:6.2f} "
                      f"{cc / secs:17.3f} {cw / dw:7.1f} /{cc / dc:5.1f} {peak / 2**20:9.0f}  {status}")
        for name, (secs, dw, dc, cw, cc, peak) in totals.items():
            print(f"all videos {name}: {secs:.1f} video-s, check {cc / secs:.3f} CPU-s per video-s, "
                  f"{cw / secs:.3f} wall-s per video-s; x{cw / dw:.1f} wall, x{cc / dc:.1f} CPU of the bare decode; "
                  f"tree peak {peak / 2**20:.0f} MiB (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()

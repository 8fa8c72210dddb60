"""Benchmark (issue 75, item 3): the frame pass on a Matroska file of many tiny packets.

``--packets`` 4-byte raw 2x2 frames at 1000 fps (made by copying /dev/zero: no encoding). Its frames
are made by the bare ffmpeg frame command (the baseline, run in the same invocation), then by
``extract_frames`` in ``fast`` (in-process probe and pass) and in ``exact`` (ffprobe + ffmpeg), each in
a child process. Peak memory is the whole process tree's (``peak_rss.run_measured``: the child and
every descendant summed, sampled every 20 ms; not ``ru_maxrss``, which a child inherits from its
parent at ``exec``); printed with its ratio to the baseline's, as is the wall time.

    python benchmarks/bench_many_packets.py [--packets 2000000]
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
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]  # this checkout; peak_rss


def measured(args: list[str]) -> tuple[str, int, float]:
    """Run ``args`` with this checkout first on the path: (its last stdout line, tree peak RSS bytes, seconds)."""
    from peak_rss import run_measured

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as err:
        done = run_measured(args, stdout=subprocess.PIPE, stderr=err, env=env)
        if done.returncode != 0:
            err.seek(0)
            sys.exit(f"{args[:3]} failed:\n{err.read().decode()[-3000:]}")
    lines = done.stdout.decode().strip().splitlines()
    return lines[-1] if lines else "", done.peak, done.seconds


def child(video: str, out: str, decode: str) -> None:
    from m5data.extract.probe import start_probe
    from m5data.extract.video import extract_frames

    path = Path(video)
    frames = extract_frames(path, Path(out), start_probe(path, decode), max_side=720, decode=decode)
    print(json.dumps({"frames": frames.count, "decode": frames.decode,
                      "fallback": getattr(frames, "fallback", None)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from m5data.extract.ffmpeg_frames import frames_command
    from m5data.extract.probe import probe
    from m5data.extract.video import ffmpeg_exe

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "tiny.mkv"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", "2x2", "-r",
                        "1000", "-i", "/dev/zero", "-frames:v", str(args.packets), "-c", "copy", str(video)],
                       check=True)
        print(f"{args.packets:,} raw 2x2 frames at 1000 fps in Matroska, {video.stat().st_size:,} bytes")
        (Path(tmp) / "bare").mkdir()
        command = frames_command(video, Path(tmp) / "bare", probe(video), fps=1.0, max_side=720, quality=90,
                                 max_frames=300, max_duration=300.0)
        _, base_peak, base_s = measured(command)
        print(f"  bare ffmpeg frame command (baseline): whole-tree peak {base_peak / 2**20:,.0f} MiB, {base_s:.2f} s")
        for decode in ("fast", "exact"):
            out, peak, seconds = measured([sys.executable, __file__, "--child", str(video), str(Path(tmp) / decode),
                                           decode])
            print(f"  extract_frames {decode:<5}: whole-tree peak {peak / 2**20:,.0f} MiB ({peak / base_peak:.1f}x), "
                  f"{seconds:.2f} s ({seconds / base_s:.1f}x); {out}")


if __name__ == "__main__":
    main()

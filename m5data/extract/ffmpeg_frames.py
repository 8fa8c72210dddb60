"""The frame pass as one ffmpeg process (``extract.video_decode = exact``, and the fallback of the
faster modes): its command, built with ffmpeg-python (``setpts -> fps=1:round=up -> [scale] ->
showinfo -> JPEG files``, :mod:`.video` says why each step), run while the JPEGs it writes are summed
against the byte cap, and the frame times its ``showinfo`` prints. The frame files are named by
:data:`FRAME_PATTERN`, in the image muxer's pattern syntax (the in-process pass names its files alike).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .decoding import decoder_options, jpeg_qscale
from .ffmpeg import MediaError, ffmpeg_exe, tail
from .probe import VideoInfo

FRAME_PATTERN = "%06d.jpg"

_PTS_TIME = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[0-9.]+)")


def showinfo_times(stderr: str) -> list[float]:
    """The time of each frame ``showinfo`` printed (seconds from the first frame), in frame order."""
    return [round(float(t), 6) for t in _PTS_TIME.findall(stderr)]


def frame_files(folder: Path) -> list[tuple[Path, int]]:
    """The JPEGs ffmpeg has written so far, in frame order, with their sizes."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".jpg"):
                try:
                    found.append((Path(entry.path), entry.stat().st_size))
                except FileNotFoundError:
                    pass
    return sorted(found)


CAP_POLL_S = 0.05  # how often a frame pass's folder is summed against its byte cap


def _run_capped(args: list[str], folder: Path, max_bytes: int, timeout: float, poll: float | None = None):
    """Run the frame pass, watching what it writes: stop ffmpeg once its JPEGs pass ``max_bytes``.

    Returns (return code, stderr, stopped): ``stopped`` is True when the cap ended the pass; the
    caller then keeps the frames that fit. ffmpeg's image muxer has no size limit of its own (``-fs``
    counts a single output file), so the folder is summed every ``poll`` seconds: it holds at most
    what ffmpeg writes in one poll past the cap, for that moment. Raises ``TimeoutExpired``
    (with the stderr so far) past ``timeout``. A pass that ends between two polls is not checked
    here: the caller sums what it wrote (``video._keep_within`` with ``whole=True``).
    """
    import tempfile
    import time

    poll = CAP_POLL_S if poll is None else poll

    with tempfile.TemporaryFile() as err:  # a file, not a pipe: no reader thread, nothing blocks ffmpeg
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        stopped = False
        try:
            while True:
                try:
                    proc.wait(timeout=poll)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if max_bytes and sum(size for _, size in frame_files(folder)) > max_bytes:
                    stopped = True
                    proc.kill()
                    proc.wait()
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    err.seek(0)
                    raise subprocess.TimeoutExpired(args, timeout, stderr=err.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        return proc.returncode, err.read(), stopped


def ffmpeg_pass(path: Path, tmp: Path, info: VideoInfo, *, fps: float, max_side: int, quality: int,
                 max_frames: int, max_duration: float, timeout: float, max_bytes: int, decode: str,
                 single_thread: bool) -> tuple[list[tuple[Path, int]], bool, bool, str]:
    """The frame pass as one ffmpeg process: (JPEGs with sizes, over the byte cap, every file whole, stderr)."""
    args = frames_command(path, tmp, info, fps=fps, max_side=max_side, quality=quality, max_frames=max_frames,
                          max_duration=max_duration, decode=decode, single_thread=single_thread)
    try:
        returncode, err, stopped = _run_capped(args, tmp, max_bytes, timeout)
    except subprocess.TimeoutExpired as exc:
        raise MediaError("ffmpeg timeout", f"frame pass over {timeout:g} s; {tail(exc.stderr or b'')}",
                         status="failed") from None
    stderr = err.decode("utf-8", "replace")
    found = frame_files(tmp)
    # A short pass can end before the first poll sees its folder over the cap: sum it now.
    over = not stopped and returncode == 0 and bool(max_bytes) and sum(n for _, n in found) > max_bytes
    if not (stopped or over) and returncode != 0:
        raise MediaError("ffmpeg failed", f"exit {returncode}: {tail(stderr)}")
    return found, stopped or over, over, stderr


def frames_command(path: Path, tmp: Path, info: VideoInfo, *, fps: float, max_side: int, quality: int,
                   max_frames: int, max_duration: float, decode: str = "exact", trace: bool = False,
                   single_thread: bool = False) -> list[str]:
    """The ffmpeg command of the frame pass: one JPEG per ``1/fps`` seconds into ``tmp``, with showinfo's
    timestamps on stderr. ``trace`` adds a showinfo before and one right after ``fps`` (every decoded
    frame, then every sampled one, with checksums: tests/support/framecheck.py tells from them which frame each
    second kept)."""
    import ffmpeg

    options = decoder_options(info.codec, decode, info.width, info.height, max_side)
    one = single_thread and decode != "exact"  # exact stays the command it always was
    stream = ffmpeg.input(str(path), t=max_duration, **options, **({"threads": 1} if one else {}))
    v = stream.video.filter("setpts", "PTS-STARTPTS")
    scale = {"w": f"if(gte(iw,ih),min({max_side},iw),-2)", "h": f"if(gte(iw,ih),-2,min({max_side},ih))"}
    # Scaling after fps scales only the sampled frames (24x fewer at 24 fps). Where a source
    # frame is repeated (a stream slower than the sampling: one frame held for 1,200 s), fps
    # emits the copies in one burst that ffmpeg holds at full size: scale first (the same
    # pixels) so that each copy is small: 300 copies of a 1080p frame, 618 -> 69 MB peak.
    slow = max_side and info.fps is not None and info.fps < fps
    if slow:
        v = v.filter("scale", **scale)
    if trace:
        v = v.filter("showinfo")
    v = v.filter("fps", fps=fps, round="up")
    if trace:
        v = v.filter("showinfo")
    if max_side and not slow:
        v = v.filter("scale", **scale)
    v = v.filter("showinfo")
    out = v.output(str(tmp / FRAME_PATTERN), **{"q:v": jpeg_qscale(quality), "qmin": 1,
                                               "fps_mode": "passthrough", "frames:v": max_frames,
                                               **({"filter_complex_threads": 1} if one else {})})
    args = ffmpeg.compile(out, cmd=ffmpeg_exe())
    args = [args[0], "-nostdin", "-hide_banner", "-loglevel", "info", *args[1:]]
    return args

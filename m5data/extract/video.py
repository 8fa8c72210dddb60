"""Video: one-frame-per-second JPEG extraction in a single ffmpeg pass (ffprobe answers first: probe.py).

The frame pass is one ffmpeg process per video, built with ffmpeg-python:

    setpts=PTS-STARTPTS -> fps=1:round=up -> [scale to max side] -> showinfo -> JPEG files

``setpts`` counts time from the first frame (a stream may start at 0.003 s or, in MPEG-TS, at
1.4 s). ``fps`` with ``round=up`` puts each source frame on the first output tick at or after it,
so tick k shows the frame on screen at t = k/fps (the first frame of second k in constant-rate
video; a frame held over several seconds of variable-rate video is repeated, as a viewer sees it),
and the end of the stream is rounded up too: a video of D seconds gives ceil(D * fps) frames
(9.5 s -> 10, fire2.mp4's 2.38 s -> 3; the default ``round=near`` would drop that last partial
second). ``showinfo`` prints each written frame's time, which becomes the recorded timestamps
(seconds from the first frame). ffprobe answers before the pass starts (see :class:`Probe`), so a
frame over ``max_pixels`` is refused without being decoded; the JPEGs written are summed while ffmpeg
runs and the pass is stopped past ``max_bytes`` (without the cap, one noise frame claiming
1,200 s wrote 600 full-size JPEGs, 863 MB).

``extract.video_decode``: "exact" is this ffmpeg pass. "fast" (the default) and "fastest" make the
same frames in-process with PyAV (frames_av.py), decoding only the source frames the kept seconds
need, so the kept pictures are the exact decode's ("fastest" leaves out deblocking too:
:data:`AV_DECODE_OPTIONS`); a stream that path does not reproduce falls back to this pass with
:data:`DECODE_OPTIONS`, one whose plan it cannot trust (damaged, malformed) to this pass in "exact"
(``Frames.fallback`` says why; measured in docs/extract.md).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from .decoding import AV_DECODE_OPTIONS, DECODE_MODES, DECODE_OPTIONS, LOWRES_CODECS, decoder_options, jpeg_qscale
from .ffmpeg import STDERR_TAIL, MediaError, ffmpeg_exe, ffprobe_exe, tail
from .probe import AvProbe, Probe, VideoInfo, probe

__all__ = ["AV_DECODE_OPTIONS", "DECODE_MODES", "DECODE_OPTIONS", "FRAME_PATTERN", "LOWRES_CODECS", "MANIFEST",
           "STDERR_TAIL", "AvProbe", "Frames", "MediaError", "Probe", "VideoInfo", "check_frame_size",
           "decoder_options", "expected_frames", "extract_frames", "ffmpeg_exe", "ffprobe_exe", "jpeg_qscale", "probe",
           "read_manifest", "tail"]

FRAME_PATTERN = "%06d.jpg"
MANIFEST = "frames.json"

_PTS_TIME = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[0-9.]+)")


def expected_frames(duration: float | None, fps: float, max_frames: int, max_duration: float) -> int | None:
    """How many frames a video of ``duration`` seconds should give: ceil(D * fps), within the limits."""
    if duration is None:
        return None
    return min(max_frames, math.ceil(min(duration, max_duration) * fps - 1e-6))


@dataclass
class Frames:
    """The frames of one video: a folder of JPEGs and when each was taken."""

    folder: Path
    timestamps: list[float]
    width: int | None
    height: int | None
    bytes: int
    truncated: bool  # the video was longer than max_duration / max_frames / max_bytes allowed
    reused: bool = False
    cut: str | None = None  # the cap that dropped frames (max_bytes, max_frames, max_duration) and how many, else None
    decode: str = "exact"  # the extract.video_decode mode that made the folder
    fallback: str | None = None  # why the in-process pass handed the video to ffmpeg (decode: the mode it ran in)

    @property
    def count(self) -> int:
        return len(self.timestamps)


def _manifest_params(fps: float, max_side: int, quality: int, max_frames: int, max_duration: float,
                     decode: str = "exact") -> dict:
    params = {"fps": fps, "max_side": max_side, "jpeg_quality": quality, "max_frames": max_frames,
              "max_duration": max_duration}
    return params if decode == "exact" else {**params, "decode": decode}  # exact: the manifests made before the mode


def _reusable(old: dict | None, params: dict, max_bytes: int) -> bool:
    """A finished folder stands for this pass: same parameters, within the byte budget, and not
    cut by a different budget (a folder made before the cap existed is reused when it fits). A
    folder decoded exactly stands for any mode; one decoded faster only for its own mode."""
    exact = {k: v for k, v in params.items() if k != "decode"}
    if old is None or old.get("params") not in (params, exact):
        return False
    if max_bytes and old.get("bytes", 0) > max_bytes:
        return False
    return not str(old.get("cut") or "").startswith("extract.max_item_bytes") or old.get("max_bytes") == max_bytes


def check_frame_size(info: VideoInfo, max_pixels: int) -> None:
    """Refuse a picture larger than ``max_pixels`` from the probe, before ffmpeg decodes a frame.

    A 1 MB file can hold a 14000x14000 frame: decoding it costs ffmpeg hundreds of MB per frame
    and gives JPEGs no reader opens (Pillow's bomb limit). Raises :class:`MediaError` (corrupt).
    """
    if max_pixels and info.width and info.height and info.width * info.height > max_pixels:
        raise MediaError("frame too large", f"{info.width}x{info.height} = {info.width * info.height:,} pixels "
                         f"per frame, over the extract.max_video_pixels limit of {max_pixels:,}; not decoded")


def _frame_files(folder: Path) -> list[tuple[Path, int]]:
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
    here: the caller sums what it wrote (``_keep_within`` with ``whole=True``).
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
                if max_bytes and sum(size for _, size in _frame_files(folder)) > max_bytes:
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


def _keep_within(files: list[tuple[Path, int]], max_bytes: int, whole: bool = False) -> list[tuple[Path, int]]:
    """Keep the longest run of frames from the first whose sizes sum to at most ``max_bytes``.

    ``whole=False``: ffmpeg was stopped at the cap, so its last file may be half written and is
    dropped first; ``whole=True``: the pass ended by itself (between two polls) and every file is whole."""
    kept, total = [], 0
    for path, size in (files if whole else files[:-1]):
        if total + size > max_bytes:
            break
        kept.append((path, size))
        total += size
    for path, _ in files[len(kept):]:
        path.unlink(missing_ok=True)
    return kept


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def extract_frames(path: Path, out_dir: Path, info: VideoInfo | Probe | AvProbe, *, fps: float = 1.0,
                   max_side: int = 0, quality: int = 90, max_frames: int = 300, max_duration: float = 300.0,
                   timeout: float = 300.0, max_pixels: int = 0, max_bytes: int = 0, decode: str = "exact",
                   single_thread: bool = False) -> Frames:
    """Decode ``path`` once and write one JPEG per ``1/fps`` seconds into ``out_dir``.

    The folder appears complete or not at all: frames go to a temp folder beside it, then a
    ``frames.json`` manifest, then one rename. A finished folder made with the same parameters is
    reused (a duplicate video, or a crash after the frames but before the table write).
    ``info`` may be a running :class:`Probe` (or an :class:`AvProbe`): its answer is awaited before
    any decoding, so that a file the probe finds broken, without a picture or with frames over
    ``max_pixels`` is never decoded. ``max_bytes`` (0 = no cap) bounds the JPEGs written: past it the
    pass is stopped and the frames that fit are kept (``Frames.cut`` says so); when not even one fits,
    the video is refused.
    ``decode`` is an ``extract.video_decode`` mode: "exact" runs ffmpeg, the others the in-process pass
    (frames_av.py); ``single_thread`` decodes on one thread in the modes other than "exact" (a pool
    with a worker per core: the same pixels without the decoder's own threads contending).

    Raises:
        MediaError: the probe's frame size is over ``max_pixels`` (status corrupt); ffmpeg failed
            (status corrupt, ffmpeg's stderr tail as detail), timed out (status failed) or decoded
            clearly fewer frames than the duration promises (truncated); the first frame alone is
            over ``max_bytes`` (status too_large); the file has sound but no picture (status absent).
    """
    params = _manifest_params(fps, max_side, quality, max_frames, max_duration, decode)
    old = read_manifest(out_dir)
    if _reusable(old, params, max_bytes):
        _resolve(info)
        return Frames(out_dir, old["timestamps"], old.get("width"), old.get("height"), old.get("bytes", 0),
                      old.get("truncated", False), reused=True, cut=old.get("cut"),
                      decode=old["params"].get("decode", "exact"), fallback=old.get("fallback"))
    info = _resolve(info)
    if not info.has_video:
        raise MediaError("no video stream", f"sound only (format {info.format_name})", status="absent")
    check_frame_size(info, max_pixels)
    tmp = out_dir.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{out_dir.name}")  # owner pid: swept once dead
    tmp.mkdir(parents=True)
    try:
        found, stopped, whole, stderr, why = None, False, True, "", None  # the in-process pass writes whole files
        if decode != "exact":
            from .frames_av import av_pass

            found, stopped, decode, why = av_pass(path, tmp, info, fps=fps, max_side=max_side, quality=quality,
                                                  max_frames=max_frames, max_duration=max_duration, timeout=timeout,
                                                  max_pixels=max_pixels, max_bytes=max_bytes, decode=decode,
                                                  single_thread=single_thread, pattern=FRAME_PATTERN)
            params = _manifest_params(fps, max_side, quality, max_frames, max_duration, decode)  # exact: untrusted
        if found is None:
            found, stopped, whole, stderr = _ffmpeg_pass(path, tmp, info, fps=fps, max_side=max_side,
                                                         quality=quality, max_frames=max_frames,
                                                         max_duration=max_duration, timeout=timeout,
                                                         max_bytes=max_bytes, decode=decode,
                                                         single_thread=single_thread)
        cut = None
        if stopped:
            found = _keep_within(found, max_bytes, whole=whole)
            if not found:
                raise MediaError("too large", f"the first frame alone is over the extract.max_item_bytes "
                                 f"budget of {max_bytes:,} bytes", status="too_large")
            cut = (f"extract.max_item_bytes: stopped after {len(found)} frames, "
                   f"{sum(n for _, n in found):,} of a {max_bytes:,}-byte budget")
        files = [f for f, _ in found]
        if not files:
            raise MediaError("no frames decoded", tail(stderr))
        stamps = [round(float(t), 6) for t in _PTS_TIME.findall(stderr)][:len(files)]
        if len(stamps) != len(files):  # the in-process pass, or showinfo lines lost: tick k is at k / fps
            stamps = [round(k / fps, 6) for k in range(len(files))]
        want = expected_frames(info.duration, fps, max_frames, max_duration)
        if cut is None and want is not None and len(files) < want - 1:
            raise MediaError("truncated video", f"decoded {len(files)} frames, duration {info.duration:.2f} s "
                             f"promises {want}; {tail(stderr, 300)}")
        width, height = _frame_size(files[0])
        size = sum(n for _, n in found)
        cut = cut if cut is not None else _limit_cut(info, len(files), fps, max_frames, max_duration)
        truncated = cut is not None
        manifest = {"params": params, "timestamps": stamps, "width": width, "height": height, "bytes": size,
                    "truncated": truncated, "cut": cut, "max_bytes": max_bytes, "pattern": FRAME_PATTERN,
                    **({"fallback": why} if why else {})}
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        again = read_manifest(out_dir)
        if not _reusable(again, params, max_bytes):  # else a twin video finished it meanwhile
            _publish_dir(tmp, out_dir)
        return Frames(out_dir, stamps, width, height, size, truncated, cut=cut, decode=decode, fallback=why)
    finally:
        if isinstance(info, Probe):
            info.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _ffmpeg_pass(path: Path, tmp: Path, info: VideoInfo, *, fps: float, max_side: int, quality: int,
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
    found = _frame_files(tmp)
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


def _frame_size(first: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(first) as image:
            return image.size
    except Image.DecompressionBombError as exc:  # the probe gave no size; ffmpeg wrote a bomb
        raise MediaError("frame too large", str(exc)) from None


def _limit_cut(info: VideoInfo, kept: int, fps: float, max_frames: int, max_duration: float) -> str | None:
    """Why a pass that stopped at ``extract.max_frames`` or ``extract.max_duration`` kept fewer frames than
    the video gives, else None."""
    full = math.ceil((info.duration or 0) * fps - 1e-6)
    if full > max_frames:
        return f"extract.max_frames: {kept} frames kept of the {full} that {info.duration:g} s give"
    if (info.duration or 0) > max_duration:
        return f"extract.max_duration: the first {max_duration:g} s of {info.duration:g} s"
    return None


def _resolve(info: VideoInfo | Probe | AvProbe) -> VideoInfo:
    return info.result() if isinstance(info, (Probe, AvProbe)) else info


def _publish_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an older folder there (other parameters) is swapped out."""
    if final.exists():
        trash = final.with_name(f".old-{final.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final, trash)
        os.replace(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

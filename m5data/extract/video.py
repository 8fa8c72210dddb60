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
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .decoding import AV_DECODE_OPTIONS, DECODE_MODES, DECODE_OPTIONS, LOWRES_CODECS, decoder_options, jpeg_qscale
from .ffmpeg import STDERR_TAIL, MediaError, ffmpeg_exe, ffprobe_exe, tail
from .ffmpeg_frames import FRAME_PATTERN, ffmpeg_pass, showinfo_times
from .probe import AvProbe, Probe, VideoInfo, probe

__all__ = ["AV_DECODE_OPTIONS", "DECODE_MODES", "DECODE_OPTIONS", "FRAME_PATTERN", "LOWRES_CODECS", "MANIFEST",
           "STDERR_TAIL", "AvProbe", "Frames", "MediaError", "Probe", "VideoInfo", "check_frame_size",
           "decoder_options", "expected_frames", "extract_frames", "ffmpeg_exe", "ffprobe_exe", "jpeg_qscale", "probe",
           "read_manifest", "tail"]

MANIFEST = "frames.json"


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
            found, stopped, whole, stderr = ffmpeg_pass(path, tmp, info, fps=fps, max_side=max_side,
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
        stamps = showinfo_times(stderr)[:len(files)]
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

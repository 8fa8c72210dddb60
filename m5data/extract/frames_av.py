"""Video frames decoded in-process with PyAV, decoding only the source frames that a kept second needs.

First the video stream's packets are read without decoding (kept in memory up to :data:`HOLD_BYTES`,
else the file is read again): from their timestamps the pass finds, as the exact ffmpeg pass's
``setpts=PTS-STARTPTS, fps=FPS:round=up`` does, which source frame each output tick k shows (the last
frame at or before k/fps, counted from the first frame; a frame held over several ticks is shown by
each, and a video of D seconds gives ceil(D * fps) ticks). Then they are decoded: a packet whose frame
no tick shows goes to the decoder with ``skip_frame = NONREF``, so it is dropped when no other frame
refers to it (an H.264/HEVC non-reference B-frame, a droppable VP8 frame) and decoded otherwise (an
intra-only codec's, MJPEG's, is not sent at all, nor, in VP8 and VP9, whose keyframes reset every
reference, one between the last kept frame and the next keyframe); the frames the ticks show and every
frame they are predicted from are decoded in full, so the kept pictures are the exact decode's. Each
kept frame is scaled to the stored size (the scale filter's rule and bicubic filter), turned upright as
the ffmpeg CLI's autorotate turns it, and encoded by the same mjpeg encoder at the same ``q:v`` as the
ffmpeg pass. The pass stops once the last tick is written (the rest of a long video is not decoded).

Guards, as the ffmpeg pass has them: the time limit is checked between packets, a decoded picture over
``max_pixels`` is refused, the JPEG bytes are summed as they are written and the pass stops before
``max_bytes``. A stream this path cannot reproduce exactly (a packet without a timestamp, a rotation
that is not a quarter turn) raises :class:`Unsupported`: the caller runs the ffmpeg pass instead.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .ffmpeg import MediaError

__all__ = ["HOLD_BYTES", "AvPass", "FramePlan", "Unsupported", "av_frames", "plan_frames", "stored_size"]

HOLD_BYTES = 64 << 20  # packets kept from the planning read for the decoding one; a larger video is read twice
_BICUBIC, _ACCURATE_RND = 0x4, 0x40000  # libswscale's SWS_BICUBIC, SWS_ACCURATE_RND
# Codecs whose keyframes reset every reference (VP8: last, golden and altref; VP9: all eight slots): a
# frame after the last kept one before a keyframe serves nothing kept. (An H.264/HEVC keyframe flag
# may mark an open-GOP I-frame whose leading frames refer back past it.)
KEYFRAME_RESETS = frozenset({"vp8", "vp9"})


class Unsupported(Exception):
    """The stream has something the in-process pass does not reproduce; use the ffmpeg pass."""


@dataclass
class FramePlan:
    """Which source frame each output tick shows."""

    ticks: dict[int, list[int]]  # source pts -> the ticks (0-based) that show it
    sources: list[float]  # per tick, the time of the source frame it shows (seconds from the first frame)
    frames: int  # source frames in the stream (packets with a timestamp)
    dead: set[int] = field(default_factory=set)  # packets (by read order) that no kept frame needs

    @property
    def count(self) -> int:
        return len(self.sources)


@dataclass
class AvPass:
    """What the in-process pass wrote: the JPEGs (in tick order, with their sizes) and what it decoded."""

    files: list[tuple[Path, int]] = field(default_factory=list)
    stopped: bool = False  # the byte cap ended the pass
    decoded: int = 0  # frames the decoder returned
    errors: int = 0  # packets the decoder refused
    plan: FramePlan | None = None


def stored_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The frame pass's scale filter (``if(gte(iw,ih),min(M,iw),-2)`` ...): the longer side at most
    ``max_side``, the other kept in proportion and rounded to an even number as ``-2`` rounds it."""
    if not max_side:
        return width, height
    if width >= height:
        w = min(max_side, width)
        return w, 2 * ((w * height + width) // (2 * width))
    h = min(max_side, height)
    return 2 * ((h * width + height) // (2 * height)), h


def _video_stream(container):
    """The stream the ffmpeg CLI picks: the video stream with the most pixels that is not a cover picture."""
    from av.stream import Disposition

    streams = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
    if not streams:
        raise MediaError("no video stream", f"format {container.format.name}", status="absent")
    return max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


def _check_deadline(deadline: float, timeout: float, path: Path) -> None:
    if time.monotonic() > deadline:
        raise MediaError("ffmpeg timeout", f"{path.name}: in-process frame pass over {timeout:g} s", status="failed")


def plan_frames(stamps: list[tuple[int, int]], time_base: Fraction, rate: Fraction | None, *, fps: float,
                max_frames: int, max_duration: float) -> FramePlan:
    """Which source frame each tick shows, from the packets' (pts, duration) in ``time_base`` units."""
    if not stamps:
        return FramePlan({}, [], 0)
    stamps = sorted(stamps)
    start = stamps[0][0]
    times = [(pts - start) * time_base for pts, _ in stamps]
    last_duration = stamps[-1][1]
    end = times[-1] + (last_duration * time_base if last_duration else (1 / Fraction(rate) if rate else 0))
    step = Fraction(fps).limit_denominator(1_000_000)
    limit = min(end, Fraction(max_duration))
    count = min(max_frames, max(1, math.ceil(limit * step - Fraction(1, 1_000_000))))
    ticks: dict[int, list[int]] = {}
    sources: list[float] = []
    j = 0
    for k in range(count):
        while j + 1 < len(times) and times[j + 1] * step <= k:
            j += 1
        ticks.setdefault(stamps[j][0], []).append(k)
        sources.append(round(float(times[j]), 6))
    return FramePlan(ticks, sources, len(stamps))


def _read_plan(path: Path, container, stream, deadline: float, timeout: float,
               **limits) -> tuple[FramePlan, list | None]:
    """Read every packet of ``stream`` (no decoding): the plan, and the packets themselves when they
    fit in :data:`HOLD_BYTES` (else None: the caller reads the file again)."""
    stamps: list[tuple[int, int]] = []
    order: list[tuple[int | None, bool]] = []  # per packet read: its pts (None: not a frame), keyframe
    held: list | None = []
    size = 0
    for n, packet in enumerate(container.demux(stream)):
        if n % 256 == 0:
            _check_deadline(deadline, timeout, path)
        if held is not None:
            size += packet.size
            held.append(packet)
            if size > HOLD_BYTES:
                held = None
        frame = packet.size > 0 and not packet.is_discard  # not the flush packet nor a frame an edit list cuts
        order.append((packet.pts if frame else None, packet.is_keyframe))
        if not frame:
            continue
        if packet.pts is None:
            raise Unsupported(f"{path.name}: a packet without a timestamp")
        stamps.append((packet.pts, packet.duration or 0))
    plan = plan_frames(stamps, stream.time_base, stream.average_rate or stream.base_rate, **limits)
    if stream.codec_context.codec and stream.codec_context.codec.canonical_name in KEYFRAME_RESETS:
        plan.dead = _dead_ends(order, plan.ticks)
    return plan, held


def _dead_ends(order: list[tuple[int | None, bool]], ticks: dict) -> set[int]:
    """The packets (by read order) between the last kept frame and the next keyframe: nothing kept needs them."""
    dead, wanted = set(), False  # wanted: a kept frame follows before the next keyframe
    for n in range(len(order) - 1, -1, -1):
        pts, key = order[n]
        kept = pts in ticks
        if pts is not None and not kept and not wanted:
            dead.add(n)
        wanted = False if key else wanted or kept
    return dead


def av_frames(path: Path, out: Path, *, fps: float, max_side: int, qscale: int, max_frames: int,
              max_duration: float, timeout: float, max_pixels: int = 0, max_bytes: int = 0,
              options: dict[str, str] | None = None, single_thread: bool = False,
              pattern: str = "%06d.jpg") -> AvPass:
    """Write one JPEG per tick of ``path`` into ``out`` (``pattern`` numbered from 1), decoding only what
    the kept frames need (module docstring); ``options`` are the decoder's (libavcodec names).
    Raises :class:`MediaError` (timeout, frame too large, unreadable) or :class:`Unsupported`."""
    import av

    deadline = time.monotonic() + timeout
    done = AvPass()
    written, total, last = 0, 0, b""  # ticks written so far, their bytes, the newest JPEG

    def write(data: bytes, upto: int) -> bool:
        """Write ticks ``written`` .. ``upto`` (a gap before a frame shows the frame before it, as fps
        repeats it); False once the byte cap is reached."""
        nonlocal written, total
        while written <= upto:
            if max_bytes and total + len(data) > max_bytes:
                done.stopped = True
                return False
            target = out / (pattern % (written + 1))
            target.write_bytes(data)
            done.files.append((target, len(data)))
            total += len(data)
            written += 1
        return True

    encoders: dict[tuple[int, int], object] = {}
    container = None
    try:
        container = av.open(str(path))
        stream = _video_stream(container)
        plan, held = _read_plan(path, container, stream, deadline, timeout, fps=fps, max_frames=max_frames,
                                max_duration=max_duration)
        done.plan = plan
        if not plan.count:
            return done
        if held is None:  # too large to keep: read it again
            container.close()
            container = None
            container = av.open(str(path))
            stream = _video_stream(container)
        ctx = stream.codec_context
        ctx.options = dict(options or {})
        ctx.thread_count = 1 if single_thread else 0
        ctx.thread_type = "SLICE" if single_thread else "AUTO"
        intra = ctx.codec.intra_only
        for n, packet in enumerate(held if held is not None else container.demux(stream)):
            if n % 16 == 0:
                _check_deadline(deadline, timeout, path)
            kept = packet.pts in plan.ticks or packet.size == 0
            if not kept and (intra or n in plan.dead):  # nothing refers to any frame (MJPEG), or to these
                continue
            ctx.skip_frame = "DEFAULT" if kept else "NONREF"
            try:
                frames = ctx.decode(packet)
            except av.error.FFmpegError:  # a damaged packet: ffmpeg goes on past it too
                done.errors += 1
                continue
            for frame in frames:
                done.decoded += 1
                shown = plan.ticks.get(frame.pts)
                if not shown or shown[-1] < written:
                    continue
                if frame.rotation % 90:
                    raise Unsupported(f"{path.name}: a picture rotated by {frame.rotation} degrees")
                if max_pixels and frame.width * frame.height > max_pixels:
                    raise MediaError("frame too large", f"{path.name}: a decoded frame of {frame.width}x"
                                     f"{frame.height} = {frame.width * frame.height:,} pixels, over the "
                                     f"extract.max_video_pixels limit of {max_pixels:,}")
                data = _jpeg(frame, encoders, max_side, qscale)
                if not write(last or data, shown[0] - 1) or not write(data, shown[-1]):
                    return done
                last = data
                if written >= plan.count:
                    return done
    except av.error.FFmpegError as exc:
        if not done.files:
            raise MediaError("unreadable video", f"{path.name}: {exc}") from None
        done.errors += 1
    finally:
        if container is not None:
            container.close()
    return done


def _jpeg(frame, encoders: dict, max_side: int, qscale: int) -> bytes:
    """``frame`` turned upright, scaled to the stored size and encoded as ffmpeg's ``-q:v qscale`` JPEG
    (full-range 4:2:0)."""
    import av

    turns = round(-frame.rotation / 90) % 4  # clockwise quarter turns, as the ffmpeg CLI's autorotate
    upright = stored_size(*((frame.height, frame.width) if turns % 2 else (frame.width, frame.height)), max_side)
    size = (upright[1], upright[0]) if turns % 2 else upright
    if turns and (size[0] % 2 or size[1] % 2):  # _turn keeps 4:2:0 planes whole (frame_max_side = 0, odd sizes)
        raise Unsupported(f"a {size[0]}x{size[1]} picture to turn")
    encoder = encoders.get(upright)
    if encoder is None:
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = upright
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        encoder.qscale = True  # a fixed quantiser: the frame's own quality is 0, so qmin = qmax = q decides it
        encoder.qmin = encoder.qmax = qscale
        encoders[upright] = encoder
    # bicubic as the scale filter; accurate rounding: this swscale's fast path leaves a flat grey's chroma
    # at 127/128 where the ffmpeg pass's gives 128 (one grey level, but SSIM 0.956 on a black frame)
    small = frame.reformat(size[0], size[1], "yuvj420p", interpolation=_BICUBIC | _ACCURATE_RND)
    if turns:
        small = _turn(small, turns)
    return b"".join(bytes(p) for p in encoder.encode(small))


def _turn(frame, turns: int):
    """A yuvj420p ``frame`` of even size turned by ``turns`` quarter turns clockwise (each plane alike)."""
    import av
    import numpy as np

    w, h = frame.width, frame.height
    flat = frame.to_ndarray().reshape(-1)
    y, u, v = np.split(flat, [w * h, w * h + w * h // 4])
    planes = [np.rot90(p.reshape(rows, cols), -turns) for p, rows, cols in
              ((y, h, w), (u, h // 2, w // 2), (v, h // 2, w // 2))]
    w2, h2 = (h, w) if turns % 2 else (w, h)
    return av.VideoFrame.from_ndarray(np.concatenate([p.reshape(-1) for p in planes]).reshape(h2 * 3 // 2, w2),
                                      format="yuvj420p")

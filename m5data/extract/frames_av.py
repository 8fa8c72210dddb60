"""Video frames decoded in-process with PyAV, decoding only the source frames that a kept second needs.

First the video stream's packets are read without decoding: from their timestamps a running plan
(:class:`Planner`) finds, as the exact ffmpeg pass's ``setpts=PTS-STARTPTS, fps=FPS:round=up`` does,
which source frame each output tick k shows (the last frame at or before k/fps, counted from the first
frame; a frame held over several ticks is shown by each, and a video of D seconds gives ceil(D * fps)
ticks). The plan holds one entry per tick and a few timestamps (the decoder's reordering), never one per
packet, and the read stops once the last tick's frame is known; a stream with more than
:data:`MAX_PACKETS` packets before that goes to the ffmpeg pass. The first :data:`HOLD_PACKETS`
packets (at most :data:`HOLD_BYTES`) are kept for the decoding read, else the file is read again.
Then they are decoded: a packet whose frame no tick shows goes to the decoder with ``skip_frame =
NONREF``, so it is dropped when no other frame refers to it (an H.264/HEVC non-reference B-frame, a
droppable VP8 frame) and decoded otherwise (an intra-only codec's, MJPEG's, is not sent at all, nor, in
VP8 and VP9, whose keyframes reset every reference, one between the last kept frame and the next
keyframe); the frames the ticks show and every frame they are predicted from are decoded in full, so
the kept pictures are the exact decode's. Each kept frame is scaled to the stored size (the scale
filter's rule and bicubic filter), turned upright as the ffmpeg CLI's autorotate turns it, and encoded
by the same mjpeg encoder at the same ``q:v`` as the ffmpeg pass. The pass stops once the last tick is
written (the rest of a long video is not decoded).

Guards, as the ffmpeg pass has them: the time limit is checked between packets, a decoded picture over
``max_pixels`` is refused, the JPEG bytes are summed as they are written and the pass stops before
``max_bytes``. A stream this path does not reproduce (a rotation that is not a quarter turn, more
packets than :data:`MAX_PACKETS`) raises :class:`Unsupported`: the caller runs the ffmpeg pass instead.
A stream whose plan cannot be trusted raises :class:`Untrusted` (the caller runs the exact ffmpeg
pass): a damaged one (the decoder refuses a packet or conceals an error in a frame it decodes, a
packet or the demuxer reports corruption) or a malformed one (a packet without a timestamp, two with
the same one, one later than the decoder's reordering allows, decoded frames out of order or missing,
or packets spanning other seconds than the duration the header gives). On such streams the faster
decode may keep other pictures or other source frames than ffmpeg's (SSIM 0.76-0.89 on fuzzed files).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .decoding import AV_DECODE_OPTIONS, decoder_options, jpeg_qscale
from .ffmpeg import MediaError
from .frameplan import FramePlan, Planner, Unsupported, Untrusted, plan_frames

__all__ = ["HOLD_BYTES", "HOLD_PACKETS", "MAX_PACKETS", "AvPass", "FramePlan", "Planner", "Unsupported", "Untrusted",
           "av_frames", "av_pass", "plan_frames", "stored_size"]

HOLD_BYTES = 64 << 20  # packets kept from the planning read for the decoding one; a larger video is read twice
HOLD_PACKETS = 16_384  # ... and at most this many (each costs ~0.5 KB besides its bytes: 2M tiny ones took 1.7 GB)
MAX_PACKETS = 200_000  # video packets read to plan one video (1,000 a second for 200 s); more: the ffmpeg pass
_BICUBIC, _ACCURATE_RND = 0x4, 0x40000  # libswscale's SWS_BICUBIC, SWS_ACCURATE_RND
# Codecs whose keyframes reset every reference (VP8: last, golden and altref; VP9: all eight slots): a
# frame after the last kept one before a keyframe serves nothing kept. (An H.264/HEVC keyframe flag
# may mark an open-GOP I-frame whose leading frames refer back past it.)
KEYFRAME_RESETS = frozenset({"vp8", "vp9"})


@dataclass
class AvPass:
    """What the in-process pass wrote: the JPEGs (in tick order, with their sizes) and what it decoded."""

    files: list[tuple[Path, int]] = field(default_factory=list)
    stopped: bool = False  # the byte cap ended the pass
    decoded: int = 0  # frames the decoder returned
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
    best = max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0)
               if s.codec_context else 0)
    if best.codec_context is None or best.codec_context.codec is None:
        raise Unsupported("no decoder for the video stream")
    return best


def _check_deadline(deadline: float, timeout: float, path: Path) -> None:
    if time.monotonic() > deadline:
        raise MediaError("ffmpeg timeout", f"{path.name}: in-process frame pass over {timeout:g} s", status="failed")


def _read_plan(path: Path, container, stream, deadline: float, timeout: float, max_packets: int,
               **limits) -> tuple[FramePlan, list | None]:
    """Read ``stream``'s packets (no decoding) until every tick's frame is known: the plan, and the
    packets read when they fit in :data:`HOLD_PACKETS` and :data:`HOLD_BYTES` (else None: read again)."""
    planner = Planner(stream.time_base, stream.average_rate or stream.base_rate,
                      keys=stream.codec_context.codec.canonical_name in KEYFRAME_RESETS, **limits)
    held: list | None = []
    size = 0
    for n, packet in enumerate(container.demux(stream)):
        if n % 256 == 0:
            _check_deadline(deadline, timeout, path)
        if n >= max_packets:
            raise Unsupported(f"over {max_packets:,} video packets before the last second's frame")
        if packet.is_corrupt:
            raise Untrusted(f"a packet flagged corrupt (video packet {n + 1})")
        if held is not None:
            size += packet.size
            held.append(packet)
            if size > HOLD_BYTES or len(held) > HOLD_PACKETS:
                held = None
        if packet.size == 0 or packet.is_discard:  # the flush packet, a frame an edit list cuts
            continue
        if packet.pts is None:
            raise Untrusted(f"a packet without a timestamp (video packet {n + 1})")
        planner.add(packet.pts, packet.duration or 0, packet.is_keyframe)
        if planner.done:
            break
    return planner.finish(), held


def _check_span(plan: FramePlan, duration: float | None, fps: float, max_frames: int, max_duration: float) -> None:
    """The ticks the packets give against those the header's ``duration`` promises (as ``expected_frames``)."""
    if duration is None or not plan.count:
        return
    want = min(max_frames, math.ceil(min(duration, max_duration) * fps - 1e-6))
    if abs(plan.count - want) > 1:
        raise Untrusted(f"the packets cover {plan.span:.2f} s ({plan.count} frames), the header says "
                        f"{duration:.2f} s ({want})")


def _decoded(ctx, packets, plan: FramePlan, done: AvPass, deadline: float, timeout: float, path: Path):
    """The frames the kept ticks need, decoded from ``packets`` in presentation order (module docstring);
    :class:`Untrusted` on a refused packet, a concealed error, or frames out of order."""
    import av

    intra = ctx.codec.intra_only
    last = None

    def checked(frames):
        nonlocal last
        for frame in frames:
            done.decoded += 1
            if frame.is_corrupt:
                raise Untrusted(f"the decoder concealed an error in the frame at pts {frame.pts}")
            if frame.pts is None or (last is not None and frame.pts <= last):
                raise Untrusted(f"a decoded frame at pts {frame.pts} after {last}")
            last = frame.pts
            yield frame

    for n, packet in enumerate(packets):
        if n % 16 == 0:
            _check_deadline(deadline, timeout, path)
        if packet.size == 0:  # the flush packet: flushed below
            continue
        if packet.pts is None:
            raise Untrusted("a packet without a timestamp")
        kept = packet.pts in plan.ticks
        if not kept and (intra or not plan.needed(packet.pts)):  # nothing refers to any frame (MJPEG), or to these
            continue
        ctx.skip_frame = "DEFAULT" if kept else "NONREF"
        try:
            frames = ctx.decode(packet)
        except av.error.FFmpegError as exc:
            raise Untrusted(f"the decoder refused a packet ({exc})") from None
        yield from checked(frames)
    ctx.skip_frame = "DEFAULT"
    try:
        frames = ctx.decode(None)
    except av.error.FFmpegError as exc:
        raise Untrusted(f"the decoder failed at the end ({exc})") from None
    yield from checked(frames)


def av_frames(path: Path, out: Path, *, fps: float, max_side: int, qscale: int, max_frames: int,
              max_duration: float, timeout: float, max_pixels: int = 0, max_bytes: int = 0,
              options: dict[str, str] | None = None, single_thread: bool = False,
              pattern: str = "%06d.jpg", duration: float | None = None, max_packets: int | None = None) -> AvPass:
    """Write one JPEG per tick of ``path`` into ``out`` (``pattern`` numbered from 1), decoding only what
    the kept frames need (module docstring); ``options`` are the decoder's (libavcodec names); ``duration``
    the header's (the probe's), checked against the packets; ``max_packets`` :data:`MAX_PACKETS` if None. Raises :class:`MediaError` (timeout, frame
    too large, unreadable), :class:`Untrusted` or :class:`Unsupported` (with the reason)."""
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
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError("unreadable video", f"{path.name}: {exc}") from None
    try:
        stream = _video_stream(container)
        plan, held = _read_plan(path, container, stream, deadline, timeout, max_packets or MAX_PACKETS, fps=fps,
                                max_frames=max_frames, max_duration=max_duration)
        done.plan = plan
        _check_span(plan, duration, fps, max_frames, max_duration)
        if not plan.count:
            return done
        if held is None:  # too many to keep: read it again
            container.close()
            container = av.open(str(path))
            stream = _video_stream(container)
        ctx = stream.codec_context
        ctx.options = dict(options or {})
        ctx.thread_count = 1 if single_thread else 0
        ctx.thread_type = "SLICE" if single_thread else "AUTO"
        for frame in _decoded(ctx, held if held is not None else container.demux(stream), plan, done, deadline,
                              timeout, path):
            shown = plan.ticks.get(frame.pts)
            if not shown or shown[-1] < written:
                continue
            if frame.rotation % 90:
                raise Unsupported(f"a picture rotated by {frame.rotation} degrees")
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
    except av.error.FFmpegError as exc:  # the demuxer gave up part-way: ffmpeg's reading of it decides
        raise Untrusted(f"libavformat: {exc}") from None
    finally:
        container.close()
    raise Untrusted(f"{plan.count - written} of {plan.count} planned frames never came out of the decoder")


def av_pass(path: Path, tmp: Path, info, *, decode: str, quality: int, max_side: int,
            **params) -> tuple[list[tuple[Path, int]] | None, bool, str, str | None]:
    """The frame pass in-process for ``extract_frames`` (video.py): (JPEGs with sizes, stopped at the byte cap,
    the mode the ffmpeg pass is to run in, why); JPEGs None for a stream the ffmpeg pass is to decode
    instead: in the same ``decode`` mode (:class:`Unsupported`), or ``exact`` (:class:`Untrusted`)."""
    try:
        done = av_frames(path, tmp, max_side=max_side, qscale=jpeg_qscale(quality), duration=info.duration,
                         options=decoder_options(info.codec, decode, info.width, info.height, max_side,
                                                 AV_DECODE_OPTIONS), **params)
    except Unsupported as exc:
        for stale in tmp.iterdir():
            stale.unlink()
        untrusted = isinstance(exc, Untrusted)
        return None, False, "exact" if untrusted else decode, f"{'untrusted' if untrusted else 'unsupported'}: {exc}"
    return done.files, done.stopped, decode, None


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

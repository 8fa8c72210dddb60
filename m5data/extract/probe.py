"""ffprobe: what one media file holds (streams, duration, rate, size), read before any decoding."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .ffmpeg import MediaError, ffprobe_exe, tail

__all__ = ["AvProbe", "Probe", "VideoInfo", "probe", "start_probe"]

# ffprobe format names that are still images, not videos (a JPEG probes as a one-frame "video")
_IMAGE_FORMATS = re.compile(r"(^|,)(image2|\w+_pipe|gif|webp|apng|png|bmp|tiff?)($|,)")


@dataclass
class VideoInfo:
    """What ffprobe says about one video file."""

    duration: float | None  # seconds (video stream, else container)
    fps: float | None
    width: int | None
    height: int | None
    codec: str | None
    has_audio: bool
    start: float = 0.0  # video stream start time, seconds
    audio_codec: str | None = None
    audio_channels: int | None = None
    format_name: str = ""
    extra: dict = field(default_factory=dict)
    has_video: bool = True  # False: a container with sound only (its picture is recorded absent)


def _rate(text: str | None) -> float | None:
    try:
        value = float(Fraction(text)) if text else 0.0
    except (ValueError, ZeroDivisionError):
        return None
    return value if 0 < value <= 1000 else None


def _seconds(value) -> float | None:
    if value in (None, "", "N/A"):
        return None
    if isinstance(value, str) and ":" in value:  # Matroska stream tag DURATION "00:00:30.003000000"
        h, m, s = value.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) and out >= 0 else None


class _Answer:
    """A probe's answer, read once: the :class:`VideoInfo`, or the :class:`MediaError` raised again on every call."""

    _info: VideoInfo | None = None
    _error: MediaError | None = None

    def _settle(self, read) -> None:
        try:
            self._info = read()
        except MediaError as exc:
            self._error = exc

    def _answer(self) -> VideoInfo:
        if self._error is not None:
            raise self._error
        return self._info


class Probe(_Answer):
    """ffprobe on one file, started at once (the caller may prepare other work meanwhile).

    ``result()`` waits for it and returns the :class:`VideoInfo`, or raises :class:`MediaError`
    for empty, unreadable or non-video files (the same error on every call).
    """

    def __init__(self, path: Path, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self._info: VideoInfo | None = None
        self._error: MediaError | None = None
        self._proc = None
        if path.stat().st_size == 0:
            self._error = MediaError("zero-length file", "0 bytes")
            return
        cmd = [ffprobe_exe(), "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def result(self) -> VideoInfo:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                out, err = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self._error = MediaError("ffprobe timeout", f"no answer in {self.timeout:.0f} s", status="failed")
            else:
                self._settle(lambda: _parse_probe(proc.returncode, out, err))
        return self._answer()

    def close(self) -> None:
        """Stop ffprobe if its answer is no longer wanted."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.communicate()
            self._proc = None
            self._error = MediaError("ffprobe stopped", "its answer was not awaited", status="failed")


class AvProbe(_Answer):
    """The same facts as :class:`Probe`, read in-process by PyAV (libavformat, as ffprobe reads them):
    no process to start. Read on ``result()``; ``timeout`` bounds libavformat's reading of the headers."""

    def __init__(self, path: Path, timeout: float = 60.0):
        self.path = path
        self.timeout = timeout
        self._info: VideoInfo | None = None
        self._error: MediaError | None = None

    def result(self) -> VideoInfo:
        if self._info is None and self._error is None:
            self._settle(self._read)
        return self._answer()

    def _read(self) -> VideoInfo:
        import av

        if self.path.stat().st_size == 0:
            raise MediaError("zero-length file", "0 bytes")
        started = time.monotonic()
        try:
            with av.open(str(self.path), timeout=self.timeout) as container:
                data = _av_facts(container)
        except av.error.FFmpegError as exc:
            if time.monotonic() - started >= self.timeout:
                raise MediaError("ffprobe timeout", f"no answer in {self.timeout:.0f} s (in-process)",
                                 status="failed") from None
            raise MediaError("unreadable video", f"libavformat: {exc}") from None
        return _video_info(data)

    def close(self) -> None:
        """Nothing runs between calls (the :class:`Probe` interface)."""


def _av_facts(container) -> dict:
    """ffprobe's ``-show_format -show_streams`` JSON fields that :func:`_video_info` reads, from a PyAV container
    (times printed as ffprobe prints them: seconds with 6 decimals)."""
    from av.stream import Disposition

    def seconds(value, base) -> str | None:
        return None if value is None else f"{float(value * base):f}"

    def rate(value) -> str | None:
        return None if not value else f"{value.numerator}/{value.denominator}"

    streams = []
    for s in container.streams:
        if s.type not in ("video", "audio"):
            continue
        ctx = s.codec_context  # None for a codec libavcodec does not know (ffprobe's JSON then gives no name)
        entry = {"codec_type": s.type, "codec_name": ctx.codec.canonical_name if ctx and ctx.codec else None,
                 "duration": seconds(s.duration, s.time_base), "start_time": seconds(s.start_time, s.time_base),
                 "tags": dict(s.metadata),
                 "disposition": {"attached_pic": int(bool(s.disposition & Disposition.attached_pic))}}
        if s.type == "video":
            entry.update(width=ctx and ctx.width or None, height=ctx and ctx.height or None,
                         avg_frame_rate=rate(s.average_rate), r_frame_rate=rate(s.base_rate))
        else:
            entry["channels"] = ctx.channels if ctx is not None else None  # PyAV gives no codec parameters then
        streams.append(entry)
    fmt = {"format_name": container.format.name, "duration": seconds(container.duration, Fraction(1, 1_000_000)),
           "bit_rate": str(container.bit_rate) if container.bit_rate else None}
    return {"format": fmt, "streams": streams}


def start_probe(path: Path, decode: str, timeout: float = 60.0) -> Probe | AvProbe:
    """The probe of a video whose frames ``extract.video_decode = decode`` will make: ffprobe for "exact"
    (today's facts from today's tool), else in-process (PyAV decodes those frames anyway)."""
    return Probe(path, timeout) if decode == "exact" else AvProbe(path, timeout)


def probe(path: Path, timeout: float = 60.0) -> VideoInfo:
    """Run ffprobe on a video; raise :class:`MediaError` for empty, unreadable or non-video files."""
    return Probe(path, timeout).result()


def _parse_probe(returncode: int, stdout: bytes, stderr: bytes) -> VideoInfo:
    if returncode != 0:
        raise MediaError("unreadable video", f"ffprobe: {tail(stderr) or 'exit ' + str(returncode)}")
    return _video_info(json.loads(stdout or b"{}"))


def _video_info(data: dict) -> VideoInfo:
    """The :class:`VideoInfo` of ffprobe's ``-show_format -show_streams`` JSON (or the same facts from PyAV)."""
    fmt = data.get("format", {})
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    format_name = fmt.get("format_name", "")
    if video is None and audio is None:
        raise MediaError("no video stream", f"no audio stream either; format {format_name or 'unknown'}")
    if video is None:  # sound only (an mp3, an audio-only MP4 or WebM): the caller records the picture absent
        return VideoInfo(
            duration=(_seconds(audio.get("duration")) or _seconds(audio.get("tags", {}).get("DURATION"))
                      or _seconds(fmt.get("duration"))),
            fps=None, width=None, height=None, codec=None, has_audio=True,
            start=_seconds(audio.get("start_time")) or 0.0, audio_codec=audio.get("codec_name"),
            audio_channels=audio.get("channels"), format_name=format_name,
            extra={"bit_rate": fmt.get("bit_rate"), "container_duration": _seconds(fmt.get("duration"))},
            has_video=False)
    if _IMAGE_FORMATS.search(format_name):
        raise MediaError("not a video", f"ffprobe format {format_name}")
    duration = (_seconds(video.get("duration")) or _seconds(video.get("tags", {}).get("DURATION"))
                or _seconds(fmt.get("duration")))
    return VideoInfo(
        duration=duration,
        fps=_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        width=video.get("width"),
        height=video.get("height"),
        codec=video.get("codec_name"),
        has_audio=audio is not None,
        start=_seconds(video.get("start_time")) or 0.0,
        audio_codec=audio.get("codec_name") if audio else None,
        audio_channels=audio.get("channels") if audio else None,
        format_name=format_name,
        extra={"bit_rate": fmt.get("bit_rate"), "container_duration": _seconds(fmt.get("duration"))},
    )

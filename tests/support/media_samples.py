"""Audio and odd video containers made with ffmpeg's lavfi sources, for the sniff, download and extract tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from m5data.extract.video import ffmpeg_exe

TONE = "sine=frequency={freq}:sample_rate=44100:duration={seconds}"
PICTURE = "testsrc=s=64x48:r=12:d={seconds}"

# name -> (needs a picture, ffmpeg output options, sniffed kind, mime, blob extension)
SAMPLES = {
    "tone.mp3": (False, ["-c:a", "libmp3lame", "-b:a", "64k"], "audio", "audio/mpeg", "mp3"),
    "bare.mp3": (False, ["-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "0", "-write_xing", "0", "-f", "mp3"],
                 "audio", "audio/mpeg", "mp3"),  # no ID3 tag: the first bytes are an MPEG frame header
    "tone.aac": (False, ["-c:a", "aac", "-f", "adts"], "audio", "audio/aac", "aac"),
    "tone.m4a": (False, ["-c:a", "aac"], "audio", "audio/mp4", "m4a"),
    "tone.ogg": (False, ["-c:a", "libvorbis"], "audio", "audio/ogg", "ogg"),
    "tone.opus": (False, ["-c:a", "libopus"], "audio", "audio/opus", "opus"),
    "tone.flac": (False, ["-c:a", "flac"], "audio", "audio/flac", "flac"),
    "tone.wav": (False, ["-c:a", "pcm_s16le"], "audio", "audio/wav", "wav"),
    "theora.ogv": (True, ["-c:v", "libtheora", "-c:a", "libvorbis"], "video", "video/ogg", "ogv"),
    "audio_only.mp4": (False, ["-c:a", "aac", "-f", "mp4"], "video", "video/mp4", "mp4"),
    "audio_only.webm": (False, ["-c:a", "libopus", "-f", "webm"], "video", "video/webm", "webm"),
}


def make_sample(folder: Path, name: str, *, seconds: float = 2.0, freq: int = 440) -> Path:
    """Write sample ``name`` (a key of SAMPLES) into ``folder``; returns its path."""
    picture, options, *_ = SAMPLES[name]
    out = folder / name
    inputs = ["-f", "lavfi", "-i", PICTURE.format(seconds=seconds)] if picture else []
    inputs += ["-f", "lavfi", "-i", TONE.format(freq=freq, seconds=seconds)]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *inputs, *options, "-t", str(seconds), str(out)],
                   check=True, timeout=120)
    return out


def webm_without_duration(folder: Path, seconds: float = 3.0) -> Path:
    """A VP8 + Opus WebM written to a pipe: no duration in the container, its segment or its streams."""
    out = folder / "nodur.webm"
    # stdout a real pipe (not a file): the muxer cannot seek back to write the durations
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", PICTURE.format(seconds=seconds),
                           "-f", "lavfi", "-i", TONE.format(freq=330, seconds=seconds), "-c:v", "libvpx",
                           "-c:a", "libopus", "-f", "webm", "pipe:1"],
                          stdout=subprocess.PIPE, check=True, timeout=120)
    out.write_bytes(done.stdout)
    return out


def amplifying_video(path: Path, *, seconds: int = 1200, size: str = "1920x1080") -> Path:
    """Issue 35's frame amplifier: one frame of luma noise (MJPEG, ~1.5 MB at 1080p) in a Matroska
    file whose single frame lasts ``seconds``; sampled at 1 fps it asks for one JPEG per second."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"nullsrc=s={size}:r=1/{seconds}:d={seconds},geq=lum='random(1)*255':cb=128:cr=128",
                    "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "2", "-t", str(seconds), str(path)], check=True)
    return path


def huge_frame_video(path: Path, side: int = 14000) -> Path:
    """One black ``side`` x ``side`` frame (PNG in Matroska, under 1 MB on disk for 14000); making
    it takes ffmpeg about 600 MB for a moment."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=black:s={side}x{side}:r=1:d=1,format=gray", "-frames:v", "1", "-c:v", "png",
                    "-compression_level", "1", str(path)], check=True)
    return path

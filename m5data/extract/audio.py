"""Audio: the soundtrack as mp3 (moviepy, as the papers did) and MFCC blocks aligned to the frames.

MFCC layout: one block per sampled second. Block k holds the MFCC of the audio samples in
``[k/fps, (k+1)/fps)`` (zero-padded past the end of the track), computed by
``librosa.feature.mfcc`` with the configured ``n_fft`` and ``hop_length``. All blocks of a video
form one float32 array of shape ``(n_blocks, n_mfcc, 1 + samples_per_block // hop_length)``:
``(n_blocks, 40, 87)`` at the defaults (22,050 Hz, hop 256, 1 fps). ``n_blocks`` equals the
video's frame count, so ``mfcc[k]`` is the sound around ``frames/00000{k+1}.jpg``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..storage.files import temp_path, write_atomic
from .video import MediaError, ffmpeg_exe, tail

MP3_RATE = 44_100  # Hz of the stored mp3 (moviepy's default)
_CHUNK_BLOCKS = 64  # MFCC blocks computed per librosa call: bounds memory for long videos
_TOP_DB = 80.0  # librosa.feature.mfcc's default dynamic range (power_to_db top_db)


def write_mp3(video: Path, out: Path, *, bitrate: str = "128k", max_duration: float = 600.0) -> float:
    """Extract the audio track of ``video`` with moviepy into ``out`` (mp3); returns its duration.

    Raises:
        MediaError: moviepy/ffmpeg could not read or encode the track (status corrupt).
    """
    from moviepy import AudioFileClip

    tmp = temp_path(out)
    clip = None
    error = None
    with _quiet_unraisable():
        try:
            clip = AudioFileClip(str(video), fps=MP3_RATE)
            part = clip.subclipped(0, max_duration) if clip.duration and clip.duration > max_duration else clip
            part.write_audiofile(str(tmp), fps=MP3_RATE, codec="libmp3lame", bitrate=bitrate, logger=None)
            duration = float(part.duration or 0.0)
        except Exception as exc:  # moviepy raises bare OSError/IOError/ValueError/KeyError for bad tracks
            error = f"moviepy: {tail(str(exc), 400)}"
        finally:
            if clip is not None:
                clip.close()
        if error is not None:
            import gc

            gc.collect()
    if error is not None:
        tmp.unlink(missing_ok=True)
        raise MediaError("audio extraction failed", error)
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise MediaError("audio extraction failed", "moviepy wrote no mp3")
    tmp.replace(out)
    return duration


@contextmanager
def _quiet_unraisable():
    """Silence "Exception ignored in ..." while moviepy runs: when it fails to open a track, the
    reader it half-built raises again in ``__del__`` (AttributeError: no ``proc``)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = hook


def load_samples(path: Path, sample_rate: int, *, channels: int | None = None, max_duration: float = 600.0,
                 timeout: float = 300.0) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate`` (ffmpeg resamples, we average channels)."""
    import ffmpeg

    out = ffmpeg.input(str(path), t=max_duration).output("pipe:", format="f32le", ar=sample_rate, map="0:a:0", vn=None)
    args = ffmpeg.compile(out, cmd=ffmpeg_exe())
    args = [args[0], "-nostdin", "-hide_banner", "-loglevel", "error", *args[1:]]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError("ffmpeg timeout", f"audio decode over {timeout:g} s", status="failed") from None
    if proc.returncode != 0:
        raise MediaError("audio decode failed", f"exit {proc.returncode}: {tail(proc.stderr)}")
    samples = np.frombuffer(proc.stdout, dtype="<f4")
    ch = channels or 1
    if ch > 1:
        samples = samples[: len(samples) // ch * ch].reshape(-1, ch).mean(axis=1)
    return np.ascontiguousarray(samples, dtype=np.float32)


def block_samples(sample_rate: int, fps: float) -> int:
    """Audio samples per sampled frame interval (22,050 at 22,050 Hz and 1 fps)."""
    return int(round(sample_rate / fps))


def mfcc_blocks(samples: np.ndarray, n_blocks: int, *, sample_rate: int, fps: float = 1.0, n_mfcc: int = 40,
                n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """MFCC per sampled second: float32 ``(n_blocks, n_mfcc, 1 + block // hop_length)``.

    Block k equals ``librosa.feature.mfcc(y=samples[k*B:(k+1)*B], ...)`` with B samples per block,
    the last block zero-padded to B.
    """
    import librosa

    size = block_samples(sample_rate, fps)
    need = n_blocks * size
    y = samples[:need]
    if len(y) < need:
        y = np.pad(y, (0, need - len(y)))
    blocks = y.reshape(n_blocks, size)
    width = 1 + size // hop_length
    out = np.empty((n_blocks, n_mfcc, width), dtype=np.float32)
    for start in range(0, n_blocks, _CHUNK_BLOCKS):
        chunk = blocks[start:start + _CHUNK_BLOCKS]
        mel = librosa.feature.melspectrogram(y=chunk, sr=sample_rate, n_fft=n_fft, hop_length=hop_length)
        # librosa.feature.mfcc clips at 80 dB below the maximum of its whole input; computed in a batch
        # that would be the loudest block's maximum, so the clip is applied per block to stay equal to
        # librosa.feature.mfcc(y=block) for every block
        db = librosa.power_to_db(mel, top_db=None)
        db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - _TOP_DB)
        out[start:start + len(chunk)] = librosa.feature.mfcc(S=db, sr=sample_rate, n_mfcc=n_mfcc)
    return out


def save_npy(array: np.ndarray, out: Path) -> int:
    """Write ``array`` to ``out`` atomically (temp name, then rename); returns the file size."""
    buf = io.BytesIO()
    np.save(buf, array)
    return write_atomic(out, buf.getvalue())

"""Audio: the soundtrack as mp3 and MFCC blocks aligned to the frames (one ffmpeg pass gives both).

MFCC layout: one block per sampled second. Block k holds the MFCC of the audio samples in
``[k/fps, (k+1)/fps)`` (zero-padded past the end of the track), computed by
``librosa.feature.mfcc`` with the configured ``n_fft`` and ``hop_length``. All blocks of a video
form one float32 array of shape ``(n_blocks, n_mfcc, 1 + samples_per_block // hop_length)``:
``(n_blocks, 40, 87)`` at the defaults (22,050 Hz, hop 256, 1 fps). ``n_blocks`` equals the
video's frame count, so ``mfcc[k]`` is the sound around ``frames/00000{k+1}.jpg``.
"""

from __future__ import annotations

import io
import math
import subprocess
from pathlib import Path

import numpy as np

from ..storage.files import temp_path, write_atomic
from .ffmpeg import MediaError, ffmpeg_exe, tail

MP3_RATE = 44_100  # Hz of the stored mp3 (moviepy's default, which the papers used)
_CHUNK_BLOCKS = 64  # MFCC blocks computed per librosa call: bounds memory for long videos
_TOP_DB = 80.0  # librosa.feature.mfcc's default dynamic range (power_to_db top_db)


def extract_audio(path: Path, mp3: Path, *, sample_rate: int, bitrate: str = "128k", channels: int | None = None,
                  max_duration: float = 600.0, timeout: float = 300.0) -> np.ndarray:
    """Decode the first audio stream of ``path`` once: write it to ``mp3`` and return its samples.

    One ffmpeg process with two outputs: the mp3 (libmp3lame, 44,100 Hz, ``bitrate``; written to a
    temp name, renamed when whole) and mono float32 samples at ``sample_rate`` (channels averaged,
    as ``librosa.to_mono``) on a pipe. Nothing depends on a duration in the container: ffmpeg reads
    until the stream ends (or ``max_duration``), so a WebM written without durations works too.

    Raises:
        MediaError: no audio could be decoded (status corrupt), or ffmpeg ran past ``timeout``
            (status failed).
    """
    tmp = temp_path(mp3)
    args = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-t", f"{max_duration:g}", "-i", str(path),
            "-map", "0:a:0", "-vn", "-c:a", "libmp3lame", "-b:a", bitrate, "-ar", str(MP3_RATE), "-f", "mp3", str(tmp),
            "-map", "0:a:0", "-vn", "-f", "f32le", "-ar", str(sample_rate), "pipe:1"]
    try:
        proc = _ffmpeg(args, timeout, "audio pass", "audio extraction failed")
        samples = np.frombuffer(proc.stdout, dtype="<f4")
        if not tmp.is_file() or tmp.stat().st_size == 0 or not len(samples):
            raise MediaError("audio extraction failed", f"ffmpeg decoded no sound; {tail(proc.stderr) or 'no message'}")
        tmp.replace(mp3)
    finally:
        tmp.unlink(missing_ok=True)
    return _mono(samples, channels)


def _ffmpeg(args: list[str], timeout: float, step: str, failed: str) -> subprocess.CompletedProcess:
    """Run one ffmpeg ``step`` (its output captured); MediaError ``failed`` (status corrupt) when it
    exits non-zero, ``ffmpeg timeout`` (status failed) when it runs past ``timeout`` seconds."""
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MediaError("ffmpeg timeout", f"{step} over {timeout:g} s", status="failed") from None
    if proc.returncode != 0:
        raise MediaError(failed, f"ffmpeg exit {proc.returncode}: {tail(proc.stderr)}")
    return proc


def _mono(samples: np.ndarray, channels: int | None) -> np.ndarray:
    ch = channels or 1
    if ch > 1:
        samples = samples[: len(samples) // ch * ch].reshape(-1, ch).mean(axis=1)
    return np.ascontiguousarray(samples, dtype=np.float32)


def write_mp3(video: Path, out: Path, *, bitrate: str = "128k", max_duration: float = 600.0,
              timeout: float = 300.0) -> float:
    """Extract the audio track of ``video`` into ``out`` (mp3, 44,100 Hz); returns its duration in seconds.

    Raises:
        MediaError: ffmpeg could not read or encode the track (status corrupt).
    """
    from .probe import probe

    try:
        channels = probe(video).audio_channels
    except MediaError:
        channels = None  # ffmpeg's own error below says what is wrong
    rate = 8000  # the samples only measure the duration here
    return len(extract_audio(video, out, sample_rate=rate, bitrate=bitrate, channels=channels,
                             max_duration=max_duration, timeout=timeout)) / rate


def load_samples(path: Path, sample_rate: int, *, channels: int | None = None, max_duration: float = 600.0,
                 timeout: float = 300.0) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate`` (ffmpeg resamples, we average channels)."""
    import ffmpeg

    out = ffmpeg.input(str(path), t=max_duration).output("pipe:", format="f32le", ar=sample_rate, map="0:a:0", vn=None)
    args = ffmpeg.compile(out, cmd=ffmpeg_exe())
    args = [args[0], "-nostdin", "-hide_banner", "-loglevel", "error", *args[1:]]
    proc = _ffmpeg(args, timeout, "audio decode", "audio decode failed")
    return _mono(np.frombuffer(proc.stdout, dtype="<f4"), channels)


def blocks_for(seconds: float, fps: float, max_frames: int) -> int:
    """MFCC blocks for ``seconds`` of decoded sound: ceil(seconds * fps), within ``max_frames``;
    at least one block whenever any sound was decoded, none for none.

    Encoders pad a stream's end (AAC, mp3: up to ~50 ms), so the last 50 ms do not add a block;
    they never take away the first one: sound shorter than 50 ms (0.047 s of AAC) is one block,
    zero-padded, not "no sound".
    """
    if seconds <= 0:
        return 0
    return max(1, min(max_frames, math.ceil(seconds * fps - 0.05 * fps)))


def block_samples(sample_rate: int, fps: float) -> int:
    """Audio samples per sampled frame interval (22,050 at 22,050 Hz and 1 fps)."""
    return int(round(sample_rate / fps))


def mfcc_blocks(samples: np.ndarray, n_blocks: int, *, sample_rate: int, fps: float = 1.0, n_mfcc: int = 40,
                n_fft: int = 1024, hop_length: int = 256) -> np.ndarray:
    """MFCC per sampled second: float32 ``(n_blocks, n_mfcc, 1 + block // hop_length)``.

    Block k equals ``librosa.feature.mfcc(y=samples[k*B:(k+1)*B], ...)`` with B samples per block,
    the last block zero-padded to B.

    BLAS (librosa's mel filter bank product) runs on one thread here: the last bits of its result depend
    on how many threads share the product, so the stored MFCC bytes depended on the machine's cores (1 and
    2 threads gave other bytes, 2026-11-29); and in extract's pool, one worker per core, each worker's
    second BLAS thread only contended (the demo world's audio kind: 29 s -> 20 s on 2 cores).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        return _mfcc_blocks(samples, n_blocks, sample_rate, fps, n_mfcc, n_fft, hop_length)


def _mfcc_blocks(samples: np.ndarray, n_blocks: int, sample_rate: int, fps: float, n_mfcc: int,
                 n_fft: int, hop_length: int) -> np.ndarray:
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

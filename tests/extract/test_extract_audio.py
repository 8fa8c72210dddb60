"""Audio: moviepy mp3, decoded samples, and MFCC blocks aligned to the sampled seconds.

librosa's first MFCC call compiles with numba (NUMBA_CACHE_DIR is set by conftest): MFCC work is
kept to one test here and the real-file run in test_extract_run.py.
"""

import subprocess

import numpy as np
import pytest

from m5data.extract.audio import block_samples, load_samples, write_mp3
from m5data.extract.video import MediaError, ffmpeg_exe, probe


def make_tone(path, seconds, *, rate=44100, stereo=False):
    src = (f"sine=frequency=440:sample_rate={rate}:duration={seconds}" if not stereo else
           f"aevalsrc=0.5*sin(2*PI*440*t)|0.1*sin(2*PI*880*t):s={rate}:d={seconds}")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=gray:s=32x32:r=24",
                    "-f", "lavfi", "-i", src, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "pcm_s16le",
                    "-t", str(seconds), str(path)], check=True)
    return path


def test_samples_are_mono_at_the_configured_rate(tmp_path):
    video = make_tone(tmp_path / "t.mkv", 2.5, stereo=True)
    info = probe(video)
    assert info.audio_channels == 2
    y = load_samples(video, 16000, channels=info.audio_channels)
    assert y.dtype == np.float32 and len(y) == pytest.approx(2.5 * 16000, abs=200)
    # channel average of 0.5 sin(440) and 0.1 sin(880): peak about 0.3 + 0.05
    assert 0.25 < np.abs(y).max() < 0.4


def test_mfcc_blocks_shape_and_values_equal_librosa(tmp_path):
    import librosa

    from m5data.extract.audio import mfcc_blocks

    rng = np.random.default_rng(0)
    sr = 22050
    y = (0.1 * rng.standard_normal(int(3.4 * sr))).astype(np.float32)  # 3.4 s: 4 blocks, the last padded
    y[sr // 2: sr] *= 1e-4  # a near-silent half second: per-block dB clipping must not see the other blocks
    y[2 * sr: 3 * sr] *= 30  # a loud second
    m = mfcc_blocks(y, 4, sample_rate=sr, n_mfcc=20, n_fft=1024, hop_length=256)
    assert m.shape == (4, 20, 1 + sr // 256) == (4, 20, 87) and m.dtype == np.float32
    size = block_samples(sr, 1.0)
    for k in range(4):
        block = y[k * size:(k + 1) * size]
        block = np.pad(block, (0, size - len(block)))
        want = librosa.feature.mfcc(y=block, sr=sr, n_mfcc=20, n_fft=1024, hop_length=256)
        np.testing.assert_allclose(m[k], want, rtol=1e-4, atol=1e-3)
    # other frame sizes: the block width follows hop_length, the height n_mfcc
    assert mfcc_blocks(y, 2, sample_rate=sr, n_mfcc=13, n_fft=2048, hop_length=512).shape == (2, 13, 44)
    # a block past the end of the track is silence, not garbage
    tail = mfcc_blocks(y, 6, sample_rate=sr)
    np.testing.assert_allclose(tail[5], tail[5][:, :1].repeat(87, axis=1))


def test_mfcc_bytes_do_not_depend_on_the_threads_blas_may_use():
    """The same sound, the same MFCC bytes on any machine: BLAS's result depended on its thread count (1 and
    2 threads gave other last bits), so a store's MFCC files depended on the cores of the machine."""
    from threadpoolctl import threadpool_limits

    from m5data.extract.audio import mfcc_blocks

    y = np.random.default_rng(1).standard_normal(16000 * 37).astype(np.float32)
    made = []
    for threads in (1, 2, 4):
        with threadpool_limits(threads, user_api="blas"):
            made.append(mfcc_blocks(y, 37, sample_rate=16000).tobytes())
    assert made[0] == made[1] == made[2]


def test_mp3_with_moviepy(tmp_path, realdata):
    out = tmp_path / "a.mp3"
    seconds = write_mp3(realdata / "media/video/chaplin.mp4", out, bitrate="64k")
    assert seconds == pytest.approx(9.6, abs=0.1)
    info = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of", "csv=p=0", str(out)],
        capture_output=True, text=True).stdout.strip()
    assert info == "mp3,44100"
    assert not list(tmp_path.glob(".tmp-*"))


def test_mp3_of_a_broken_track_is_a_clear_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"\x00" * 4096)
    with pytest.raises(MediaError) as err:
        write_mp3(tmp_path / "x.mp4", tmp_path / "x.mp3")
    assert err.value.status == "corrupt" and err.value.reason == "audio extraction failed"
    assert not (tmp_path / "x.mp3").exists()

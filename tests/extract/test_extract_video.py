"""Video probing and the one-frame-per-second ffmpeg pass, on real and generated videos."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.extract_media import make_video

from m5data.extract.video import (
    MediaError,
    expected_frames,
    extract_frames,
    ffmpeg_exe,
    jpeg_qscale,
    probe,
    read_manifest,
)


def grey(path: Path) -> float:
    return float(np.asarray(Image.open(path).convert("L")).mean())


def frames_of(video: Path, out: Path, **kw):
    return extract_frames(video, out, probe(video), **kw)


@pytest.mark.parametrize("decode", ["exact", "fast"])  # the ffmpeg pass and the in-process one
@pytest.mark.parametrize("seconds, frames", [(10, 10), (9.5, 10), (3.2, 4), (1, 1)])
def test_frame_count_is_ceil_of_duration(tmp_path, seconds, frames, decode):
    video = make_video(tmp_path / "v.mp4", seconds)
    fr = frames_of(video, tmp_path / "frames", decode=decode)
    assert fr.count == frames == len(list((tmp_path / "frames").glob("*.jpg")))
    assert fr.timestamps == pytest.approx([float(k) for k in range(frames)], abs=0.05)
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.jpg"))[0] == "000001.jpg"


def test_each_frame_shows_its_own_second(tmp_path):
    video = make_video(tmp_path / "v.mp4", 10)
    fr = frames_of(video, tmp_path / "frames")
    levels = [grey(tmp_path / "frames" / f"{k + 1:06d}.jpg") for k in range(fr.count)]
    # luma 16 + 20k in limited range is about 23.3k in the full-range JPEG
    assert levels == pytest.approx([23.3 * k for k in range(10)], abs=3)


def test_stream_starting_late_still_samples_from_its_first_frame(tmp_path):
    mp4 = make_video(tmp_path / "v.mp4", 9.5)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(tmp_path / "v.ts")],
                   check=True)
    info = probe(tmp_path / "v.ts")
    assert info.start > 1.0  # MPEG-TS timestamps start at 1.4 s
    fr = extract_frames(tmp_path / "v.ts", tmp_path / "f", info)
    assert fr.count == 10
    assert [round(grey(tmp_path / "f" / f"{k + 1:06d}.jpg") / 23.3) for k in range(10)] == list(range(10))


def test_variable_rate_gap_repeats_the_frame_on_screen(tmp_path):
    video = make_video(tmp_path / "v.mp4", 8, audio=False)
    # drop every frame from 1.0 s to 4.0 s: the frame of 0.958 s stays on screen until 4.04 s
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(video), "-vf", "select='not(between(t,1,4))'",
                    "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", str(tmp_path / "gap.mp4")], check=True)
    fr = frames_of(tmp_path / "gap.mp4", tmp_path / "f")
    assert fr.count == 8
    seconds = [round(grey(tmp_path / "f" / f"{k + 1:06d}.jpg") / 23.3) for k in range(8)]
    assert seconds == [0, 0, 0, 0, 0, 5, 6, 7]


def test_probe_metadata(tmp_path):
    info = probe(make_video(tmp_path / "v.mp4", 4, fps=24, size="96x64"))
    assert (info.width, info.height, info.codec, info.has_audio) == (96, 64, "h264", True)
    assert info.fps == pytest.approx(24)
    assert info.duration == pytest.approx(4, abs=0.05)
    assert probe(make_video(tmp_path / "mute.mp4", 2, audio=False)).has_audio is False


def test_max_side_resize_in_the_same_pass_and_jpeg_quality(tmp_path):
    video = make_video(tmp_path / "v.mp4", 2, size="320x180")
    small = frames_of(video, tmp_path / "small", max_side=64, quality=30)
    assert (small.width, small.height) == (64, 36)
    big = frames_of(video, tmp_path / "big", max_side=1000, quality=95)  # never enlarged
    assert (big.width, big.height) == (320, 180)
    assert jpeg_qscale(90) == 2 and jpeg_qscale(75) == 4 and jpeg_qscale(50) == 8 and jpeg_qscale(1) == 31


def test_limits_max_frames_and_max_duration(tmp_path):
    video = make_video(tmp_path / "v.mp4", 8)
    capped = frames_of(video, tmp_path / "a", max_frames=3)
    assert capped.count == 3 and capped.truncated
    short = frames_of(video, tmp_path / "b", max_duration=5)
    assert short.count == 5 and short.truncated
    assert expected_frames(8, 1.0, 600, 5) == 5 and expected_frames(9.5, 1.0, 600, 600) == 10


def test_timeout_is_a_failed_item_with_a_reason(tmp_path):
    video = make_video(tmp_path / "v.mp4", 5)
    with pytest.raises(MediaError) as err:
        frames_of(video, tmp_path / "f", timeout=0.001)
    assert err.value.status == "failed" and err.value.reason == "ffmpeg timeout"
    assert not (tmp_path / "f").exists() and not list(tmp_path.glob(".tmp-*"))


def test_finished_folder_is_reused_and_redone_for_new_parameters(tmp_path):
    video = make_video(tmp_path / "v.mp4", 3)
    first = frames_of(video, tmp_path / "f")
    assert not first.reused and read_manifest(tmp_path / "f")["timestamps"] == first.timestamps
    again = frames_of(video, tmp_path / "f")
    assert again.reused and again.timestamps == first.timestamps
    resized = frames_of(video, tmp_path / "f", max_side=32)
    assert not resized.reused and resized.width == 32
    assert json.loads((tmp_path / "f" / "frames.json").read_text())["params"]["max_side"] == 32


def test_truncated_and_non_video_inputs_are_corrupt(tmp_path):
    whole = make_video(tmp_path / "whole.mp4", 6).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(whole[: len(whole) // 2])  # moov atom at the end: gone
    with pytest.raises(MediaError) as err:
        probe(tmp_path / "cut.mp4")
    assert err.value.status == "corrupt" and "moov atom not found" in str(err.value)

    mkv = make_video(tmp_path / "whole.mkv", 10, vcodec="mpeg4").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(mkv[: len(mkv) // 2])  # header says 10 s; half the clusters remain
    with pytest.raises(MediaError) as err:
        frames_of(tmp_path / "cut.mkv", tmp_path / "f")
    assert err.value.status == "corrupt" and err.value.reason == "truncated video"
    assert "decoded 5 frames" in str(err.value) and "Parsed_showinfo" not in str(err.value)
    assert not (tmp_path / "f").exists()

    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    with pytest.raises(MediaError, match="unreadable video"):
        probe(tmp_path / "notes.mp4")
    Image.new("RGB", (32, 32), "red").save(tmp_path / "still.mp4", "JPEG")
    with pytest.raises(MediaError, match="not a video"):
        probe(tmp_path / "still.mp4")


# ------------------------------------------------------------------------------------ real files
@pytest.mark.parametrize("decode", ["exact", "fast"])
def test_real_big_buck_bunny_30s_gives_30_frames(realdata, tmp_path, decode):
    video = realdata / "media/video/big_buck_bunny_0_30.webm"
    info = probe(video)
    assert (info.codec, info.width, info.height, info.fps, info.has_audio) == ("vp8", 1280, 720, 24.0, True)
    fr = extract_frames(video, tmp_path / "f", info, max_side=320, decode=decode)
    assert fr.count == 30 and (fr.width, fr.height) == (320, 180)
    assert fr.timestamps == pytest.approx([float(k) for k in range(30)], abs=0.01)


@pytest.mark.parametrize("decode", ["exact", "fast"])
def test_real_short_mute_and_odd_timestamp_videos(realdata, tmp_path, decode):
    one = realdata / "media/video/big_buck_bunny_432_433.webm"
    assert extract_frames(one, tmp_path / "one", probe(one), max_side=64, decode=decode).count == 1
    mute = realdata / "media/video/example.mp4"
    info = probe(mute)
    assert info.has_audio is False and info.duration == pytest.approx(16)
    assert extract_frames(mute, tmp_path / "mute", info, max_side=64, decode=decode).count == 16
    fire = realdata / "media/video/fire2.mp4"
    info = probe(fire)
    assert info.duration == pytest.approx(2.38, abs=0.01)
    fr = extract_frames(fire, tmp_path / "fire", info, max_side=64, decode=decode)
    assert fr.count == 3  # ceil(2.38); the fps filter's default rounding would drop the last partial second
    assert fr.timestamps == pytest.approx([0.0, 1.0, 2.0])


def test_real_zero_length_webm_is_corrupt(realdata):
    with pytest.raises(MediaError) as err:
        probe(realdata / "media/broken/empty.webm")
    assert err.value.status == "corrupt" and err.value.reason == "zero-length file"


@pytest.mark.parametrize("decode", ["exact", "fast"])
def test_frames_stop_at_the_byte_cap_and_say_why(tmp_path, decode):
    """A frame pass that would write more than ``max_bytes`` is cut: the frames that fit are kept,
    in order, with their timestamps, and the reason is recorded (issue 35)."""
    from functools import partial

    from support.media_samples import amplifying_video

    frames_of_ = partial(frames_of, decode=decode)
    video = amplifying_video(tmp_path / "amp.mkv", seconds=60, size="640x360")
    fr = frames_of_(video, tmp_path / "f", max_bytes=2_000_000)
    files = sorted((tmp_path / "f").glob("*.jpg"))
    assert 0 < fr.count == len(files) < 60 and fr.truncated
    assert fr.bytes == sum(f.stat().st_size for f in files) <= 2_000_000
    assert "max_item_bytes" in fr.cut and fr.timestamps == pytest.approx([float(k) for k in range(fr.count)], abs=0.05)
    assert read_manifest(tmp_path / "f")["cut"] == fr.cut
    assert frames_of_(video, tmp_path / "f", max_bytes=2_000_000).reused  # the same budget: the same folder
    more = frames_of_(video, tmp_path / "f", max_bytes=4_000_000)  # another budget: done again
    assert not more.reused and more.count > fr.count
    with pytest.raises(MediaError) as err:  # not even one frame fits: refused
        frames_of_(video, tmp_path / "g", max_bytes=1000)
    assert err.value.status == "too_large" and "max_item_bytes" in str(err.value)
    assert not (tmp_path / "g").exists()


def test_a_frame_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    from support.media_samples import huge_frame_video

    video = huge_frame_video(tmp_path / "huge.mkv", side=4000)
    with pytest.raises(MediaError) as err:
        frames_of(video, tmp_path / "f", max_pixels=10_000_000)
    assert err.value.status == "corrupt" and err.value.reason == "frame too large"
    assert "4000x4000" in str(err.value) and not (tmp_path / "f").exists()


def test_a_pass_that_ends_between_two_polls_is_still_cut_at_the_byte_cap(tmp_path, monkeypatch):
    """The cap is summed while ffmpeg runs, every CAP_POLL_S; a pass that ends before the first poll
    (a short or small video on a quick machine) must be cut all the same, keeping its last frame
    (whole, since ffmpeg ended by itself). Found as a flaky extract test: frames "ok" past the cap."""
    from support.media_samples import amplifying_video

    import m5data.extract.ffmpeg_frames as ffmpeg_frames

    video = amplifying_video(tmp_path / "amp.mkv", seconds=20, size="320x180")
    full = frames_of(video, tmp_path / "all")
    sizes = [f.stat().st_size for f in sorted((tmp_path / "all").glob("*.jpg"))]
    assert full.count == len(sizes) > 5 and not full.cut
    monkeypatch.setattr(ffmpeg_frames, "CAP_POLL_S", 3600.0)  # no poll before ffmpeg ends
    cap = sum(sizes[:3])  # exactly three whole frames fit
    fr = frames_of(video, tmp_path / "f", max_bytes=cap)
    files = sorted((tmp_path / "f").glob("*.jpg"))
    assert fr.count == len(files) == 3 and fr.bytes == cap and fr.truncated
    assert "max_item_bytes" in fr.cut
    with pytest.raises(MediaError) as err:
        frames_of(video, tmp_path / "g", max_bytes=sizes[0] - 1)
    assert err.value.status == "too_large" and not (tmp_path / "g").exists()

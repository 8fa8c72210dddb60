"""extract.video_decode: the frame pass's decoder options per codec, and what they cost in the frames kept."""

import json

import pytest

from m5data.config import ConfigError, load
from m5data.extract.ffmpeg_frames import frames_command
from m5data.extract.probe import VideoInfo
from m5data.extract.video import FRAME_PATTERN, extract_frames, ffmpeg_exe, probe

# The tolerances docs/extract.md states for extract.video_decode = "fast" (the default).
FAST_MIN_SSIM = 0.97
FAST_MAX_SHIFT = 0.0  # "fast" never changes which source frame a second keeps


def info(codec: str, width: int = 640, height: int = 360, fps: float = 25.0) -> VideoInfo:
    return VideoInfo(duration=10.0, fps=fps, width=width, height=height, codec=codec, has_audio=False)


def test_exact_is_todays_command_byte_for_byte(tmp_path):
    args = frames_command(tmp_path / "in.mp4", tmp_path / "out", info("h264"), fps=1.0, max_side=720, quality=90,
                          max_frames=300, max_duration=300.0, decode="exact")
    scale = "scale=h=if(gte(iw\\,ih)\\,-2\\,min(720\\,ih)):w=if(gte(iw\\,ih)\\,min(720\\,iw)\\,-2)"
    assert args == [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "info", "-t", "300.0",
                    "-i", str(tmp_path / "in.mp4"), "-filter_complex",
                    f"[0:v]setpts=PTS-STARTPTS[s0];[s0]fps=fps=1.0:round=up[s1];[s1]{scale}[s2];[s2]showinfo[s3]",
                    "-map", "[s3]", "-fps_mode", "passthrough", "-frames:v", "300", "-q:v", "2", "-qmin", "1",
                    str(tmp_path / "out" / FRAME_PATTERN)]


def decoder_options(args: list[str]) -> list[str]:
    """The arguments between the ffmpeg preamble and the input."""
    return args[args.index("info") + 1:args.index("-i")]


@pytest.mark.parametrize("codec, size, mode, expected", [
    ("h264", (640, 360), "fast", ["-skip_loop_filter", "noref"]),
    ("hevc", (1280, 720), "fast", ["-skip_loop_filter", "noref"]),
    ("vp9", (1280, 720), "fast", []),  # ffmpeg's VP9 decoder has no cheaper setting
    ("mpeg4", (1920, 1080), "fast", ["-lowres", "1"]),  # half size (960x540) still covers the 720 stored
    ("mpeg4", (1280, 720), "fast", []),  # half size (640x360) would be smaller than stored
    ("h264", (640, 360), "fastest", ["-skip_frame", "noref", "-skip_loop_filter", "all"]),
    ("h264", (640, 360), "exact", []),
])
def test_decoder_options_come_from_the_codec(tmp_path, codec, size, mode, expected):
    args = frames_command(tmp_path / "in", tmp_path / "out", info(codec, *size), fps=1.0, max_side=720, quality=90,
                          max_frames=300, max_duration=300.0, decode=mode)
    assert decoder_options(args) == [*expected, "-t", "300.0"]


def test_a_pool_worker_decodes_on_one_thread_except_exact(tmp_path):
    def command(decode):
        return frames_command(tmp_path / "in", tmp_path / "out", info("h264"), fps=1.0, max_side=720, quality=90,
                              max_frames=300, max_duration=300.0, decode=decode, single_thread=True)

    fast = command("fast")
    assert fast[fast.index("-threads") + 1] == "1" and fast.index("-threads") < fast.index("-i")
    assert fast[fast.index("-filter_complex_threads") + 1] == "1"
    assert command("exact") == frames_command(tmp_path / "in", tmp_path / "out", info("h264"), fps=1.0, max_side=720,
                                              quality=90, max_frames=300, max_duration=300.0, decode="exact")


def test_an_unknown_decode_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="extract.video_decode"):
        load(overrides={"extract.video_decode": "quick"}, environ={})
    assert load(environ={}).extract.video_decode == "fast"


@pytest.mark.parametrize("name", ["chaplin.mp4", "big_buck_bunny_0_30.webm", "example.mp4", "fire2.mp4"])
def test_fast_decode_keeps_the_same_frames_within_ssim(realdata, tmp_path, name):
    from support.framecheck import compare_decodes

    video = realdata / "media/video" / name
    q = compare_decodes(video, probe(video), tmp_path, decode="fast", max_side=720)
    assert q.frames == q.exact_frames > 0
    assert q.worst_ssim >= FAST_MIN_SSIM, q
    assert q.worst_shift <= FAST_MAX_SHIFT, q


def test_fast_decode_keeps_the_exact_pixels_of_h264(realdata, tmp_path):
    """chaplin.mp4 (H.264 with B-frames): the frames fast keeps decode to the exact pass's pixels."""
    import numpy as np
    from PIL import Image

    video = realdata / "media/video/chaplin.mp4"
    exact = extract_frames(video, tmp_path / "exact", probe(video), max_side=720, decode="exact")
    fast = extract_frames(video, tmp_path / "fast", probe(video), max_side=720, decode="fast", single_thread=True)
    assert fast.timestamps == exact.timestamps and fast.count == 10
    for k in range(1, exact.count + 1):
        with Image.open(exact.folder / (FRAME_PATTERN % k)) as a, Image.open(fast.folder / (FRAME_PATTERN % k)) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"frame {k}"


@pytest.mark.parametrize("name, frames, kept, most", [
    ("chaplin.mp4", 241, 10, 200),  # H.264 at 25 fps: 56 B-frames that nothing refers to
    ("big_buck_bunny_0_30.webm", 720, 30, 650),  # VP8 at 24 fps: the frames after a second's before a keyframe
])
def test_fast_decode_skips_the_frames_no_kept_frame_needs(realdata, tmp_path, name, frames, kept, most):
    from m5data.extract.frames_av import av_frames

    video = realdata / "media/video" / name
    done = av_frames(video, tmp_path, fps=1.0, max_side=720, qscale=2, max_frames=300, max_duration=300.0,
                     timeout=60.0, single_thread=True)
    assert len(done.files) == done.plan.count == kept and done.plan.frames == frames
    assert done.decoded < most, done.decoded  # libavcodec returned fewer frames than the stream holds


def test_fastest_decode_keeps_the_same_source_frames_less_exactly(realdata, tmp_path):
    from support.framecheck import compare_decodes

    video = realdata / "media/video/chaplin.mp4"  # H.264 with B-frames at 25 fps
    q = compare_decodes(video, probe(video), tmp_path, decode="fastest", max_side=720)
    assert q.frames == q.exact_frames == 10
    assert q.worst_shift == 0  # the frames kept are still the exact pass's
    assert q.worst_ssim < 1.0  # ... without their deblocking


def test_an_exact_folder_serves_fast_but_a_fast_folder_is_redone_for_exact(realdata, tmp_path):
    video = realdata / "media/video/chaplin.mp4"
    exact = extract_frames(video, tmp_path / "f", probe(video), decode="exact")
    assert exact.decode == "exact" and "decode" not in json.loads((tmp_path / "f/frames.json").read_text())["params"]
    fast = extract_frames(video, tmp_path / "f", probe(video), decode="fast")
    assert fast.reused and fast.decode == "exact"
    other = extract_frames(video, tmp_path / "g", probe(video), decode="fast", single_thread=True)
    assert not other.reused and other.decode == "fast"
    again = extract_frames(video, tmp_path / "g", probe(video), decode="exact")
    assert not again.reused and again.decode == "exact"


@pytest.mark.parametrize("name", ["chaplin.mp4", "example.mp4", "fire2.mp4", "big_buck_bunny_0_30.webm",
                                  "big_buck_bunny_432_433.webm"])
def test_the_in_process_probe_reads_what_ffprobe_reads(realdata, name):
    from m5data.extract.probe import AvProbe

    video = realdata / "media/video" / name
    ours, theirs = AvProbe(video).result(), probe(video)
    ours.extra = theirs.extra = {}  # the container's own duration and bit rate: libavformat 8 rounds fire2.mp4's apart
    assert ours == theirs


def test_the_in_process_probe_refuses_what_ffprobe_refuses(realdata, tmp_path):
    from m5data.extract.ffmpeg import MediaError
    from m5data.extract.probe import AvProbe

    def refusal(read, path) -> tuple[str, str]:
        with pytest.raises(MediaError) as err:
            read(path)
        return err.value.reason, err.value.status

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(bytes(range(256)) * 64)
    for path in (tmp_path / "empty.mp4", tmp_path / "noise.mp4", realdata / "media/images/hopper_orientation_6.jpg"):
        assert refusal(lambda p: AvProbe(p).result(), path) == refusal(probe, path), path

"""The in-process frame pass on hostile and damaged media (issue 75, items 3 and 6): a bounded plan on a
stream of many tiny packets, an audio stream of unknown codec, and the exact pass where the fast plan
cannot be trusted (said per item)."""

import json
import os
import random
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest

from m5data.extract.probe import AvProbe
from m5data.extract.video import extract_frames, ffmpeg_exe, probe

ROOT = Path(__file__).resolve().parents[2]
TREE_GROWTH_BOUND = 64 << 20  # the frame pass's process tree over its RSS once imported (before: ~145 MiB)

# The child: the fast frame pass as an extract worker runs it (in-process probe, then extract_frames)
_CHILD = """
import json, sys
from pathlib import Path
from m5data.extract.probe import AvProbe
from m5data.extract.video import extract_frames
import av  # noqa: F401
rss = lambda: next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmRSS:")) * 1024
print(json.dumps({"ready": rss()}), flush=True)
sys.stdin.readline()
video = Path(sys.argv[1])
frames = extract_frames(video, Path(sys.argv[2]), AvProbe(video), max_side=64, decode="fast")
print(json.dumps({"count": frames.count, "decode": frames.decode, "fallback": getattr(frames, "fallback", None)}),
                 flush=True)
"""


def many_packets(path: Path, packets: int, rate: int = 1000) -> Path:
    """A Matroska file of ``packets`` 4-byte raw 2x2 frames at ``rate`` fps (copied from /dev/zero: no encoding)."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", "2x2",
                    "-r", str(rate), "-i", "/dev/zero", "-frames:v", str(packets), "-c", "copy", str(path)],
                   check=True, timeout=120)
    return path


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and all its descendants now (0 once gone)."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def test_a_stream_of_many_tiny_packets_is_planned_in_bounded_memory(tmp_path):
    """180,000 packets of 4 bytes (3 s of 1000-fps video): the planning read held every packet
    (195 MiB for the tree, 145 over the imported process); the running plan holds a few."""
    video = many_packets(tmp_path / "tiny.mkv", 180_000)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(video), str(tmp_path / "f")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, text=True)
    ready = json.loads(proc.stdout.readline())["ready"]
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = proc.stdout.readline()
    stop.set()
    sampler.join()
    assert proc.wait(timeout=120) == 0
    assert peak[0] - ready < TREE_GROWTH_BOUND, f"tree peak {peak[0] >> 20} MiB, {ready >> 20} MiB before the pass"
    assert json.loads(out) == {"count": 180, "decode": "fast", "fallback": None}  # in-process, every second


def test_a_stream_over_the_packet_cap_goes_to_the_ffmpeg_pass(tmp_path, monkeypatch):
    import m5data.extract.frames_av as frames_av

    video = many_packets(tmp_path / "tiny.mkv", 5_000)
    monkeypatch.setattr(frames_av, "MAX_PACKETS", 2_000)
    fast = extract_frames(video, tmp_path / "fast", AvProbe(video), max_side=64, decode="fast")
    exact = extract_frames(video, tmp_path / "exact", probe(video), max_side=64, decode="exact")
    assert fast.count == exact.count == 5 and fast.decode == "fast"  # ffmpeg, with fast's options
    assert fast.fallback == "unsupported: over 2,000 video packets before the last second's frame"
    assert json.loads((tmp_path / "fast/frames.json").read_text())["fallback"] == fast.fallback


def unknown_audio_codec(path: Path) -> Path:
    """Five seconds of MPEG-4 video with an Opus track whose Matroska codec id is renamed ``A_QQQQ``: a
    codec no libavcodec knows (ffprobe: ``codec_name=unknown``)."""
    opus = path.with_suffix(".opus.mkv")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=64x48:r=12:d=5", "-f", "lavfi",
                    "-i", "sine=d=5", "-c:v", "mpeg4", "-c:a", "libopus", str(opus)], check=True, timeout=120)
    data = opus.read_bytes()
    assert data.count(b"A_OPUS") == 1
    path.write_bytes(data.replace(b"A_OPUS", b"A_QQQQ"))
    return path


def test_an_audio_stream_of_unknown_codec_gives_fast_the_exact_frames(tmp_path):
    video = unknown_audio_codec(tmp_path / "unknown.mkv")
    ours, theirs = AvProbe(video).result(), probe(video)
    assert ours.has_audio and ours.audio_codec is None and theirs.audio_codec is None
    ours.audio_channels = theirs.audio_channels = None  # PyAV gives no codec parameters without a decoder
    assert ours == theirs
    fast = extract_frames(video, tmp_path / "fast", AvProbe(video), max_side=64, decode="fast")
    exact = extract_frames(video, tmp_path / "exact", theirs, max_side=64, decode="exact")
    assert fast.count == exact.count == 5 and fast.timestamps == exact.timestamps
    assert (fast.decode, fast.fallback) == ("fast", None)


def damaged(path: Path, seed: int = 1, flips: int = 20) -> Path:
    """20 s of 320x240 H.264 (B-frames) with ``flips`` bytes past the first tenth overwritten (a fuzzed file)."""
    clean = path.with_suffix(".clean.mp4")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=20",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "50", str(clean)], check=True,
                   timeout=120)
    data, rnd = bytearray(clean.read_bytes()), random.Random(seed)
    for _ in range(flips):
        data[rnd.randrange(len(data) // 10, len(data))] = rnd.randrange(256)
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_video_is_decoded_exactly_and_says_why(tmp_path):
    """The decoder conceals errors in frames the fast pass decodes: the exact ffmpeg pass makes the
    folder (before, fast kept other pictures: SSIM 0.82 against exact on this file)."""
    video = damaged(tmp_path / "fuzzed.mp4")
    fast = extract_frames(video, tmp_path / "fast", AvProbe(video), max_side=720, decode="fast")
    exact = extract_frames(video, tmp_path / "exact", probe(video), max_side=720, decode="exact")
    assert fast.decode == "exact" and fast.fallback.startswith("untrusted: the decoder concealed an error")
    assert fast.count == exact.count == 20 and fast.timestamps == exact.timestamps
    manifest = json.loads((tmp_path / "fast/frames.json").read_text())
    assert "decode" not in manifest["params"] and manifest["fallback"] == fast.fallback  # an exact folder
    again = extract_frames(video, tmp_path / "fast", AvProbe(video), max_side=720, decode="fast")
    assert again.reused and (again.decode, again.fallback) == ("exact", fast.fallback)


def planned(stamps, **limits):
    from m5data.extract.frames_av import Planner

    planner = Planner(Fraction(1, 1000), Fraction(25), fps=1.0, max_frames=300, max_duration=300.0, **limits)
    for pts, duration in stamps:
        planner.add(pts, duration)
    return planner.finish()


def test_timestamps_the_decoder_cannot_order_are_not_trusted():
    from m5data.extract.frames_av import Untrusted

    ok = planned([(40 * i, 40) for i in range(100)])  # 4 s at 25 fps
    assert ok.count == 4 and sorted(ok.ticks) == [0, 1000, 2000, 3000] and ok.frames == 100
    reordered = planned([(0, 40), (120, 40), (40, 40), (80, 40), *[(40 * i, 40) for i in range(4, 100)]])
    assert reordered.ticks == ok.ticks  # B-frames: a few packets early
    with pytest.raises(Untrusted, match="the same twice"):
        planned([(40 * i, 40) for i in range(50)] + [(1960, 40)])
    with pytest.raises(Untrusted, match="out of order"):
        planned([(40 * i, 40) for i in range(100)] + [(200, 40)])  # 60 packets late


def test_packets_that_disagree_with_the_header_are_not_trusted(tmp_path):
    from m5data.extract.frames_av import Untrusted, av_frames

    video = many_packets(tmp_path / "tiny.mkv", 3_000)  # 3 s
    args = {"fps": 1.0, "max_side": 0, "qscale": 2, "max_frames": 300, "max_duration": 300.0, "timeout": 60.0}
    assert len(av_frames(video, tmp_path, duration=3.0, **args).files) == 3
    with pytest.raises(Untrusted, match=r"the packets cover 3.00 s \(3 frames\), the header says 9.00 s \(9\)"):
        av_frames(video, tmp_path, duration=9.0, **args)

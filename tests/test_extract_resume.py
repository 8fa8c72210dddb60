"""Extract saves finished items in small batches: a SIGKILL loses at most seconds of work."""

import signal
import subprocess
import sys
import time

from m5data.extract.video import ffmpeg_exe
from test_extract_run import add_media


def tone_video(path, seconds: float, freq: int):
    """A small video with a sine tone: each frequency gives another file (derived files are keyed by content)."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=s=64x48:r=12:d={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=22050:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-t", str(seconds), str(path)],
                   check=True)
    return path


def test_sigkill_keeps_the_rows_of_items_finished_seconds_before(store, tmp_path):
    for i in range(24):
        add_media(store, tone_video(tmp_path / f"v{i}.mp4", 2, 300 + 40 * i), f"shopa:{i:02d}", "video")
    cmd = [sys.executable, "-m", "m5data.cli", "--store", str(store.root), "--set", "extract.workers=1",
           "--set", "extract.frame_max_side=32", "extract", "--kinds", "video,audio", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    mfcc_root = store.root / "derived" / "mfcc"  # a video's MFCC file is the last thing its job writes
    try:
        done: set[str] = set()
        for _ in range(600):  # wait until a few videos' jobs are finished (at most ~120 s)
            time.sleep(0.2)
            done = {p.stem for p in mfcc_root.glob("*/*.npy")}
            if len(done) >= 3 or proc.poll() is not None:
                break
        assert len(done) >= 3, proc.stdout.read().decode() if proc.poll() is not None else "no item finished"
        time.sleep(4.0)  # two flush periods: the rows of those items must be stored by now
        assert proc.poll() is None, "the run ended before the kill: the test needs more work in it"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    frames = {r["blob"].rsplit("/", 1)[-1]: r for r in store.read("media", where="kind = 'frames'").to_pylist()}
    assert done <= set(frames), f"finished before the kill but not stored: {sorted(done - set(frames))}"
    assert all(frames[sha]["status"] == "ok" for sha in done)
    assert len(frames) < 24  # the kill did cut the run short

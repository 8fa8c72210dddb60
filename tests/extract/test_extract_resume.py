"""Extract saves finished items in small batches: a SIGKILL loses at most seconds of work."""

import hashlib
import signal
import struct
import subprocess
import sys
import time

import pytest

from m5data.extract.video import ffmpeg_exe


def tone_video(path, seconds: float, freq: int):
    """A small video with a sine tone: each frequency gives another file (derived files are keyed by content)."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=s=64x48:r=12:d={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=22050:duration={seconds}",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-t", str(seconds), str(path)],
                   check=True)
    return path


def video_copies(path, count: int):
    """`count` distinct copies of one video: each ends in an MP4 `free` box with its own number, which
    players skip; derived files are keyed by content, so each copy is a job of its own."""
    data = path.read_bytes()
    for i in range(count):
        pad = f"copy {i}".encode()
        copy = path.with_name(f"{path.stem}-{i}{path.suffix}")
        copy.write_bytes(data + struct.pack(">I", 8 + len(pad)) + b"free" + pad)
        yield copy


def add_videos(store, paths):
    """Videos as downloaded media rows of their own products, written in one part."""
    rows = []
    for i, path in enumerate(paths):
        ref = store.blobs.put_file(path, "mp4")
        pid, url = f"shopa:{i:03d}", f"http://shop.test/{i:03d}/{path.name}"
        rows.append({"media_id": hashlib.sha1(f"{pid}|video|{url}".encode()).hexdigest(), "product_id": pid,
                     "kind": "video", "role": "video", "position": 0, "url": url, "blob": ref.path,
                     "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok"})
    store.write("media", rows)


def test_sigkill_keeps_the_rows_of_items_finished_seconds_before(store, tmp_path):
    # Enough work that the kill, 4 s after the third item, comes long before the end on a fast machine
    # (a job takes ~0.1 s here; with 24 jobs a CI machine finished them all inside the wait).
    videos = 200
    add_videos(store, video_copies(tone_video(tmp_path / "v.mp4", 2, 440), videos))
    cmd = [sys.executable, "-m", "m5data.cli", "--store", str(store.root), "--set", "extract.workers=1",
           "--set", "extract.frame_max_side=32", "extract", "--kinds", "video,audio", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    mfcc_root = store.local_root() / "derived" / "mfcc"  # a video's MFCC file is the last thing its job writes
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
    assert len(frames) < videos  # the kill did cut the run short


class _Killed(BaseException):
    """What a SIGKILL at that point leaves: the writes before it made, none after (not an Exception: no
    handler of the run stores anything more)."""


@pytest.mark.parametrize("killed_at", ["faces", "media"])
def test_a_run_killed_at_a_table_write_then_run_again_leaves_every_frames_folder_with_its_faces_row(
        store, tmp_path, killed_at):
    """The faces rows of a batch are stored before its media rows: a media row ``ok`` is what makes a
    re-run skip the item, so a kill between the two writes must never leave a done item without them
    (the chaos script found frames folders without faces rows after a kill there)."""
    from m5data.config import load
    from m5data.extract.run import run as extract

    add_videos(store, video_copies(tone_video(tmp_path / "v.mp4", 3, 440), 3))
    settings = load(None, {"store.path": str(store.root), "extract.workers": 1}, environ={})
    write = store.write

    def killed(name, rows, **kwargs):
        if name == killed_at:
            raise _Killed(f"killed before writing {name}")
        return write(name, rows, **kwargs)

    store.write = killed
    with pytest.raises(_Killed):
        extract(store, settings, kinds="video", progress=False)
    store.write = write
    extract(store, settings, kinds="video", progress=False)
    frames = {r["blob"] for r in store.read("media", where="kind = 'frames' AND status = 'ok'").to_pylist()}
    faces = store.read("faces").to_pylist()
    assert len(frames) == 3
    assert sorted(r["blob"] for r in faces) == sorted(frames)  # one row each, none missing, none twice

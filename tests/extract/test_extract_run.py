"""The extract stage over a store: selection, rows, statuses, idempotent re-runs, pool, CLI, Prefect."""

import json
from pathlib import Path

import numpy as np
import pytest
from support.extract_media import add_media, make_video, rows_by, settings

from m5data.config import load
from m5data.extract.run import ExtractError, run


def test_real_files_end_to_end(store, realdata):
    media = realdata / "media"
    videos = {"bbb30": "video/big_buck_bunny_0_30.webm", "bbb1": "video/big_buck_bunny_432_433.webm",
              "mute": "video/example.mp4", "fire": "video/fire2.mp4", "empty": "broken/empty.webm"}
    images = {"hopper": "images/hopper_orientation_6.jpg", "cmyk": "images/pil_sample_cmyk.jpg",
              "jd": "images/550f6d32Nf6b37d9d.jpg", "trunc": "broken/truncated_jpeg.jpg",
              "badpng": "broken/broken_data_stream.png"}
    for name, rel in videos.items():
        add_media(store, media / rel, f"shopa:{name}", "video")
    for name, rel in images.items():
        add_media(store, media / rel, f"shopb:{name}", "image")
    add_media(store, media / "images/577c67c9Nefee4677.jpg", "shopb:jd", "image", role="gallery")  # not main: skipped
    titles = [r["title"] for r in json.loads((realdata / "mep3m/annotations-1k.json").read_text())[:5]]
    store.write("products", [{"product_id": f"mep:{i}", "platform": "mep", "title": t} for i, t in enumerate(titles)]
                + [{"product_id": "mep:none", "platform": "mep", "title": None}])

    stats = run(store, settings(), progress=False)

    got = rows_by(store, "true")
    bbb = got[("shopa:bbb30", "video")]
    assert bbb["status"] == "ok" and bbb["codec"] == "vp8" and bbb["has_audio"] is True
    assert (bbb["width"], bbb["height"], bbb["fps"]) == (1280, 720, 24.0) and bbb["duration"] == pytest.approx(30.0, abs=0.01)
    frames = got[("shopa:bbb30", "frames")]
    folder = store.local_root() / frames["blob"]
    assert frames["frame_count"] == 30 == len(list(folder.glob("*.jpg"))) and frames["width"] == 96
    assert json.loads(frames["meta"])["timestamps"][:3] == pytest.approx([0.0, 1.0, 2.0], abs=0.01)
    assert json.loads(frames["meta"])["decode"] == "fast"  # extract.video_decode's default made it
    mfcc_row = got[("shopa:bbb30", "mfcc")]
    mfcc = np.load(store.local_root() / mfcc_row["blob"])
    assert mfcc.shape == (30, 40, 87) == tuple(json.loads(mfcc_row["meta"])["shape"]) and mfcc.dtype == np.float32
    audio = got[("shopa:bbb30", "audio")]
    assert audio["status"] == "ok" and audio["blob"].endswith(".mp3") and store.blobs.verify(audio["blob"])
    assert audio["duration"] == pytest.approx(30.0, abs=0.1)
    # MFCC block 7 equals librosa on the same samples (ffmpeg-decoded mono at 22,050 Hz)
    import librosa

    from m5data.extract.audio import load_samples

    y = load_samples(store.local_root() / bbb["blob"], 22050, channels=2)
    want = librosa.feature.mfcc(y=y[7 * 22050:8 * 22050], sr=22050, n_mfcc=40, n_fft=1024, hop_length=256)
    np.testing.assert_allclose(mfcc[7], want, rtol=1e-4, atol=1e-3)

    assert got[("shopa:bbb1", "frames")]["frame_count"] == 1 and got[("shopa:bbb1", "mfcc")]["frame_count"] == 1
    assert got[("shopa:mute", "frames")]["frame_count"] == 16 and got[("shopa:mute", "video")]["has_audio"] is False
    assert got[("shopa:mute", "audio")]["status"] == "absent" == got[("shopa:mute", "mfcc")]["status"]
    assert got[("shopa:fire", "frames")]["frame_count"] == 3
    assert np.load(store.local_root() / got[("shopa:fire", "mfcc")]["blob"]).shape[0] == 3
    empty = got[("shopa:empty", "video")]
    assert empty["status"] == "corrupt" and "zero-length file" in empty["error"] and empty["blob"] in empty["error"]
    assert not any(pid == "shopa:empty" and kind != "video" for pid, kind in got)

    for name in ("hopper", "cmyk", "jd"):
        src, norm = got[(f"shopb:{name}", "image")], got[(f"shopb:{name}", "image_norm")]
        assert src["status"] == norm["status"] == "ok" and src["phash"] == norm["phash"] and src["quality_tier"] in (1, 2, 3)
        assert (store.local_root() / norm["blob"]).is_file() and norm["source_media_id"] == src["media_id"]
    assert got[("shopb:jd", "image")]["quality_tier"] == 1 and got[("shopb:hopper", "image")]["quality_tier"] == 3
    gallery = store.read("media", where="product_id = 'shopb:jd' AND role = 'gallery'").to_pylist()
    assert [(r["status"], r["phash"]) for r in gallery] == [("ok", None)]  # gallery images are not normalised
    for name, reason in (("trunc", "truncated image"), ("badpng", "corrupt image data")):
        row = got[(f"shopb:{name}", "image")]
        assert row["status"] == "corrupt" and reason in row["error"] and (f"shopb:{name}", "image_norm") not in got
    assert store.count("media") == 11 + 4 * 3 + 3  # sources, frames/audio/mfcc of 4 good videos, 3 image_norm

    caps = {r["product_id"]: r for r in store.read("captions").to_pylist()}
    assert len(caps) == 6 and caps["mep:none"]["status"] == "empty" and caps["mep:0"]["tokens"][:2] == ["安满", "孕妈"]

    assert stats.by_kind[("video", "ok")] == 4 and stats.by_kind[("video", "corrupt")] == 1
    assert stats.by_kind[("audio", "ok")] == 3 and stats.by_kind[("audio", "absent")] == 1
    assert stats.by_kind[("image", "ok")] == 3 and stats.by_kind[("image", "corrupt")] == 2
    assert stats.failures["image corrupt: truncated image"] == 1
    assert stats.n_in == 5 * 2 + 5 + 6 and stats.n_out == 4 + 4 + 3 + 6  # (frames + audio), images, captions
    runs = store.read("runs").to_pylist()
    assert runs[-1]["stage"] == "extract" and runs[-1]["n_failed"] == stats.n_failed == 4

    # a re-run finds nothing to do and writes no media or caption rows
    parts = len(store.parts("media")), len(store.parts("captions"))
    again = run(store, settings(), progress=False)
    assert again.n_in == 0 and (len(store.parts("media")), len(store.parts("captions"))) == parts
    assert store.count("media") == 26 and store.count("captions") == 6


def test_limit_redownload_and_audio_after_frames(store, tmp_path):
    v1 = add_media(store, make_video(tmp_path / "a.mp4", 9.5), "shopa:a", "video")
    add_media(store, make_video(tmp_path / "b.mp4", 3, audio=False), "shopa:b", "video")
    add_media(store, make_video(tmp_path / "c.mp4", 2), "shopa:c", "video")
    first = run(store, settings(), kinds="video", limit=2, progress=False)
    assert first.n_in == 2 and first.n_out == 2 and store.count("media") == 5
    second = run(store, settings(), kinds="video", progress=False)
    assert second.n_in == 1 and store.count("media") == 6
    assert run(store, settings(), kinds="video", progress=False).n_in == 0

    # the video is downloaded again with other content: its frames are redone from the new blob
    ref = store.blobs.put_file(make_video(tmp_path / "a2.mp4", 4.2), "mp4")
    store.write("media", [{**v1, "blob": ref.path, "sha256": ref.sha256, "bytes": ref.bytes}])
    redo = run(store, settings(), kinds="video", progress=False)
    assert redo.n_in == 1
    frames = rows_by(store, "kind = 'frames'")[("shopa:a", "frames")]
    assert frames["frame_count"] == 5 and json.loads(frames["meta"])["source_blob"] == ref.path

    # audio later: MFCC blocks follow the frames already extracted
    audio = run(store, settings(), kinds="audio", progress=False)
    assert audio.by_kind == {("audio", "ok"): 2, ("audio", "absent"): 1}
    got = rows_by(store, "kind in ('mfcc', 'frames')")
    for pid in ("shopa:a", "shopa:c"):
        assert np.load(store.local_root() / got[(pid, "mfcc")]["blob"]).shape == (got[(pid, "frames")]["frame_count"], 40, 87)
    assert store.count("media") == 3 + 3 + 6


def test_timeout_fails_the_item_and_retry_failed_redoes_it(store, tmp_path):
    add_media(store, make_video(tmp_path / "a.mp4", 4), "shopa:a", "video")
    stats = run(store, settings(video_timeout=0.001), kinds="video", progress=False)
    assert stats.by_kind == {("video", "failed"): 1} and stats.failures == {"video failed: ffmpeg timeout": 1}
    row = rows_by(store, "kind = 'frames'")[("shopa:a", "frames")]
    assert row["status"] == "failed" and "ffmpeg timeout" in row["error"]
    assert rows_by(store, "kind = 'video'")[("shopa:a", "video")]["status"] == "ok"  # the input is not to blame
    assert run(store, settings(), kinds="video", progress=False).n_in == 0
    retry = run(store, settings(), kinds="video", retry_failed=True, progress=False)
    assert retry.by_kind == {("video", "ok"): 1}
    assert rows_by(store, "kind = 'frames'")[("shopa:a", "frames")]["frame_count"] == 4


def test_process_pool_gives_the_same_rows(store, tmp_path):
    from PIL import Image

    for i, seconds in enumerate((2, 3.5, 5)):
        add_media(store, make_video(tmp_path / f"v{i}.mp4", seconds), f"shopa:{i}", "video")
    for i, size in enumerate(((900, 700), (400, 400), (120, 90))):
        Image.new("RGB", size, (40 * i, 90, 200)).save(tmp_path / f"i{i}.png")
        add_media(store, tmp_path / f"i{i}.png", f"shopb:{i}", "image")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    add_media(store, tmp_path / "bad.jpg", "shopb:bad", "image")
    store.write("products", [{"product_id": f"shopa:{i}", "title": f"【新品】测试商品 {i} 号"} for i in range(3)])
    stats = run(store, settings(workers=2), kinds="video,image,text", progress=False)
    assert stats.by_kind == {("video", "ok"): 3, ("image", "ok"): 3, ("image", "corrupt"): 1, ("text", "ok"): 3}
    got = rows_by(store, "true")
    assert [got[(f"shopa:{i}", "frames")]["frame_count"] for i in range(3)] == [2, 4, 5]
    assert [got[(f"shopb:{i}", "image")]["quality_tier"] for i in range(3)] == [1, 2, 3]
    assert got[("shopb:0", "image_norm")]["width"] == 800  # image_max_side
    assert got[("shopb:bad", "image")]["status"] == "corrupt"


def test_bad_arguments_are_refused_before_work(store):
    with pytest.raises(ExtractError, match="unknown extract kind"):
        run(store, settings(), kinds="video,smell", progress=False)
    with pytest.raises(ExtractError, match="image_tier_medium"):
        run(store, settings(image_tier_medium=700), kinds="image", progress=False)
    with pytest.raises(ExtractError, match="jieba_user_dict"):
        run(store, settings(**{"text.jieba_user_dict": "/nonexistent/dict.txt"}), kinds="text", progress=False)
    assert store.count("runs") == 0


def test_cli_extract(store, tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from m5data.cli import app

    Image.new("RGB", (50, 40), "blue").save(tmp_path / "x.png")
    add_media(store, tmp_path / "x.png", "shopb:x", "image")
    store.write("products", [{"product_id": "shopb:x", "title": "蓝色 &amp; 方形"}])
    runner = CliRunner()
    res = runner.invoke(app, ["--store", str(store.root), "extract", "--kinds", "image,text", "--no-progress",
                              "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "extract by kind" in res.output and "image" in res.output and "extract run" in res.output
    assert store.read("captions").to_pylist()[0]["text"] == "蓝色 & 方形"
    res = runner.invoke(app, ["--store", str(store.root), "extract", "--kinds", "image", "--no-progress"])
    assert res.exit_code == 0 and "nothing to extract" in res.output
    res = runner.invoke(app, ["--store", str(store.root), "extract", "--kinds", "smell"])
    assert res.exit_code == 1 and "unknown extract kind" in res.output


def test_prefect_task_in_a_flow(store, prefect_harness):
    from m5data.flows.executor import stage_flow

    store.write("products", [{"product_id": "shopa:1", "title": "<b>Instant Pot</b> 电压力锅"}])
    stats = stage_flow("extract", str(store.root), overrides={"extract.workers": 1, "extract.kinds": "text"})
    assert stats.stage == "extract" and stats.n_out == 1 and stats.details["by_kind"] == {"text/ok": 1}
    caption = store.read("captions").to_pylist()[0]
    assert caption["text"] == "Instant Pot 电压力锅" and caption["tokens"][:2] == ["Instant", "Pot"]


def test_missing_blob_fails_the_item_not_the_run(store, tmp_path):
    from PIL import Image

    video = add_media(store, make_video(tmp_path / "a.mp4", 2), "shopa:a", "video")
    Image.new("RGB", (40, 40), "white").save(tmp_path / "x.png")
    image = add_media(store, tmp_path / "x.png", "shopb:x", "image")
    (store.local_root() / video["blob"]).unlink()
    (store.local_root() / image["blob"]).unlink()
    add_media(store, make_video(tmp_path / "b.mp4", 2, audio=False), "shopa:b", "video")
    stats = run(store, settings(), kinds="video,image", progress=False)
    assert stats.by_kind == {("video", "failed"): 1, ("video", "ok"): 1, ("image", "failed"): 1}
    got = rows_by(store, "true")
    assert got[("shopa:a", "frames")]["status"] == "failed" and "not in the store" in got[("shopa:a", "frames")]["error"]
    assert got[("shopa:a", "video")]["status"] == "ok" and got[("shopb:x", "image_norm")]["status"] == "failed"


def test_leftovers_of_a_killed_run_are_swept(store):
    import os
    import time

    from m5data.extract.run import sweep_temp

    frames = store.derived_dir("frames", "ab")
    stale, fresh = frames / ".tmp-abc-1234", frames / ".tmp-abd-5678"
    (stale / "000001.jpg").parent.mkdir()
    (stale / "000001.jpg").write_bytes(b"x")
    fresh.mkdir()
    half_npy = store.derived_dir("mfcc", "cd") / ".tmp-0f.npy"
    half_npy.write_bytes(b"x")
    done = frames / "ab12"
    done.mkdir()
    old = time.time() - 7200
    for p in (stale, half_npy, done):
        os.utime(p, (old, old))
    assert sweep_temp(store) == 2
    assert not stale.exists() and not half_npy.exists() and fresh.exists() and done.exists()


@pytest.mark.parametrize("decode,workers", [("exact", 2), ("fast", 2), ("fast", 1)])
def test_a_killed_worker_costs_no_job(store, tmp_path, decode, workers):
    """A worker process that dies (OOM killer, a native crash: in "fast" it decodes in-process, so a
    crash inside libav is one) breaks the pool; the jobs that were in it run again one by one in a
    quarantine process and end ok, and the run goes on. With one worker too: in-process decoding never
    runs in the stage's own process, where a crash would end the run."""
    import os
    import signal
    import threading
    import time

    import psutil

    for i in range(8):
        add_media(store, make_video(tmp_path / f"v{i}.mp4", 3), f"shopa:{i}", "video")
    killed, stop = [], threading.Event()
    me = psutil.Process()
    # the fork server outlives a run: a worker of an earlier test's pool may still be on its way out
    earlier = {p.pid for p in me.children(recursive=True)}

    def kill_one_worker():
        while not stop.is_set() and not killed:
            for p in me.children(recursive=True):
                if p.pid in earlier:
                    continue
                try:
                    # a pool worker (forked from the pool's fork server) once the jobs are queued: the fast
                    # decode of a small video lasts milliseconds, too short to catch a worker in a job
                    if p.name().startswith("python") and "forkserver" in " ".join(p.parent().cmdline()):
                        os.kill(p.pid, signal.SIGKILL)
                        killed.append(p.pid)
                        break
                except (psutil.Error, ProcessLookupError):
                    continue
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        stats = run(store, settings(workers=workers, video_decode=decode), kinds="video", progress=False)
    finally:
        stop.set()
        killer.join(5)
    assert killed and stats.pool_restarts == 1
    assert stats.by_kind == {("video", "ok"): 8}, stats.failures
    assert sorted(r["frame_count"] for r in store.read("media", where="kind = 'frames'").to_pylist()) == [3] * 8


def test_the_workers_of_a_killed_extract_end_with_it(store, tmp_path):
    """SIGKILL an `m5data extract` mid-run: its pool's workers (and the fork server and resource
    tracker beside them) end within seconds instead of waiting for jobs forever."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    for i in range(12):
        add_media(store, make_video(tmp_path / f"v{i}.mp4", 20), f"shopa:{i}", "video")
    cmd = [sys.executable, "-m", "m5data", "--store", str(store.root), "extract", "--kinds", "video,audio",
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            tree = psutil.Process(proc.pid).children(recursive=True)
            if any(p.name().startswith("ffmpeg") for p in tree if p.is_running()):  # a worker is in a job
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before a worker was seen in a job"
        tree = psutil.Process(proc.pid).children(recursive=True)
        workers = [p for p in tree if p.name().startswith("python")]
        assert len(workers) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [p.cmdline()[-1][:80] for p in alive]
    finally:
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass


def _written(root: Path) -> int:
    """Bytes of every file under a store's derived/ and blobs/ areas."""
    return sum(p.stat().st_size for area in ("derived", "blobs") for p in (root / area).rglob("*") if p.is_file())


def test_a_frame_amplifying_video_writes_a_bounded_number_of_bytes(store, tmp_path):
    """Issue 35: one 1080p noise frame in a container claiming 1,200 s wrote 600 full-size JPEGs
    (863 MB). With the default caps the item writes under 100 MB, and its row says it was cut."""
    from support.media_samples import amplifying_video

    row = add_media(store, amplifying_video(tmp_path / "amp.mkv"), "shopa:amp", "video")
    before = _written(store.local_root())
    s = load(overrides={"extract.workers": 1}, environ={}, cwd=Path(__file__).parent)  # the defaults
    run(store, s, kinds="video", progress=False)
    written = _written(store.local_root()) - before
    frames = rows_by(store, "true")[("shopa:amp", "frames")]
    assert written < 100_000_000, f"{written:,} bytes written"
    assert written <= s.extract.max_item_bytes
    assert frames["status"] == "ok" and frames["frame_count"] <= s.extract.max_frames, frames
    meta = json.loads(frames["meta"])
    assert meta["truncated"] and meta["cut"], meta  # the reason the item was cut is on its row
    assert rows_by(store, "true")[("shopa:amp", "video")]["media_id"] == row["media_id"]


def test_a_huge_frame_video_is_refused_before_decoding(store, tmp_path):
    """Issue 35: a 14000x14000 video was decoded by ffmpeg, then failed with 'worker error:
    DecompressionBombError'. The probe's frame size refuses it first: corrupt, with the reason."""
    from support.media_samples import huge_frame_video

    add_media(store, huge_frame_video(tmp_path / "huge.mkv"), "shopa:huge", "video")
    stats = run(store, settings(), kinds="video", progress=False)
    got = rows_by(store, "true")
    video = got[("shopa:huge", "video")]
    assert video["status"] == "corrupt", video
    assert "14000x14000" in video["error"] and "extract.max_video_pixels" in video["error"], video["error"]
    assert ("shopa:huge", "frames") not in got
    assert not (store.local_root() / "derived" / "frames").exists() or not any((store.local_root() / "derived" / "frames").rglob("*.jpg"))
    assert stats.failures == {"video corrupt: frame too large": 1}, stats.failures


def test_outputs_past_the_item_byte_cap_are_too_large_with_the_reason(store, tmp_path):
    """max_item_bytes counts every output of an item: 60 s of sound needs ~1.8 MB of mp3 + MFCC,
    over a 1 MB cap, so the sound is refused and its share leaves the frames no room either."""
    add_media(store, make_video(tmp_path / "v.mp4", 60, size="64x48"), "shopa:long", "video")
    stats = run(store, settings(max_item_bytes=1_000_000), kinds="video,audio", progress=False)
    got = rows_by(store, "true")
    assert got[("shopa:long", "video")]["status"] == "ok"
    for kind in ("frames", "audio", "mfcc"):
        row = got[("shopa:long", kind)]
        assert row["status"] == "too_large" and "extract.max_item_bytes" in row["error"], row
        assert row["blob"] is None
    assert stats.failures == {"video too_large: too large": 1, "audio too_large: too large": 1}, stats.failures
    assert not list((store.local_root() / "derived").rglob("*.jpg")) and not list((store.local_root() / "derived").rglob("*.npy"))

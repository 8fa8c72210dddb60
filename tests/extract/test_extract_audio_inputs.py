"""Audio inputs and odd containers: audio rows get mp3 + MFCC (no frames); a video container with
sound only gets its audio and its picture recorded absent; no step relies on a container duration."""

import json
import subprocess

import numpy as np
import pytest
from support.extract_media import add_media, rows_by, settings
from support.media_samples import make_sample, webm_without_duration

from m5data.extract.run import run

AUDIO_FILES = ["tone.mp3", "bare.mp3", "tone.aac", "tone.m4a", "tone.ogg", "tone.opus", "tone.flac", "tone.wav"]


def mp3_info(path) -> str:
    return subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of",
                           "csv=p=0", str(path)], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("name", AUDIO_FILES)
def test_an_audio_row_gets_mp3_and_mfcc_and_no_frames(store, tmp_path, name):
    add_media(store, make_sample(tmp_path, name, seconds=2.5), "shop:1", "audio", role="audio")
    stats = run(store, settings(), progress=False)
    assert stats.by_kind == {("audio", "ok"): 1}, stats.failures
    got = rows_by(store, "true")
    assert ("shop:1", "frames") not in got
    src = rows_by(store, "kind = 'audio' AND role = 'audio'")[("shop:1", "audio")]
    derived = store.read("media", where="kind = 'audio' AND role = 'derived'").to_pylist()
    assert len(derived) == 1
    mp3, mfcc = derived[0], got[("shop:1", "mfcc")]
    assert src["status"] == "ok" and src["has_audio"] and src["duration"] == pytest.approx(2.5, abs=0.15)
    assert (mp3["status"], mp3["codec"], mp3["source_media_id"]) == ("ok", "mp3", src["media_id"])
    assert mp3_info(store.local_root() / mp3["blob"]) == "mp3,44100"
    assert mfcc["status"] == "ok" and mfcc["frame_count"] == 3  # ceil(2.5 s x 1 fps) blocks
    assert np.load(store.local_root() / mfcc["blob"]).shape == (3, 40, 87)
    assert run(store, settings(), progress=False).n_in == 0  # done: a re-run picks nothing


@pytest.mark.parametrize("name", ["audio_only.mp4", "audio_only.webm", "tone.mp3"])
def test_a_video_with_only_sound_gets_its_audio_and_the_picture_absent(store, tmp_path, name):
    add_media(store, make_sample(tmp_path, name, seconds=2), "shop:v", "video", ext=name.rsplit(".", 1)[1])
    stats = run(store, settings(), progress=False)
    assert stats.by_kind == {("video", "absent"): 1, ("audio", "ok"): 1}, stats.failures
    got = rows_by(store, "true")
    video, frames = got[("shop:v", "video")], got[("shop:v", "frames")]
    assert video["status"] == "ok" and video["has_audio"]  # not corrupt
    assert frames["status"] == "absent" and "no video stream" in frames["error"]
    assert got[("shop:v", "mfcc")]["status"] == "ok" and got[("shop:v", "mfcc")]["frame_count"] == 2
    assert run(store, settings(), progress=False).n_in == 0


def test_webm_without_container_duration_gets_frames_mp3_and_mfcc(store, tmp_path):
    add_media(store, webm_without_duration(tmp_path, seconds=3), "shop:w", "video")
    stats = run(store, settings(), progress=False)
    assert stats.by_kind == {("video", "ok"): 1, ("audio", "ok"): 1}, stats.failures
    got = rows_by(store, "true")
    assert got[("shop:w", "frames")]["frame_count"] == 3
    mfcc = got[("shop:w", "mfcc")]
    assert mfcc["status"] == "ok" and np.load(store.local_root() / mfcc["blob"]).shape == (3, 40, 87)
    assert got[("shop:w", "audio")]["status"] == "ok"
    assert got[("shop:w", "audio")]["duration"] == pytest.approx(3.0, abs=0.1)


def test_webm_without_duration_audio_alone(store, tmp_path):
    """Audio first (no frames row yet): the MFCC blocks follow the decoded sound, not a duration."""
    add_media(store, webm_without_duration(tmp_path, seconds=3), "shop:w", "video")
    stats = run(store, settings(), kinds="audio", progress=False)
    assert stats.by_kind == {("audio", "ok"): 1}, stats.failures
    assert rows_by(store, "kind = 'mfcc'")[("shop:w", "mfcc")]["frame_count"] == 3


def test_ogg_theora_video(store, tmp_path):
    add_media(store, make_sample(tmp_path, "theora.ogv", seconds=2), "shop:o", "video", ext="ogv")
    stats = run(store, settings(), progress=False)
    assert stats.by_kind == {("video", "ok"): 1, ("audio", "ok"): 1}, stats.failures
    got = rows_by(store, "true")
    assert got[("shop:o", "frames")]["frame_count"] == 2
    assert json.loads(got[("shop:o", "video")]["meta"])["audio_codec"] == "vorbis"


def test_an_audio_row_without_sound_is_corrupt_with_a_reason(store, tmp_path):
    add_media(store, make_sample(tmp_path, "theora.ogv", seconds=1), "shop:x", "audio", role="audio", ext="ogv")
    (tmp_path / "noise.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 2000)
    add_media(store, tmp_path / "noise.mp3", "shop:y", "audio", role="audio")
    stats = run(store, settings(), kinds="audio", progress=False)
    got = rows_by(store, "kind = 'audio' AND role = 'audio'")
    assert got[("shop:x", "audio")]["status"] == "ok"  # a video file listed as audio: its soundtrack
    assert got[("shop:y", "audio")]["status"] == "corrupt" and got[("shop:y", "audio")]["error"]
    assert stats.by_kind == {("audio", "ok"): 1, ("audio", "corrupt"): 1}

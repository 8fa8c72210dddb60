"""A video leaves an export only when a check of the video file itself found no face (m5data/egress/video.py,
export.blur_faces): its extracted frames are no proof. One store holds a video per case, built with ffmpeg
from the public-domain astronaut portrait and face-free JD product photos; each case's premise (extract's
frames of it show no face, or there are none) is asserted beside its outcome."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.extract_media import add_media
from support.extract_media import settings as extract_settings

from m5data.config import load
from m5data.egress import video as egress_video
from m5data.export.run import export
from m5data.extract.run import run as extract
from m5data.storage import Store

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"  # ../shared beside the checkout

FACE = "faces/astronaut.png"
PHOTO = "images/550f6d32Nf6b37d9d.jpg"
PHOTO2 = "images/577c67c9Nefee4677.jpg"
CASES = ("before", "between", "late", "tracks", "clean")  # product source ids: the videos' item ids


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def _face_between(media: Path, out: Path, start: float, end: float, seconds: float, fps: int, side: int) -> Path:
    """A ``seconds`` video of the product photo at ``fps`` where the astronaut is shown from ``start`` to ``end``."""
    _ffmpeg("-loop", "1", "-i", media / PHOTO, "-loop", "1", "-i", media / FACE, "-filter_complex",
            f"[0]scale={side}:{side},setsar=1[a];[1]scale={side}:{side},setsar=1[b];"
            f"[a][b]overlay=enable='between(t,{start},{end})'", "-t", seconds, "-r", fps, "-pix_fmt", "yuv420p", out)
    return out


def _still(picture: Path, out: Path, seconds: float, side: int) -> Path:
    _ffmpeg("-loop", "1", "-i", picture, "-vf", f"scale={side}:{side},setsar=1", "-t", seconds, "-r", 4,
            "-pix_fmt", "yuv420p", out)
    return out


def _settings(store, **over):
    return load(None, {"store.path": str(store.root), "export.workers": 1, **over}, environ={})


def _frames_faces(store, pid: str) -> int | None:
    """Faces extract's frames of the product's video show (None: no frames row)."""
    frames = store.read("media", where=f"kind = 'frames' AND product_id = '{pid}'").to_pylist()
    if not frames:
        return None
    rows = store.read("faces", where=f"blob = '{frames[0]['blob']}'").to_pylist()
    return rows[0]["n_faces"] if rows else None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(store, first export's folder, its report, the blobs scanned per export)."""
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} not present")
    media, tmp = REALDATA / "media", tmp_path_factory.mktemp("egress-video")
    store = Store.init(tmp / "store")
    store.write("products", [{"product_id": f"shopa:{c}", "platform": "shopa", "source_id": c, "title": "商品"}
                             for c in CASES])
    for c in CASES:
        add_media(store, media / PHOTO, f"shopa:{c}", "image")
    # (b) the face shows 1.4-1.7 s only: extract's 1-fps frames (0, 1, 2 s) miss it
    add_media(store, _face_between(media, tmp / "between.mp4", 1.4, 1.69, 3, 10, 256), "shopa:between", "video")
    # (d) the default track (first, small) shows the face; the second, larger one (the one extract reads) does not
    small, large = _still(media / FACE, tmp / "small.mp4", 2, 160), _still(media / PHOTO2, tmp / "large.mp4", 2, 320)
    _ffmpeg("-i", small, "-i", large, "-map", "0:v", "-map", "1:v", "-c", "copy", "-disposition:v:0", "default",
            "-disposition:v:1", "0", tmp / "tracks.mp4")
    add_media(store, tmp / "tracks.mp4", "shopa:tracks", "video")
    add_media(store, _still(media / PHOTO2, tmp / "clean.mp4", 2, 256), "shopa:clean", "video")
    extract(store, extract_settings(kinds="image,video", detect_faces=True, frame_max_side=320), kinds="image,video",
            progress=False)
    # (c) 30 frames a second: extract's cut (extract.max_frames 300) ends at 10 s; the face shows from 10.4 s
    add_media(store, _face_between(media, tmp / "late.mp4", 10.4, 11, 11, 30, 256), "shopa:late", "video")
    extract(store, extract_settings(kinds="video", detect_faces=True, frame_max_side=96, frame_fps=30.0),
            kinds="video", progress=False)
    # (a) a face video stored after extract ran: no frames at all
    add_media(store, _still(media / FACE, tmp / "before.mp4", 2, 256), "shopa:before", "video")
    store.write("splits", [{"product_id": f"shopa:{c}", "split": "train", "version": "v1"} for c in CASES])

    scanned: list[list[str]] = []
    real = egress_video._scan_chunk

    def counting(store_, blobs, pool):
        scanned[-1].extend(blobs)
        return real(store_, blobs, pool)

    mp = pytest.MonkeyPatch()
    mp.setattr(egress_video, "_scan_chunk", counting)
    try:
        scanned.append([])
        report = export(store, _settings(store), out=tmp / "out", fmt="m5product")
        yield store, tmp / "out", report, scanned
    finally:
        mp.undo()


def _copied(out: Path) -> set[str]:
    return {p.stem for p in (out / "videos").glob("*")}


def test_a_face_video_exported_before_extract_ran_is_withheld(built):
    store, out, report, _ = built
    assert _frames_faces(store, "shopa:before") is None  # no frames: nothing extracted to look at
    assert "before" not in _copied(out)


def test_a_face_shown_only_between_the_whole_second_frames_is_withheld(built):
    store, out, _, _ = built
    assert _frames_faces(store, "shopa:between") == 0  # the 1-fps frames miss the 0.3 s face
    assert "between" not in _copied(out)


def test_a_face_after_the_extractors_frame_cut_is_withheld(built):
    store, out, _, _ = built
    frames = store.read("media", where="kind = 'frames' AND product_id = 'shopa:late'").to_pylist()[0]
    assert frames["frame_count"] == 300 and _frames_faces(store, "shopa:late") == 0  # cut at frame 300 (10 s)
    assert "late" not in _copied(out)


def test_a_face_in_the_default_track_is_withheld_though_the_larger_track_shows_none(built):
    store, out, _, _ = built
    assert _frames_faces(store, "shopa:tracks") == 0  # extract read the larger, face-free track
    assert "tracks" not in _copied(out)
    verdict = egress_video.scan(store.local_root() / store.read("media", where="product_id = 'shopa:tracks' AND "
                                                                        "kind = 'video'").to_pylist()[0]["blob"])
    assert verdict.status == "faces" and verdict.stream == 0


def test_a_face_free_video_is_copied_and_the_withheld_are_counted_with_their_reason(built):
    store, out, report, _ = built
    assert _copied(out) == {"clean"}
    details = report.stats.details
    assert details["videos_withheld"] == 4
    assert details["videos_withheld_reasons"] == {"faces": 4}
    shard = json.loads(next((out / "_shards").glob("*.stats.json")).read_text())
    assert shard["videos_withheld_reasons"] == {"faces": 4}
    assert not list(Path(tempfile.gettempdir()).glob(f"m5data-export-videos-*.{os.getpid()}-*"))  # verdicts file gone


def test_verdicts_are_kept_in_the_faces_table_and_a_nightly_reexport_does_not_rescan(built, tmp_path):
    store, _, _, scanned = built
    assert sorted(scanned[0]) == sorted(r["blob"] for r in store.read("media", where="kind = 'video'").to_pylist())
    rows = {r["product_id"]: r for r in store.read("faces", where="kind = 'video'").to_pylist()}
    assert {p: r["n_faces"] > 0 for p, r in rows.items()} == {f"shopa:{c}": c != "clean" for c in CASES}
    scanned.append([])
    again = export(store, _settings(store), out=tmp_path / "again", fmt="m5product")
    assert scanned[-1] == []  # every verdict came from the faces table
    assert _copied(tmp_path / "again") == {"clean"} and again.stats.details["videos_withheld"] == 4


def test_an_undecodable_video_is_not_checked_and_withheld(tmp_path, realdata):
    verdict = egress_video.scan(realdata / "media/broken/empty.webm")
    assert verdict.status == "not_checked" and verdict.withheld() == "not_checked: undecodable"
    assert egress_video.verdict_row("blobs/x.webm", verdict) is None  # not kept: looked at again


def test_a_video_over_the_scanning_cap_is_not_checked(tmp_path, realdata):
    clip = _still(realdata / "media" / PHOTO, tmp_path / "long.mp4", 3, 128)
    verdict = egress_video.scan(clip, max_pictures=8)  # 3 s at 4 a second: 13 pictures
    assert verdict.status == "not_checked" and verdict.withheld() == "not_checked: over the cap"


def test_the_verb_says_why_videos_were_left_out(built, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    store, _, _, _ = built
    result = CliRunner().invoke(app, ["--store", str(store.root), "export", "--format", "m5product", "--out",
                                      str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "4 original video(s) left out: faces 4" in " ".join(result.output.split())


def test_blur_faces_off_checks_no_video(built, tmp_path):
    store, _, _, scanned = built
    scanned.append([])
    report = export(store, _settings(store, **{"export.blur_faces": False}), out=tmp_path / "out", fmt="m5product")
    assert scanned[-1] == [] and _copied(tmp_path / "out") == set(CASES)
    assert not report.stats.details.get("videos_withheld")


def test_an_undecodable_video_is_withheld_as_not_checked_and_tried_again_next_time(store, realdata, tmp_path):
    media = realdata / "media"
    store.write("products", [{"product_id": "shopa:bad", "platform": "shopa", "source_id": "bad", "title": "商品"}])
    add_media(store, media / PHOTO, "shopa:bad", "image")
    add_media(store, media / "broken/empty.webm", "shopa:bad", "video")
    store.write("splits", [{"product_id": "shopa:bad", "split": "train", "version": "v1"}])
    report = export(store, _settings(store), out=tmp_path / "out", fmt="m5product")
    assert not (tmp_path / "out" / "videos").exists() or not _copied(tmp_path / "out")
    assert report.stats.details["videos_withheld_reasons"] == {"not_checked: undecodable": 1}
    assert store.read("faces", where="kind = 'video'").num_rows == 0  # not kept: the next export looks again


def _face_and_clean_videos(store, media: Path, tmp: Path) -> None:
    """Two products in the train split, each with a picture and a still video: shopa:face's shows a
    face, shopa:clean's none."""
    store.write("products", [{"product_id": f"shopa:{c}", "platform": "shopa", "source_id": c, "title": "商品"}
                             for c in ("face", "clean")])
    for c, picture in (("face", FACE), ("clean", PHOTO2)):
        add_media(store, media / PHOTO, f"shopa:{c}", "image")
        add_media(store, _still(media / picture, tmp / f"{c}.mp4", 2, 256), f"shopa:{c}", "video")
    store.write("splits", [{"product_id": f"shopa:{c}", "split": "train", "version": "v1"} for c in ("face", "clean")])


def test_an_s3_stores_videos_are_checked_from_the_bucket_and_their_verdicts_kept_there(s3_url, aws, realdata,
                                                                                     tmp_path):
    media = realdata / "media"
    store = Store.init(s3_url)
    _face_and_clean_videos(store, media, tmp_path)
    report = export(store, _settings(store), out=tmp_path / "a", fmt="m5product")
    assert _copied(tmp_path / "a") == {"clean"} and report.stats.details["videos_withheld_reasons"] == {"faces": 1}
    kept = {r["product_id"]: r["n_faces"] for r in Store.open(s3_url).read("faces", where="kind = 'video'").to_pylist()}
    assert kept == {"shopa:face": 1, "shopa:clean": 0}


def test_verdicts_written_in_many_parts_are_compacted(store, realdata, tmp_path, monkeypatch):
    from m5data.export import faces

    media = realdata / "media"
    _face_and_clean_videos(store, media, tmp_path)
    monkeypatch.setattr(egress_video, "BATCH", 1)  # a part per video
    monkeypatch.setattr(faces, "FACES_PARTS", 1)
    monkeypatch.setattr(faces, "detect_missing", lambda *a: 0)  # the pictures' rows: none, only the videos'
    export(store, _settings(store), out=tmp_path / "a", fmt="m5product")
    assert len(store.parts("faces")) == 1
    kept = {r["product_id"]: r["n_faces"] > 0 for r in store.read("faces", where="kind = 'video'").to_pylist()}
    assert kept == {"shopa:face": True, "shopa:clean": False}


def test_a_scan_past_its_time_is_not_checked(tmp_path, realdata):
    clip = _still(realdata / "media" / PHOTO, tmp_path / "slow.mp4", 3, 128)
    verdict = egress_video.scan(clip, timeout=0)
    assert verdict.status == "not_checked" and verdict.withheld() == "not_checked: timed out"

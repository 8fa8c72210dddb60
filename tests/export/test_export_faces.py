"""Faces blurred in every export layout's copy (export.blur_faces): the portrait's face differs inside its box
and nowhere else, the product photo goes out byte for byte, the store keeps its media; boxes extract did
not make are detected once at export time and kept."""

from __future__ import annotations

import subprocess

import pytest
from support.export_pictures import _exported, _inside_and_outside, _stored
from support.extract_media import add_media
from support.extract_media import settings as extract_settings

from m5data.config import load
from m5data.export.run import export
from m5data.extract.run import run as extract
from m5data.faces.boxes import boxes_by_frame

PHOTO = "images/550f6d32Nf6b37d9d.jpg"


def _store(store, realdata, tmp_path, *, detect: bool, video: bool = False):
    media = realdata / "media"
    store.write("products", [{"product_id": "shopa:astro", "platform": "shopa", "source_id": "astro", "title": "宇航员"},
                             {"product_id": "shopa:jd", "platform": "shopa", "source_id": "jd", "title": "商品"}])
    add_media(store, media / "faces/astronaut.png", "shopa:astro", "image")
    add_media(store, media / PHOTO, "shopa:jd", "image")
    kinds = "image"
    if video:
        clip = tmp_path / "astro.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-i", str(media / "faces/astronaut.png"), "-t", "2",
                        "-r", "4", "-pix_fmt", "yuv420p", str(clip)], check=True)
        add_media(store, clip, "shopa:astro", "video")
        kinds = "image,video"
    extract(store, extract_settings(kinds=kinds, detect_faces=detect, frame_max_side=320), kinds=kinds,
            progress=False)
    store.write("splits", [{"product_id": p, "split": "train", "version": "v1"} for p in ("shopa:astro", "shopa:jd")])
    return store


def _settings(store, **over):
    return load(None, {"store.path": str(store.root), "export.workers": 1, **over}, environ={})


def _box(store, pid: str, kind: str = "image_norm"):
    row = store.read("faces", where=f"product_id = '{pid}' AND kind = '{kind}'").to_pylist()[0]
    return boxes_by_frame(row)[0][0]


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "m5product"])
def test_every_layout_blurs_the_face_and_leaves_the_product_photo(store, realdata, tmp_path, fmt):
    _store(store, realdata, tmp_path, detect=True)
    portrait, photo = _stored(store, "shopa:astro"), _stored(store, "shopa:jd")
    report = export(store, _settings(store), out=tmp_path / "out", fmt=fmt)
    got = _exported(tmp_path / "out", fmt)
    inside, outside = _inside_and_outside(portrait, got["shopa~3Aastro"], _box(store, "shopa:astro"))
    assert inside > 10 and outside < 1.5  # the face is gone; elsewhere a re-encode at the same quality
    assert got["shopa~3Ajd"] == photo  # no face: the very bytes
    assert report.stats.details["faces_blurred"] == 1
    assert _stored(store, "shopa:astro") == portrait  # the store's media as they were


def test_frames_are_blurred_in_webdataset(store, realdata, tmp_path):
    _store(store, realdata, tmp_path, detect=True, video=True)
    frames = store.read("media", where="kind = 'frames'").to_pylist()[0]
    export(store, _settings(store), out=tmp_path / "out", fmt="webdataset")
    got = _exported(tmp_path / "out", "webdataset")
    first = (store.local_root() / frames["blob"] / "000001.jpg").read_bytes()
    inside, outside = _inside_and_outside(first, got["shopa~3Aastro/frame000"], _box(store, "shopa:astro", "frames"))
    assert inside > 10 and outside < 2.5  # ffmpeg wrote the frame, OpenCV re-encodes it: a little more noise


def test_boxes_extract_did_not_make_are_detected_once_at_export(store, realdata, tmp_path):
    _store(store, realdata, tmp_path, detect=False)
    assert store.parts("faces") == []
    portrait = _stored(store, "shopa:astro")
    report = export(store, _settings(store), out=tmp_path / "a", fmt="webdataset")
    assert report.stats.details["faces_detected"] == 2 and report.stats.details["faces_blurred"] == 1
    assert {r["product_id"]: r["n_faces"] for r in store.read("faces").to_pylist()} == {"shopa:astro": 1, "shopa:jd": 0}
    assert _exported(tmp_path / "a", "webdataset")["shopa~3Aastro"] != portrait
    parts = len(store.parts("faces"))
    again = export(store, _settings(store), out=tmp_path / "b", fmt="webdataset", full=True)
    assert again.stats.details["faces_detected"] == 0 and len(store.parts("faces")) == parts


def test_an_export_that_leaves_faces_in_many_parts_compacts_it(store, realdata, tmp_path, monkeypatch):
    """Issue 75, 8: export's face look-up wrote 200 rows a part (501 parts at 100k products, ~9 s for every
    read of the table after): past ``FACES_PARTS`` parts it compacts the table, rows unchanged."""
    from m5data.export import faces

    _store(store, realdata, tmp_path, detect=False)
    monkeypatch.setattr(faces, "BATCH", 1)  # a part per picture: two parts
    monkeypatch.setattr(faces, "FACES_PARTS", 1)
    export(store, _settings(store), out=tmp_path / "a", fmt="webdataset")
    assert len(store.parts("faces")) == 1
    assert {r["product_id"]: r["n_faces"] for r in store.read("faces").to_pylist()} == {"shopa:astro": 1, "shopa:jd": 0}


def test_the_verb_prints_the_faces_blurred(store, realdata, tmp_path):
    from typer.testing import CliRunner

    from m5data.cli import app

    _store(store, realdata, tmp_path, detect=False)
    result = CliRunner().invoke(app, ["--store", str(store.root), "export", "--out", str(tmp_path / "out"),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "faces blurred: 1 (2 picture(s) looked at for faces now)" in result.output


def test_blur_faces_off_exports_the_stored_bytes(store, realdata, tmp_path):
    _store(store, realdata, tmp_path, detect=True)
    report = export(store, _settings(store, **{"export.blur_faces": False}), out=tmp_path / "out", fmt="webdataset")
    assert _exported(tmp_path / "out", "webdataset")["shopa~3Aastro"] == _stored(store, "shopa:astro")
    assert "faces_blurred" not in report.stats.details


def test_m5product_withholds_a_video_whose_frames_show_a_face(store, realdata, tmp_path):
    _store(store, realdata, tmp_path, detect=True, video=True)
    report = export(store, _settings(store), out=tmp_path / "out", fmt="m5product")
    assert not list((tmp_path / "out").rglob("videos/*"))
    assert report.stats.details["videos_withheld"] == 1


def test_boxes_are_detected_at_export_on_an_s3_store_and_kept_in_its_bucket(s3_url, aws, realdata, tmp_path):
    """An S3 store's pictures are read from the bucket for detection, the face is blurred in the local
    export, and the boxes found are kept in the bucket: a second export detects nothing again."""
    from m5data.storage import Store

    store = _store(Store.init(s3_url), realdata, tmp_path, detect=False)
    assert store.parts("faces") == []
    row = store.read("media", where="kind = 'image_norm' AND product_id = 'shopa:astro'").to_pylist()[0]
    portrait = store.read_bytes(row["blob"])
    report = export(store, _settings(store), out=tmp_path / "a", fmt="webdataset")
    assert report.stats.details["faces_detected"] == 2 and report.stats.details["faces_blurred"] == 1
    found = {r["product_id"]: r for r in Store.open(s3_url).read("faces").to_pylist()}
    assert {pid: r["n_faces"] for pid, r in found.items()} == {"shopa:astro": 1, "shopa:jd": 0}
    inside, outside = _inside_and_outside(portrait, _exported(tmp_path / "a", "webdataset")["shopa~3Aastro"],
                                          boxes_by_frame(found["shopa:astro"])[0][0])
    assert inside > 10 and outside < 1.5
    again = export(store, _settings(store), out=tmp_path / "b", fmt="webdataset", full=True)
    assert again.stats.details["faces_detected"] == 0


def test_the_boxes_an_export_loads_are_the_newest_rows_with_faces(store):
    """``load_boxes`` copies the ``faces`` rows with faces DuckDB-side: across parts, the newest row of a blob
    wins (a picture looked at again that now shows none leaves), the boxes' lists as stored."""
    from m5data.export.faces import load_boxes
    from m5data.export.run import _stream_connection

    def row(blob, boxes, frames=None):
        return {"blob": blob, "product_id": "p:1", "kind": "frames" if frames else "image_norm", "width": 720,
                "height": 405, "n_faces": len(boxes), "frame": frames or [0] * len(boxes),
                "x0": [b[0] for b in boxes], "y0": [b[1] for b in boxes], "x1": [b[2] for b in boxes],
                "y1": [b[3] for b in boxes], "score": [0.9] * len(boxes)}

    store.write("faces", [row("a.jpg", [(1, 2, 3, 4)]), row("b.jpg", [(5, 6, 7, 8)]), row("c.jpg", [])])
    store.write("faces", [row("b.jpg", []), row("f/", [(1, 1, 9, 9), (2, 2, 8, 8)], frames=[0, 3])])
    con = _stream_connection(store)
    try:
        load_boxes(store, con)
        got = {r[0]: r[1:] for r in con.execute("SELECT * FROM export_faces").fetchall()}
    finally:
        con.close()
    assert got == {"a.jpg": (720, 405, [0], [1.0], [2.0], [3.0], [4.0]),
                   "f/": (720, 405, [0, 3], [1.0, 2.0], [1.0, 2.0], [9.0, 8.0], [9.0, 8.0])}

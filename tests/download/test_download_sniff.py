"""Content sniffing (magic bytes) and image re-encoding, on files made by real encoders."""

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from support.media_samples import SAMPLES, make_sample

from m5data.download.resize import ImageDecodeError, ImageTooLarge, reencode
from m5data.download.sniff import SNIFF_BYTES, sniff

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "media"


def _pillow(fmt: str, mode: str = "RGB", size=(32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 30) if mode == "RGB" else None).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("fmt, mime, ext", [
    ("JPEG", "image/jpeg", "jpg"), ("PNG", "image/png", "png"), ("GIF", "image/gif", "gif"),
    ("WEBP", "image/webp", "webp"), ("BMP", "image/bmp", "bmp"), ("TIFF", "image/tiff", "tif"),
])
def test_images_are_sniffed(fmt, mime, ext):
    got = sniff(_pillow(fmt)[:SNIFF_BYTES])
    assert (got.kind, got.mime, got.ext) == ("image", mime, ext)


def test_big_endian_tiff_is_sniffed():
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, "TIFF")
    little = out.getvalue()
    assert little[:4] == b"II*\x00" and sniff(b"MM\x00*" + little[4:]).ext == "tif"


@pytest.mark.parametrize("name, mime, ext", [
    ("video/chaplin.mp4", "video/mp4", "mp4"), ("video/example.mp4", "video/mp4", "mp4"),
    ("video/big_buck_bunny_432_433.webm", "video/webm", "webm"),
])
def test_real_videos_are_sniffed(name, mime, ext):
    path = MEDIA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    got = sniff(path.read_bytes()[:SNIFF_BYTES])
    assert (got.kind, got.mime, got.ext) == ("video", mime, ext)


@pytest.mark.parametrize("container, mime, ext", [
    ("mov", "video/quicktime", "mov"), ("matroska", "video/x-matroska", "mkv"), ("avi", "video/x-msvideo", "avi"),
    ("flv", "video/x-flv", "flv"), ("mpegts", "video/mp2t", "ts"), ("mp4", "video/mp4", "mp4"),
])
def test_ffmpeg_containers_are_sniffed(tmp_path, container, mime, ext):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not on PATH")
    out = tmp_path / f"clip.{ext}"
    codec = ["-c:v", "flv1"] if container == "flv" else ["-c:v", "mpeg4"]
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5", "-t", "0.4",
                    *codec, "-f", container, str(out)], check=True, timeout=60)
    got = sniff(out.read_bytes()[:SNIFF_BYTES])
    assert (got.kind, got.mime, got.ext) == ("video", mime, ext)


@pytest.mark.parametrize("head", [
    b"", b"\xff\xd8", b"<!DOCTYPE html><html>", b'{"error": "not found"}', b"BM but just text " * 4,
    b"RIFF\x10\x00\x00\x00WAVX", b"\x00\x00\x00\x20ftypheic\x00\x00\x00\x00",
    b"GIF90a", b"\x47" + b"\x00" * 400,
    b"\xff\xfeh\x00e\x00l\x00l\x00o\x00", b"\xff\xfb\xff\xff" + b"\x00" * 100,  # UTF-16 text; a bad MPEG header
    b"OggS\x00\x02" + b"\x00" * 40, b"ID3\x09 not a tag",
])
def test_non_media_is_not_sniffed(head):
    assert sniff(head) is None


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_audio_formats_and_ogg_video_are_sniffed(tmp_path, name):
    """mp3 (with and without ID3), AAC/ADTS, M4A, Ogg Vorbis/Opus, FLAC, WAV, Ogg Theora; audio-only
    MP4/WebM containers stay video (extract takes their audio and records the picture absent)."""
    *_, kind, mime, ext = SAMPLES[name]
    got = sniff(make_sample(tmp_path, name).read_bytes()[:SNIFF_BYTES])
    assert got is not None and (got.kind, got.mime, got.ext) == (kind, mime, ext)


def test_reencode_keeps_aspect_and_never_upscales():
    small = reencode(_pillow("PNG", size=(100, 50)), max_side=256, quality=80)
    assert (small.width, small.height) == (100, 50)
    big = reencode(_pillow("JPEG", size=(1000, 400)), max_side=256, quality=80)
    assert (big.width, big.height, big.orig_width, big.orig_height) == (256, 102, 1000, 400)
    with Image.open(io.BytesIO(big.data)) as im:
        assert im.format == "JPEG" and im.size == (256, 102)


def test_reencode_flattens_alpha_on_white_and_converts_cmyk():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    out = io.BytesIO()
    rgba.save(out, "PNG")
    flat = reencode(out.getvalue(), max_side=0, quality=90)
    with Image.open(io.BytesIO(flat.data)) as im:
        assert im.mode == "RGB" and min(im.getpixel((20, 20))) > 245  # white, not black or red
    cmyk_path = MEDIA / "images" / "pil_sample_cmyk.jpg"
    if cmyk_path.is_file():
        res = reencode(cmyk_path.read_bytes(), max_side=64, quality=90)
        assert res.orig_mode == "CMYK" and max(res.width, res.height) == 64
        with Image.open(io.BytesIO(res.data)) as im:
            assert im.mode == "RGB"


def test_reencode_applies_exif_orientation():
    path = MEDIA / "images" / "hopper_orientation_6.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with Image.open(path) as im:
        from PIL import ImageOps

        expected = ImageOps.exif_transpose(im).convert("RGB")
    res = reencode(path.read_bytes(), max_side=0, quality=95)
    with Image.open(io.BytesIO(res.data)) as im:
        assert im.getexif().get(0x0112, 1) == 1
        # same picture as Pillow's own exif_transpose (within JPEG re-encoding error)
        a, b = im.convert("RGB").resize((16, 16)), expected.resize((16, 16))
        diff = sum(abs(x - y) for p, q in zip(a.getdata(), b.getdata()) for x, y in zip(p, q)) / (16 * 16 * 3)
        assert diff < 8


def test_reencode_rejects_undecodable_and_oversized_images():
    path = MEDIA / "broken" / "truncated_jpeg.jpg"
    if path.is_file():
        with pytest.raises(ImageDecodeError, match="truncated"):
            reencode(path.read_bytes(), max_side=256, quality=80)
    with pytest.raises(ImageDecodeError):
        reencode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, max_side=256, quality=80)
    # 12000 x 16000 = 192 Mpx: over twice Pillow's bomb limit, refused before decoding (cheap: PNG of one colour)
    bomb = io.BytesIO()
    Image.new("1", (12000, 16000)).save(bomb, "PNG")
    with pytest.raises(ImageTooLarge):
        reencode(bomb.getvalue(), max_side=256, quality=80)


def _test_photo(mode: str, orientation: int) -> bytes:
    """A 400x250 JPEG with a gradient, a red block top-left and a green bar right; EXIF ``orientation``."""
    from PIL import ImageDraw

    im = Image.linear_gradient("L").resize((400, 250)).convert("RGB")
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 0, 80, 50], fill=(230, 20, 20))
    draw.rectangle([360, 0, 399, 249], fill=(20, 200, 40))
    draw.ellipse([150, 80, 260, 200], fill=(30, 30, 220))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    im.convert(mode).save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_fast_path_gives_the_pillow_paths_picture(mode, orientation):
    """simplejpeg + OpenCV (the fast path) and Pillow give the same upright, resized picture."""
    import numpy as np

    from m5data.download.resize import _reencode_jpeg

    data = _test_photo(mode, orientation)
    with Image.open(io.BytesIO(data)) as header:
        assert _reencode_jpeg(data, header, 128, 90) is not None  # the fast path did take this image
    fast, slow = reencode(data, 128, 90), reencode(data, 128, 90, fast=False)
    assert (fast.width, fast.height, fast.orig_width, fast.orig_height, fast.orig_mode) == \
        (slow.width, slow.height, slow.orig_width, slow.orig_height, slow.orig_mode)
    assert (fast.width, fast.height) == ((128, 80) if orientation < 5 else (80, 128))
    with Image.open(io.BytesIO(fast.data)) as a, Image.open(io.BytesIO(slow.data)) as b:
        assert a.mode == b.mode == mode and a.getexif().get(0x0112, 1) == 1
        diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    assert diff.mean() < 3 and np.percentile(diff, 99) < 40  # re-encoding noise, not a flipped or shifted image


def test_jpeg_fast_path_refuses_truncated_streams_and_so_does_pillow():
    """A cut-off JPEG is not stored with grey rows: the fast path refuses it (libjpeg's premature end,
    issue 75) and so does the Pillow path."""
    from m5data.download.resize import _reencode_jpeg

    data = _test_photo("RGB", 1)
    cut = data[: len(data) * 2 // 3]
    with Image.open(io.BytesIO(cut)) as header, pytest.raises(ImageDecodeError, match="truncated"):
        _reencode_jpeg(cut, header, 128, 90)
    for fast in (True, False):
        with pytest.raises(ImageDecodeError, match="truncated"):
            reencode(cut, 128, 90, fast=fast)

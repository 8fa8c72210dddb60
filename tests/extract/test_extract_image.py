"""Image normalisation: orientation, modes, sizes, tiers, phash, and every broken kind of input."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from m5data.extract.image import normalise_image, quality_tier
from m5data.extract.video import MediaError


def norm(src, tmp_path, **kw):
    return normalise_image(src, tmp_path / "out" / (src.stem + ".jpg"), **kw)


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_real_product_photos(realdata, tmp_path):
    for src in sorted((realdata / "media/images").glob("5*.jpg")):
        n = norm(src, tmp_path, max_side=400)
        with Image.open(src) as orig:
            assert (n.orig_width, n.orig_height) == orig.size
        assert max(n.width, n.height) == 400 and n.path.is_file() and n.bytes == n.path.stat().st_size
        with Image.open(n.path) as out:
            assert out.format == "JPEG" and out.mode == "RGB" and out.size == (n.width, n.height)
        assert len(n.phash) == 16 and int(n.phash, 16) >= 0


def test_real_exif_rotated_jpeg_is_turned_upright(realdata, tmp_path):
    src = realdata / "media/images/hopper_orientation_6.jpg"
    n = norm(src, tmp_path)
    assert n.orientation == 6
    with Image.open(src) as raw:
        upright = np.asarray(raw.transpose(Image.Transpose.ROTATE_270).convert("RGB"), dtype=np.int16)
        sideways = np.asarray(raw.convert("RGB"), dtype=np.int16)
    out = pixels(n.path)
    assert np.abs(out - upright).mean() < 6  # JPEG re-encoding noise only
    assert np.abs(out - sideways).mean() > 25
    with Image.open(n.path) as im:
        assert im.getexif().get(0x0112) in (None, 1)  # no orientation left to apply twice


def test_real_cmyk_jpeg_becomes_rgb_with_the_right_colours(realdata, tmp_path):
    n = norm(realdata / "media/images/pil_sample_cmyk.jpg", tmp_path)
    assert n.orig_mode == "CMYK"
    out = pixels(n.path)
    red = (out[..., 0] > 180) & (out[..., 1] < 80) & (out[..., 2] < 80)
    assert 0.05 < red.mean() < 0.3  # red lettering and a red corner mark ...
    assert np.median(out[~red]) < 40  # ... on black (an inverted CMYK decode would give white)


@pytest.mark.parametrize("name, reason", [
    ("media/broken/truncated_jpeg.jpg", "truncated image"),
    ("media/broken/broken_data_stream.png", "corrupt image data"),
])
def test_real_broken_images_are_corrupt_with_a_reason(realdata, tmp_path, name, reason):
    with pytest.raises(MediaError) as err:
        norm(realdata / name, tmp_path)
    assert err.value.status == "corrupt" and err.value.reason == reason and str(err.value).startswith(reason)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_zero_length_and_unsupported_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MediaError, match="zero-length file"):
        norm(tmp_path / "empty.jpg", tmp_path)
    (tmp_path / "page.jpg").write_text("<html>not an image</html>")
    with pytest.raises(MediaError) as err:
        norm(tmp_path / "page.jpg", tmp_path)
    assert err.value.status == "corrupt" and err.value.reason == "unsupported image format"


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (400, 300), 0).save(tmp_path / "big.png")
    with pytest.raises(MediaError) as err:
        norm(tmp_path / "big.png", tmp_path, max_pixels=100_000)
    assert err.value.status == "too_large" and err.value.reason == "decompression bomb"
    assert "120,000" in str(err.value) or "120000" in str(err.value)
    assert norm(tmp_path / "big.png", tmp_path, max_pixels=200_000).orig_width == 400


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (40, 40), 0)
    im.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    im.paste(1, (0, 0, 20, 40))  # left half red, right half index 0 = transparent blue
    im.save(tmp_path / "p.png", transparency=0)
    out = pixels(norm(tmp_path / "p.png", tmp_path).path)
    assert out[20, 5, 0] > 230 and out[20, 5, 1] < 40  # red stays red
    assert (out[20, 35] > 240).all()  # transparent becomes white, not blue or black


def test_rgba_webp_and_animated_gif_first_frame(tmp_path):
    rgba = Image.new("RGBA", (30, 30), (0, 128, 0, 0))
    rgba.paste((0, 128, 0, 255), (0, 0, 15, 30))
    rgba.save(tmp_path / "a.webp", lossless=True)
    n = norm(tmp_path / "a.webp", tmp_path)
    out = pixels(n.path)
    assert n.orig_format == "WEBP" and out[15, 3, 1] > 100 and out[15, 3, 0] < 40 and (out[15, 27] > 240).all()

    frames = [Image.new("RGB", (24, 24), c) for c in ("red", "lime", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    n = norm(tmp_path / "anim.gif", tmp_path)
    out = pixels(n.path)
    assert n.frames == 3 and out[..., 0].mean() > 200 and out[..., 2].mean() < 40  # the first (red) frame


def test_16_bit_greyscale_keeps_its_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    n = norm(tmp_path / "deep.png", tmp_path)
    out = pixels(n.path)[..., 0]
    assert out[:, 0].mean() < 10 and out[:, -1].mean() > 245 and 100 < out[:, 32].mean() < 155


def test_quality_tiers_and_phash_survives_resizing(realdata, tmp_path):
    assert [quality_tier(*s) for s in [(800, 800), (1200, 600), (599, 2000), (300, 300), (220, 220), (64, 50)]] \
        == [1, 1, 2, 2, 3, 3]
    assert quality_tier(220, 220, high=200, medium=100) == 1
    src = realdata / "media/images/550f6d32Nf6b37d9d.jpg"
    big = norm(src, tmp_path)
    with Image.open(src) as im:
        ImageOps.contain(im, (200, 200)).save(tmp_path / "small.jpg", quality=70)
    small = norm(tmp_path / "small.jpg", tmp_path)
    assert big.tier == 1 and small.tier == 3
    distance = bin(int(big.phash, 16) ^ int(small.phash, 16)).count("1")
    other = norm(realdata / "media/images/577c67c9Nefee4677.jpg", tmp_path)
    assert distance <= 6 < bin(int(big.phash, 16) ^ int(other.phash, 16)).count("1")

"""Small main images of the scale world: 48-64 px JPEGs drawn from the instance's look.

The instance fixes the picture (class hue, sub-class shape and colour, level-3 stripes, and an 8x8
block pattern from its own seed, so that no two instances look alike to a perceptual hash); the
listing's variant (a crop of 0-3 px, brightness, JPEG quality) makes duplicate listings
near-identical re-encodings of one photo, as in the demo world. Drawn with numpy (a few hundred
microseconds an image): a million of them must not take hours.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from ..media import _shape

_BASE = 64  # the instance's picture; a listing crops and scales it to its own size


@lru_cache(maxsize=64)
def _mask(shape: int, stripes: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (shape, stripes) of a sub-class's shape and a level-3 class's stripes."""
    from PIL import Image, ImageDraw

    shape_img = Image.new("L", (4 * _BASE, 4 * _BASE), 0)  # drawn at 4x: the demo's shapes assume room
    _shape(ImageDraw.Draw(shape_img), shape, (60, 60, 196, 196), 255, 255)
    shape_img = shape_img.resize((_BASE, _BASE), Image.Resampling.BILINEAR)
    stripe_img = Image.new("L", (_BASE, _BASE), 0)
    draw = ImageDraw.Draw(stripe_img)
    for i in range(stripes):
        y = 24 + i * 6
        draw.rectangle((24, y, 40, y + 2), fill=255)
    return np.asarray(shape_img) > 127, np.asarray(stripe_img) > 127


@lru_cache(maxsize=256)
def _picture(seed: int, bg: tuple, fg: tuple, accent: tuple, shape: int, stripes: int) -> np.ndarray:
    k = np.random.default_rng(seed).random((8, 8, 1), dtype=np.float32)
    # the instance's own pattern: what tells two instances of a sub-class apart
    tint = np.where(k < 0.2, np.array(accent, np.float32), np.array(bg, np.float32)) * (0.55 + 0.9 * k)
    grid = np.where(k < 0.45, tint, np.array(bg, np.float32))
    img = np.repeat(np.repeat(grid, 8, axis=0), 8, axis=1)
    shape_mask, stripe_mask = _mask(shape, stripes)
    img[shape_mask] = fg
    img[stripe_mask] = accent
    return np.clip(img, 0, 255)


def instance_picture(visual: dict) -> np.ndarray:
    """The instance's picture: a 64x64x3 float array."""
    return _picture(visual["seed"], tuple(visual["bg"]), tuple(visual["fg"]), tuple(visual["accent"]),
                    visual["shape"], visual["stripes"])


def listing_jpeg(visual: dict, variant: dict, size: tuple[int, int]) -> bytes:
    """The JPEG bytes of one listing's main image."""
    from PIL import Image

    c = variant["crop"]
    pixels = instance_picture(visual)[c:_BASE - c, c:_BASE - c] * variant["brightness"]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=variant["quality"], optimize=False, progressive=False)
    return buf.getvalue()

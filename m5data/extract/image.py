"""Images: a normalised JPEG copy, a quality tier by original size, and a perceptual hash.

Normalisation, in order: refuse decompression bombs (width x height over ``max_image_pixels``)
before decoding; decode the first frame only (animated GIF/WebP/APNG); apply the EXIF orientation;
convert every mode to 8-bit RGB (CMYK via Pillow's Adobe-aware decoder, 16/32-bit greyscale scaled
by its bit depth, palette and alpha composited on white); shrink to ``image_max_side`` (never
enlarge); save as baseline JPEG. The perceptual hash is ``imagehash.phash`` (64 bits, hex) of the
normalised image, so a rotated-by-EXIF duplicate hashes like its upright twin.

Quality tiers (the papers' "three groups by size"): by the original's shorter side,
tier 1 (high) >= ``image_tier_high`` px, tier 2 (medium) >= ``image_tier_medium`` px, tier 3 (low) below.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..storage.files import write_atomic
from .ffmpeg import MediaError

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass
class NormalisedImage:
    """The result of normalising one image."""

    path: Path
    width: int  # of the normalised copy
    height: int
    bytes: int
    orig_width: int
    orig_height: int
    orig_format: str
    orig_mode: str
    frames: int  # frames in the original (animated GIF/WebP > 1)
    orientation: int  # EXIF orientation tag that was applied (1 = none)
    tier: int
    phash: str


def quality_tier(width: int, height: int, high: int = 600, medium: int = 300) -> int:
    """1 (high), 2 (medium) or 3 (low) by the shorter side of the original image."""
    short = min(width, height)
    return 1 if short >= high else 2 if short >= medium else 3


def to_rgb(im):
    """Any Pillow mode -> 8-bit RGB (alpha and palette transparency composited on white)."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            top = 65535.0
        elif im.mode == "F":  # float images have no fixed range: stretch their maximum to white
            top = max(float(arr.max()), 1.0)
        else:  # 32-bit "I" is how Pillow opens some 16-bit files: 16-bit range when values exceed 8 bits
            top = 65535.0 if arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if im.mode == "P" and "transparency" in im.info or im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return im.convert("RGB")


def normalise_image(src: Path, out: Path, *, max_side: int = 800, quality: int = 90,
                    max_pixels: int = 89_478_485, tier_high: int = 600, tier_medium: int = 300) -> NormalisedImage:
    """Normalise one image file into ``out`` (JPEG, written atomically).

    Raises:
        MediaError: status ``too_large`` for a decompression bomb, ``corrupt`` for zero-length,
            unidentified, truncated or undecodable files.
    """
    import imagehash
    from PIL import Image, ImageOps, UnidentifiedImageError

    size = src.stat().st_size
    if size == 0:
        raise MediaError("zero-length file", "0 bytes")
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(src)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("decompression bomb", str(exc), status="too_large") from None
    except UnidentifiedImageError:
        raise MediaError("unsupported image format", f"Pillow cannot identify {src.name}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError("unreadable image", str(exc)) from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise MediaError("decompression bomb", f"{w}x{h} = {w * h:,} pixels > limit {max_pixels:,}",
                             status="too_large")
        fmt, mode = im.format or "?", im.mode
        frames = getattr(im, "n_frames", 1)
        try:
            im.seek(0)
            im.load()
            orientation = int(im.getexif().get(0x0112, 1) or 1)
            upright = ImageOps.exif_transpose(im)
            rgb = to_rgb(upright)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            reason = "truncated image" if "truncated" in str(exc).lower() else "corrupt image data"
            raise MediaError(reason, f"{fmt}: {exc}") from None
        except Image.DecompressionBombError as exc:
            raise MediaError("decompression bomb", str(exc), status="too_large") from None
    if max_side and max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    data = buf.getvalue()
    write_atomic(out, data)
    return NormalisedImage(
        path=out, width=rgb.width, height=rgb.height, bytes=len(data), orig_width=w, orig_height=h,
        orig_format=fmt, orig_mode=mode, frames=frames, orientation=orientation,
        tier=quality_tier(w, h, tier_high, tier_medium), phash=str(imagehash.phash(rgb)),
    )

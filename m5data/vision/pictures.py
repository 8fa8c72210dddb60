"""A stored picture decoded for a model: ``(size, size, 3)`` uint8 RGB, or :class:`PictureError` with the
reason, for one item, and the run goes on.

The pictures are extract's normalised images (JPEG, at most ``extract.image_max_side``), but a store may
hold anything a user imported, so each is checked as download checks what it fetches: its bytes capped,
its header's size checked against its bytes before anything is decoded (``download.declared``), the decode
done at a reduced JPEG scale where that still covers the model's side. Any mode (CMYK, 16-bit, palette,
alpha) becomes 8-bit RGB as extract makes it (``extract.image.to_rgb``); an animated picture gives its
first frame; one under :data:`MIN_SIDE` pixels has too little to show a model.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

MIN_SIDE = 16  # pixels: a picture smaller than this on a side is refused (a spacer, an icon)


class PictureError(Exception):
    """This picture cannot be shown to a model; the message says why (it is the row's ``error``)."""


def decode(data: bytes, size: int, max_bytes: int, max_pixels: int) -> np.ndarray:
    """``data`` as the ``(size, size, 3)`` uint8 RGB picture a model takes (squeezed, not cropped: the whole
    picture is seen, as the normalised image keeps it)."""
    return fit(read(data, max_bytes, max_pixels, draft=size), size)


def fit(rgb: np.ndarray, size: int) -> np.ndarray:
    """An RGB picture squeezed to ``(size, size, 3)`` (bilinear, as Pillow's resize)."""
    from PIL import Image

    if rgb.shape[:2] == (size, size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR), dtype=np.uint8)


def read(data: bytes, max_bytes: int, max_pixels: int, draft: int | None = None) -> np.ndarray:
    """``data`` as an ``(h, w, 3)`` uint8 RGB picture, checked before it is decoded; ``draft``: a JPEG may be
    decoded at 1/2..1/8 scale where that still covers this side (a picture only a model sees)."""
    from PIL import Image, UnidentifiedImageError

    from ..download.declared import ImageDecodeError, ImageTooLarge, check_declared
    from ..extract.image import to_rgb

    if not data:
        raise PictureError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise PictureError(f"{len(data):,} bytes, over vision.max_bytes ({max_bytes:,})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise PictureError(f"{w}x{h} pixels, over vision.max_pixels ({max_pixels:,})")
                if min(w, h) < MIN_SIDE:
                    raise PictureError(f"{w}x{h} pixels: under {MIN_SIDE} on a side, too small to show a model")
                check_declared(data, im, (draft, draft) if draft else None)
                if im.format == "JPEG" and draft:
                    im.draft("RGB", (draft, draft))  # libjpeg's DCT scaling: 1/2..1/8 when that still covers it
                im.seek(0)  # an animated picture: its first frame
                return np.asarray(to_rgb(im), dtype=np.uint8)
    except PictureError:
        raise
    except (ImageDecodeError, ImageTooLarge) as exc:
        raise PictureError(str(exc)) from None
    except UnidentifiedImageError:
        raise PictureError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise PictureError(f"does not decode: {type(exc).__name__}: {str(exc)[:160]}") from None

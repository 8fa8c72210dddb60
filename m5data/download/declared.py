"""What an image's header declares, checked against its bytes before anything is decoded.

A header is a promise: 12000x12000 pixels costs a decoder 144 M pixels of memory (a progressive
JPEG's coefficient buffers: ~430 MB) whatever follows it. A file that cannot hold that many pixels
is refused before the decode (:func:`check_declared`), by a lower bound on the bytes any complete
file of its format and size takes, sound for every encoder (a legitimate flat image, however
compressible, is never below it):

* JPEG with Huffman coding (baseline, extended, progressive): every 8x8 block of every component
  codes its DC coefficient at least once, and a Huffman code is at least 1 bit: ``sum(blocks) / 8``
  bytes (1/512 of a byte per pixel in greyscale, 1/341 in colour 4:2:0). Arithmetic-coded JPEGs
  have no such bound;
* PNG: deflate encodes at most 258 bytes per 2 bits (1032:1), so a PNG takes at least its raw
  scanlines (a filter byte plus the packed pixels per row) / 1032;
* GIF: a 12-bit LZW code stands for at most 4096 pixels, so the first frame's area / 2731 bytes;
* uncompressed BMP: its rows as stored.

WebP (a lossless single-symbol code costs 0 bits a pixel), TIFF and RLE BMP have no useful bound:
the memory cap below is what keeps them in check. Every image also gets an estimate of what its
decode holds at once (the decoded buffer at the scale the re-encode decodes at, a progressive JPEG's
coefficient buffers, the copies that flatten alpha or convert the mode); past
:data:`MAX_DECODE_BYTES` it is refused (``too_large``) before decoding. Both refusals name the
declared size, the bytes and the bound, so the per-item error says what was wrong.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

MAX_DECODE_BYTES = 1 << 30  # what one image's decode may hold at once (with `workers` decoding in parallel)

_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive (Huffman)
_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageDecodeError(Exception):
    """The bytes sniff as an image but do not decode (truncated, corrupt, a header its bytes cannot
    hold); the message says why."""


class ImageTooLarge(Exception):
    """The image has more pixels than Pillow's decompression-bomb limit, or its decode would hold
    more than :data:`MAX_DECODE_BYTES`."""


@dataclass(frozen=True)
class JpegFrame:
    marker: int  # the SOFn marker's second byte (0xC0 baseline, 0xC2 progressive, ...)
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (h, v) per component
    first_scan: int  # components in the first scan (fewer than the frame's: a multi-scan JPEG)

    def blocks(self) -> list[int]:
        """8x8 blocks per component (each component's size from its sampling factors)."""
        hmax = max(h for h, _ in self.sampling)
        vmax = max(v for _, v in self.sampling)
        return [math.ceil(math.ceil(self.width * h / hmax) / 8) * math.ceil(math.ceil(self.height * v / vmax) / 8)
                for h, v in self.sampling]

    @property
    def buffered(self) -> bool:
        """libjpeg keeps every coefficient of the image while it decodes (progressive, or several scans)."""
        return self.marker in _PROGRESSIVE_SOF or self.first_scan < len(self.sampling)


def jpeg_frame(fh) -> JpegFrame | None:
    """The frame header (and the first scan's width) of the JPEG ``fh``, walking its markers; None when
    they do not parse (Pillow decides what such a file is)."""
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        return None
    frame = None
    while True:
        byte = fh.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = fh.read(1)
            if byte != b"\xff":
                break
        if not byte:
            return None
        marker = byte[0]
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers with no length
            continue
        head = fh.read(2)
        if len(head) < 2:
            return None
        length = struct.unpack(">H", head)[0]
        body = fh.read(length - 2) if marker in _SOF or marker == 0xDA else None
        if body is None:
            fh.seek(length - 2, io.SEEK_CUR)
        elif marker in _SOF and len(body) >= 6 and frame is None:
            _, height, width, n = struct.unpack(">BHHB", body[:6])
            sampling = tuple((b >> 4, b & 15) for b in body[7:6 + 3 * n:3])
            if len(sampling) != n or not n or any(h == 0 or v == 0 for h, v in sampling):
                return None
            frame = (marker, width, height, sampling)
        elif marker == 0xDA and body:
            return JpegFrame(*frame, first_scan=body[0]) if frame else None


def _png_min_bytes(data: bytes) -> tuple[int, str] | None:
    if len(data) < 29 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None:
        return None
    raw = height * (1 + math.ceil(width * depth * channels / 8))
    return math.ceil(raw / 1032), f"{raw:,} bytes of scanlines / 1032 (deflate's best ratio)"


def _min_bytes(data: bytes, im, frame: JpegFrame | None) -> tuple[int, str] | None:
    """(the fewest bytes a complete file of ``im``'s format and declared size takes, how that is counted)."""
    if im.format == "JPEG" and frame is not None and frame.marker in _HUFFMAN_SOF:
        blocks = sum(frame.blocks())
        return math.ceil(blocks / 8), f"{blocks:,} blocks of 8x8, each at least 1 bit"
    if im.format == "PNG":
        return _png_min_bytes(data)
    if im.format == "GIF" and im.tile:
        x0, y0, x1, y1 = im.tile[0].extents
        area = max(0, x1 - x0) * max(0, y1 - y0)
        return math.ceil(area / 2731), f"a frame of {area:,} pixels, at most 4096 to a 12-bit LZW code"
    if im.format == "BMP" and im.tile and im.tile[0].codec_name == "raw":  # uncompressed: 1 bit a pixel at least
        row = (im.width + 31) // 32 * 4
        return row * im.height, f"{im.height:,} uncompressed rows of at least {row:,} bytes"
    return None


def _decode_bytes(im, frame: JpegFrame | None, target: tuple[int, int] | None) -> tuple[int, str]:
    """(what decoding ``im`` holds at once at most, what that is)."""
    w, h = im.size
    if im.format == "JPEG" and frame is not None:
        scale = 1
        if target is not None:  # both paths decode at a DCT scale (1/2, 1/4, 1/8) still at least the target
            while scale < 8 and w // (scale * 2) >= target[0] and h // (scale * 2) >= target[1]:
                scale *= 2
        out = math.ceil(w / scale) * math.ceil(h / scale) * 4 * 2  # decoded, and the resize's or convert's copy
        if frame.buffered:
            coefficients = sum(frame.blocks()) * 128
            return coefficients + out, f"{coefficients:,} bytes of coefficients ({w}x{h}, progressive or multi-scan)"
        return out, f"{w}x{h} decoded at 1/{scale} scale"
    per_pixel = 4 if im.mode in ("RGB", "L", "1", "I;16", "I;16B", "I;16L", "I", "F") else 9  # alpha: flattened
    return w * h * (per_pixel + 4), f"{w}x{h} {im.mode} decoded whole and converted"


def check_declared(data: bytes | bytearray, im, target: tuple[int, int] | None,
                   cap: int = MAX_DECODE_BYTES) -> JpegFrame | None:
    """Refuse ``im`` (Pillow's header of ``data``, nothing decoded yet) if its declared size cannot come
    from ``len(data)`` bytes (:class:`ImageDecodeError`) or its decode at ``target`` would hold more than
    ``cap`` bytes (:class:`ImageTooLarge`). Returns the JPEG frame header (None for other formats)."""
    frame = jpeg_frame(io.BytesIO(data)) if im.format == "JPEG" else None
    w, h = im.size
    least = _min_bytes(bytes(data[:64]) if im.format == "PNG" else data, im, frame)
    if least is not None and len(data) < least[0]:
        raise ImageDecodeError(f"declares {w}x{h} ({w * h:,} pixels) in {len(data):,} bytes, where a complete "
                          f"{im.format} of that size takes at least {least[0]:,} ({least[1]}): the data "
                          "is cut off or the header lies")
    need, what = _decode_bytes(im, frame, target)
    if need > cap:
        raise ImageTooLarge(f"decoding it would hold about {need / 2**20:,.0f} MiB ({what}), over the cap of "
                            f"{cap / 2**20:,.0f} MiB per image")
    return frame


def cut_off(exc: ValueError) -> bool:
    """libjpeg's warning (simplejpeg, strict) says the entropy-coded data ended before the image did."""
    return "premature end" in str(exc).lower()


def refuse_cut_off_jpeg(data: bytes | bytearray, mode: str, target: tuple[int, int]) -> None:
    """Raise :class:`ImageDecodeError` if libjpeg-turbo (strict) finds the JPEG's data ending early;
    Pillow's decoder fills the rest with grey and says nothing. Other warnings are Pillow's to judge."""
    import simplejpeg

    space = {"L": "GRAY", "CMYK": "CMYK"}.get(mode, "RGB")
    try:
        simplejpeg.decode_jpeg(bytes(data), colorspace=space, min_width=target[0], min_height=target[1], strict=True)
    except ValueError as exc:
        if cut_off(exc):
            raise ImageDecodeError(f"the JPEG stream stops early ({exc}): truncated or cut off") from None


class Body(io.BytesIO):
    """An image's bytes that notice a decoder reading past their end: a truncated file, refused
    whatever Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` says (set, it has Pillow fill the rest)."""

    starved = False
    _armed = False

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if self._armed and not chunk and size != 0:
            self.starved = True
        return chunk

    def load(self, im) -> None:
        """``im.load()``, raising :class:`ImageDecodeError` if its decoder ran out of data; what the
        format reads after the pixels (``load_end``: a PNG's trailing chunks) may end early."""
        end = im.load_end

        def load_end() -> None:
            self._armed = False
            end()

        im.load_end = load_end
        self._armed = True
        try:
            im.load()
        finally:
            self._armed = False
        if self.starved:
            raise ImageDecodeError(f"the {im.format} data ends before the image does: truncated")


__all__ = ["MAX_DECODE_BYTES", "Body", "ImageDecodeError", "ImageTooLarge", "JpegFrame", "check_declared", "cut_off",
           "jpeg_frame", "refuse_cut_off_jpeg"]


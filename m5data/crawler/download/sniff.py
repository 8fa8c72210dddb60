"""Content sniffing: the media type of a body from its first bytes, never from the URL or headers.

``sniff(head)`` looks at up to :data:`SNIFF_BYTES` leading bytes and returns a :class:`Sniffed`
(kind ``image`` or ``video``, MIME type, blob extension) or ``None`` when the bytes are no known
media format (HTML error pages, JSON, empty bodies, ...).

Images: JPEG, PNG, GIF, WebP, BMP, TIFF. Video: MP4/MOV (ISO-BMFF ``ftyp``), WebM/MKV (EBML),
AVI, FLV, MPEG-TS.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SNIFF_BYTES = 1024  # enough for every signature below (MPEG-TS needs three 188-byte packets)


@dataclass(frozen=True)
class Sniffed:
    kind: str  # image or video
    mime: str
    ext: str  # blob file extension


JPEG = Sniffed("image", "image/jpeg", "jpg")
PNG = Sniffed("image", "image/png", "png")
GIF = Sniffed("image", "image/gif", "gif")
WEBP = Sniffed("image", "image/webp", "webp")
BMP = Sniffed("image", "image/bmp", "bmp")
TIFF = Sniffed("image", "image/tiff", "tif")
MP4 = Sniffed("video", "video/mp4", "mp4")
MOV = Sniffed("video", "video/quicktime", "mov")
WEBM = Sniffed("video", "video/webm", "webm")
MKV = Sniffed("video", "video/x-matroska", "mkv")
AVI = Sniffed("video", "video/x-msvideo", "avi")
FLV = Sniffed("video", "video/x-flv", "flv")
MPEGTS = Sniffed("video", "video/mp2t", "ts")

# ISO-BMFF major brands that are images or audio, not video (HEIF/AVIF stills, M4A audio).
_NOT_VIDEO_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ", b"M4P "}
_EBML_DOCTYPE = b"\x42\x82"  # EBML DocType element id


def sniff(head: bytes) -> Sniffed | None:
    """The media type of a body whose first bytes are ``head``; ``None`` if it is no known media."""
    if len(head) < 4:
        return None
    if head[:3] == b"\xff\xd8\xff":
        return JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and len(head) >= 12:
        if head[8:12] == b"WEBP":
            return WEBP
        if head[8:12] == b"AVI ":
            return AVI
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:2] == b"BM" and _is_bmp(head):
        return BMP
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _NOT_VIDEO_BRANDS:
            return None
        return MOV if brand == b"qt  " else MP4
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _ebml(head)
    if head[:3] == b"FLV" and head[3] == 1:
        return FLV
    if _is_mpegts(head):
        return MPEGTS
    return None


def _is_bmp(head: bytes) -> bool:
    # "BM" alone is too weak (text can start with it): check the DIB header size is a known one.
    if len(head) < 18:
        return False
    dib_size = struct.unpack_from("<I", head, 14)[0]
    return dib_size in (12, 40, 52, 56, 64, 108, 124)


def _ebml(head: bytes) -> Sniffed:
    pos = head.find(_EBML_DOCTYPE, 4, 64)
    if pos >= 0 and pos + 3 <= len(head):
        size_byte = head[pos + 2]
        if size_byte & 0x80:  # one-byte EBML size, the usual case for the short DocType string
            doctype = head[pos + 3: pos + 3 + (size_byte & 0x7F)]
            if doctype == b"webm":
                return WEBM
    return MKV


def _is_mpegts(head: bytes) -> bool:
    # A transport stream is 188-byte packets, each starting with the sync byte 0x47.
    return len(head) >= 377 and head[0] == 0x47 and head[188] == 0x47 and head[376] == 0x47

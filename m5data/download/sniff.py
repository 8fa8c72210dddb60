"""Content sniffing: the media type of a body from its first bytes, never from the URL or headers.

``sniff(head)`` looks at up to :data:`SNIFF_BYTES` leading bytes and returns a :class:`Sniffed`
(kind ``image``, ``video`` or ``audio``, MIME type, blob extension) or ``None`` when the bytes are
no known media format (HTML error pages, JSON, empty bodies, ...).

Images: JPEG, PNG, GIF, WebP, BMP, TIFF. Video: MP4/MOV (ISO-BMFF ``ftyp``), WebM/MKV (EBML),
AVI, FLV, MPEG-TS, Ogg with a Theora stream. Audio: MP3 (ID3 tag or an MPEG layer III frame
header followed by a second one), AAC in ADTS frames, M4A (``ftyp`` brand ``M4A``), Ogg Vorbis,
Ogg Opus, Ogg FLAC, FLAC, WAV. A container that can hold either (MP4, WebM, Matroska) sniffs as
video even when it carries sound only: the extract stage finds out and records the picture absent.
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
OGV = Sniffed("video", "video/ogg", "ogv")
MP3 = Sniffed("audio", "audio/mpeg", "mp3")
AAC = Sniffed("audio", "audio/aac", "aac")
M4A = Sniffed("audio", "audio/mp4", "m4a")
OGG = Sniffed("audio", "audio/ogg", "ogg")
OPUS = Sniffed("audio", "audio/opus", "opus")
FLAC = Sniffed("audio", "audio/flac", "flac")
WAV = Sniffed("audio", "audio/wav", "wav")

# ISO-BMFF major brands that are images, not video (HEIF/AVIF stills), and audio (M4A, M4B books, M4P).
_IMAGE_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
# first packet of an Ogg logical stream -> what it is (video wins over audio in a multiplexed file)
_OGG_VIDEO = (b"\x80theora", b"\x01video\x00\x00\x00")  # Theora, OGM video
_OGG_AUDIO = ((b"\x01vorbis", OGG), (b"OpusHead", OPUS), (b"\x7fFLAC", OGG), (b"Speex   ", OGG))
# MPEG audio: bit rates (kbit/s) of layer III by [MPEG-1?][index], sample rates by [version][index]
_MP3_KBPS = {True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
             False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
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
        if head[8:12] == b"WAVE":
            return WAV
        return None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:2] == b"BM" and _is_bmp(head):
        return BMP
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        if brand in _AUDIO_BRANDS:
            return M4A
        return MOV if brand == b"qt  " else MP4
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _ebml(head)
    if head[:3] == b"FLV" and head[3] == 1:
        return FLV
    if _is_mpegts(head):
        return MPEGTS
    if head[:4] == b"OggS":
        return _ogg(head)
    if head[:4] == b"fLaC":
        return FLAC
    if head[:3] == b"ID3" and len(head) >= 10 and head[3] in (2, 3, 4) and head[5] & 0x0F == 0:
        return MP3  # an ID3v2 tag (version 2-4, no undefined flags) starts nearly every mp3 file
    if len(head) >= 4 and head[0] == 0xFF:
        if _mp3_frames(head):
            return MP3
        if _adts_frames(head):
            return AAC
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


def _ogg(head: bytes) -> Sniffed | None:
    """Walk the Ogg pages in ``head``: the first packet of each stream (BOS pages) names its codec."""
    found = None
    pos = 0
    while pos + 27 <= len(head) and head[pos:pos + 4] == b"OggS":
        n_segments = head[pos + 26]
        body = pos + 27 + n_segments
        if body > len(head):
            break
        size = sum(head[pos + 27: body])
        packet = head[body: body + 16]
        if head[pos + 5] & 0x02:  # beginning of a stream
            if packet.startswith(_OGG_VIDEO):
                return OGV
            for magic, kind in _OGG_AUDIO:
                if packet.startswith(magic) and found is None:
                    found = kind
        else:
            break  # every BOS page comes before the first data page
        pos = body + size
    return found


def _mp3_header(head: bytes, pos: int) -> int | None:
    """Length of the MPEG-1/2/2.5 layer III frame whose header is at ``pos``; None if none is there."""
    if pos + 4 > len(head) or head[pos] != 0xFF or head[pos + 1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[pos + 1] >> 3) & 3, (head[pos + 1] >> 1) & 3
    rate_index, padding = (head[pos + 2] >> 2) & 3, (head[pos + 2] >> 1) & 1
    kbps_index = head[pos + 2] >> 4
    if version == 1 or layer != 1 or rate_index == 3 or kbps_index in (0, 15):
        return None
    mpeg1 = version == 3
    kbps = _MP3_KBPS[mpeg1][kbps_index]
    rate = _MP3_RATES[version][rate_index]
    return (144 if mpeg1 else 72) * kbps * 1000 // rate + padding


def _mp3_frames(head: bytes) -> bool:
    """A layer III frame header, and a second one right after the frame when it fits in ``head``."""
    size = _mp3_header(head, 0)
    if size is None:
        return False
    return size + 4 > len(head) or _mp3_header(head, size) is not None


def _adts_header(head: bytes, pos: int) -> int | None:
    """Length of the ADTS (AAC) frame whose header is at ``pos``; None if none is there."""
    if pos + 7 > len(head) or head[pos] != 0xFF or head[pos + 1] & 0xF6 != 0xF0:
        return None
    if (head[pos + 2] >> 2) & 0xF > 12:  # sampling frequency index 13-15: reserved
        return None
    size = ((head[pos + 3] & 0x03) << 11) | (head[pos + 4] << 3) | (head[pos + 5] >> 5)
    return size if size >= 7 else None


def _adts_frames(head: bytes) -> bool:
    size = _adts_header(head, 0)
    if size is None:
        return False
    return size + 7 > len(head) or _adts_header(head, size) is not None

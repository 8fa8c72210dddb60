"""Which decoder options each ``extract.video_decode`` mode gives each codec, and the JPEG quantiser of
the frame passes (the ffmpeg pass in video.py, the in-process one in frames_av.py)."""

from __future__ import annotations

__all__ = ["AV_DECODE_OPTIONS", "DECODE_MODES", "DECODE_OPTIONS", "LOWRES_CODECS", "decoder_options", "jpeg_qscale"]

# The ffmpeg pass's decoder options per extract.video_decode mode and ffprobe codec name (fast and
# fastest use them only for a stream the in-process pass hands back); a codec not listed decodes
# exactly. "fast": the loop filter skipped on frames that no other frame refers to (so no error
# carries over to later frames). "fastest": every frame's loop filter skipped (its
# error drifts until the next keyframe) and frames nothing refers to not decoded (a second then
# keeps the frame before its own). ffmpeg's VP9 and AV1 decoders offer nothing cheaper.
DECODE_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    "exact": {},
    "fast": {
        "h264": {"skip_loop_filter": "noref"},
        "hevc": {"skip_loop_filter": "noref"},
    },
    "fastest": {
        "h264": {"skip_loop_filter": "all", "skip_frame": "noref"},
        "hevc": {"skip_loop_filter": "all", "skip_frame": "noref"},
        "vp8": {"skip_loop_filter": "all"},
        "mpeg4": {"skip_frame": "noref"},
    },
}
# The in-process pass's decoder options (fast, fastest: frames_av.py), on top of skipping every frame that
# no kept frame needs: "fast" nothing more (the kept frames are the exact decode's), "fastest" no
# deblocking at all (its error drifts until the next keyframe).
AV_DECODE_OPTIONS: dict[str, dict[str, dict[str, str]]] = {
    "fast": {},
    "fastest": {"h264": {"skip_loop_filter": "all"}, "hevc": {"skip_loop_filter": "all"},
                "vp8": {"skip_loop_filter": "all"}},
}
DECODE_MODES = tuple(DECODE_OPTIONS)  # exact, fast, fastest (config.validate checks the setting against the same three)
# Decoders that can decode at 1/2, 1/4 or 1/8 size (ffmpeg's ``lowres``), used by "fast" and
# "fastest" where that size still covers the stored max side.
LOWRES_CODECS = frozenset({"mpeg1video", "mpeg2video", "mpeg4", "mjpeg"})


def jpeg_qscale(quality: int) -> int:
    """ffmpeg's mjpeg ``-q:v`` (1 best .. 31) for a libjpeg-style quality 1..100.

    libjpeg scales its tables by 5000/Q % (Q < 50) or 200 - 2Q % (Q >= 50); ffmpeg's q:v scales
    them by about 12.5 % per step (measured: q:v 2 ~ quality 90, 4 ~ 77, 8 ~ 55, 16 ~ 28).
    """
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return max(1, min(31, round(scale / 12.5)))


def decoder_options(codec: str | None, decode: str, width: int | None = None, height: int | None = None,
                    max_side: int = 0, table: dict | None = None) -> dict[str, str]:
    """The decoder's options for a ``codec`` video of ``width`` x ``height`` in mode ``decode``: from
    ``table`` (:data:`DECODE_OPTIONS`, the ffmpeg pass's, or :data:`AV_DECODE_OPTIONS`), with ``lowres``."""
    options = dict((DECODE_OPTIONS if table is None else table)[decode].get(codec or "", {}))
    if decode != "exact" and codec in LOWRES_CODECS and max_side and width and height:
        level = 0
        while level < 3 and max(width, height) >> (level + 1) >= max_side:
            level += 1
        if level:
            options["lowres"] = str(level)
    return options

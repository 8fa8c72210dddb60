"""Image re-encoding in worker processes, so that decoding never blocks the download event loop.

:func:`reencode` turns the bytes of any image Pillow reads into a JPEG whose longer side is at
most ``max_side`` (aspect kept, never upscaled), with the EXIF orientation applied, CMYK converted
to RGB and transparency flattened onto white. JPEGs are decoded at reduced scale (Pillow's draft
mode: the DCT scales by 1/2, 1/4 or 1/8 while decoding), which is most of the speed.
:class:`ImagePool` runs it in a ``ProcessPoolExecutor`` (spawned workers: forking a process that
runs an event loop and threads is unsafe).
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass


class ImageDecodeError(Exception):
    """The bytes sniff as an image but do not decode (truncated, corrupt); the message says why."""


class ImageTooLarge(Exception):
    """The image has more pixels than Pillow's decompression-bomb limit."""


@dataclass(frozen=True)
class Reencoded:
    data: bytes  # the JPEG
    width: int
    height: int
    orig_width: int  # of the source, after its EXIF orientation
    orig_height: int
    orig_mode: str


def _target(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, max_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _flatten(im):
    """RGB or L, with alpha composited on white and CMYK/YCbCr/palette/16-bit modes converted."""
    from PIL import Image

    if im.mode in ("RGB", "L"):
        return im
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: scale to 8 bits instead of clipping everything to white.
        if im.mode == "F":
            return im.convert("L")
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return im.convert("RGB")


def reencode(data: bytes | bytearray, max_side: int, quality: int) -> Reencoded:
    """Decode ``data`` fully and return it re-encoded as a JPEG (see the module docstring)."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(io.BytesIO(data))
        orig_mode = im.mode
        w, h = im.size
        if max_side > 0:
            target = _target((w, h), max_side)
            if im.format == "JPEG":
                im.draft("RGB" if im.mode != "L" else "L", target)  # decode at the smallest DCT scale >= target
        orientation = im.getexif().get(0x0112, 1)
        im.load()
        im = _flatten(im)
        if max_side > 0 and max(im.size) > max_side:
            # bilinear is antialiased when shrinking (its support scales with the factor); after the
            # draft decode the remaining factor is below 2, where bicubic is ~50% slower for no visible gain
            im = im.resize(_target(im.size, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
        if orientation != 1:
            im.info["exif"] = b""  # the transposed copy must not carry the tag again
            im = _apply_orientation(im, orientation)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality, optimize=False)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageDecodeError(f"{type(exc).__name__}: {exc}") from None
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Reencoded(out.getvalue(), im.width, im.height, ow, oh, orig_mode)


def _apply_orientation(im, orientation: int):
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return im.transpose(method) if method is not None else im


def image_size(path: str) -> tuple[int, int] | None:
    """Width and height from an image file's header (no decode), oriented; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Exception:  # any header Pillow cannot parse: the size stays unknown, extract decides later
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts the pool down
    from PIL import Image  # noqa: F401  (import once per worker, not per image)


class ImagePool:
    """A worker pool for :func:`reencode`; ``await pool.reencode(data)`` from the event loop.

    ``kind="process"`` (default) isolates decoding in spawned processes; ``kind="thread"`` keeps it in
    this process, where Pillow releases the GIL while it decodes, resizes and encodes, which saves
    the cost of shipping every image to another process (benchmarks/bench_download.py --pool).
    """

    def __init__(self, workers: int, max_side: int, quality: int, kind: str = "process"):
        self.workers = clamp_workers(workers)
        self.max_side = max_side
        self.quality = quality
        if kind == "thread":
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="m5data-reencode")
        else:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)

    async def reencode(self, data: bytes) -> Reencoded:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, reencode, data, self.max_side, self.quality)

    def close(self, kill: bool = False) -> None:
        """Shut the pool down; ``kill`` terminates workers at once (a stalled run must not wait)."""
        processes = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=not kill, cancel_futures=True)
        if kill:
            for proc in processes:
                if proc.is_alive():
                    proc.terminate()


def clamp_workers(workers: int) -> int:
    """The number of worker processes for ``download.workers`` (0 = one per core)."""
    return workers if workers > 0 else max(1, os.cpu_count() or 1)


__all__ = ["ImageDecodeError", "ImagePool", "ImageTooLarge", "Reencoded", "clamp_workers", "image_size",
           "reencode"]

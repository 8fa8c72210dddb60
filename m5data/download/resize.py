"""Image re-encoding in worker threads or processes, so that decoding never blocks the download event loop.

:func:`reencode` turns the bytes of any image Pillow reads into a JPEG whose longer side is at
most ``max_side`` (aspect kept, never upscaled), with the EXIF orientation applied, CMYK converted
to RGB and transparency flattened onto white.

Colour and greyscale JPEGs, nearly every product image, take a fast path: simplejpeg
(libjpeg-turbo) decodes them at reduced scale (the inverse DCT scales by 1/8 .. 7/8 while it
decodes), OpenCV resizes the rest of the way, and simplejpeg encodes the result. It costs about
60% of the Pillow path on 640x480 photos (benchmarks/bench_download.py), and both libraries
release the GIL. The fast path is strict: a stream that stops early (libjpeg's "premature end") is
refused at once, any other libjpeg warning (a damaged stream) sends the image to the Pillow path,
which decides whether it decodes. Before either path decodes, :func:`declared.check_declared`
refuses a header that declares more pixels than the bytes can hold, or a decode over the memory cap. Every other format, CMYK JPEGs
and JPEGs Pillow cannot read the header of go to Pillow directly.

:class:`ImagePool` runs :func:`reencode` in a ``ProcessPoolExecutor`` (spawned workers: forking a
process that runs an event loop and threads is unsafe) or a thread pool, or (kind ``mixed``) the
fast path alone, :func:`reencode_jpeg`, in threads and the rest in processes.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from ..process_pool import ProcessPool
from .declared import Body, ImageDecodeError, ImageTooLarge, check_declared, cut_off, refuse_cut_off_jpeg

# what Pillow raises for bytes that are not a well-formed image (a header or stream it cannot parse)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


@dataclass(frozen=True)
class Reencoded:
    data: bytes  # the JPEG
    width: int
    height: int
    orig_width: int  # of the source, after its EXIF orientation
    orig_height: int
    orig_mode: str
    rights: dict = field(default_factory=dict)  # the source's XMP rights (rights.rights_of), read from its header


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


def reencode(data: bytes | bytearray, max_side: int, quality: int, *, fast: bool = True) -> Reencoded:
    """Decode ``data`` fully and return it re-encoded as a JPEG (see the module docstring).

    ``fast=False`` skips the JPEG fast path: every image goes through Pillow (tests compare the two).
    """
    from PIL import Image, UnidentifiedImageError

    from .rights import rights_of

    body = Body(data)
    try:
        im = Image.open(body)  # reads the header only; refuses decompression bombs
        check_declared(data, im, _target(im.size, max_side) if max_side > 0 else None)
        if fast and (done := _fast_path(data, im, max_side, quality)) is not None:
            return done
        rights = rights_of(im)
        orig_mode = im.mode
        w, h = im.size
        if max_side > 0:
            target = _target((w, h), max_side)
            if im.format == "JPEG":
                if not (fast and im.mode in ("RGB", "L")):  # the fast path has not judged this stream
                    refuse_cut_off_jpeg(data, im.mode, target)
                im.draft("RGB" if im.mode != "L" else "L", target)  # decode at the smallest DCT scale >= target
        body.load(im)  # before getexif(), which loads a PNG's pixels itself
        orientation = im.getexif().get(0x0112, 1)
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
    except (UnidentifiedImageError, *DECODE_ERRORS) as exc:
        raise ImageDecodeError(f"{type(exc).__name__}: {exc}") from None
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Reencoded(out.getvalue(), im.width, im.height, ow, oh, orig_mode, rights)


def reencode_jpeg(data: bytes | bytearray, max_side: int, quality: int) -> Reencoded | None:
    """:func:`reencode` for the images the JPEG fast path takes; None for every other image (any
    other format, a header Pillow does not read, a JPEG the fast path declines): those go to
    ``reencode(..., fast=False)``, which decides what they are (``ImagePool`` kind ``mixed``).
    A JPEG refused from its header or cut off raises as :func:`reencode` does (no process needed)."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001  not this path's to judge: the Pillow path says what is wrong
        return None
    if im.format != "JPEG":
        return None
    check_declared(data, im, _target(im.size, max_side) if max_side > 0 else None)
    return _fast_path(data, im, max_side, quality)


def _fast_path(data: bytes | bytearray, im, max_side: int, quality: int) -> Reencoded | None:
    """The fast path for an RGB or greyscale JPEG whose header ``im`` is; None for any other image."""
    if im.format != "JPEG" or im.mode not in ("RGB", "L"):
        return None
    return _reencode_jpeg(data, im, max_side, quality)


def _reencode_jpeg(data: bytes | bytearray, im, max_side: int, quality: int) -> Reencoded | None:
    """The fast path for an RGB or greyscale JPEG whose header ``im`` has read; None sends the
    image to the Pillow path (libjpeg reported a problem with the stream)."""
    import cv2
    import numpy as np
    import simplejpeg

    from .rights import rights_of

    w, h = im.size
    orientation = im.getexif().get(0x0112, 1)
    grey = im.mode == "L"
    target = _target((w, h), max_side) if max_side > 0 else (w, h)
    try:
        # strict: a warning (premature end, corrupt data) raises instead of returning grey rows
        pixels = simplejpeg.decode_jpeg(bytes(data) if isinstance(data, bytearray) else data,
                                        colorspace="GRAY" if grey else "RGB",
                                        min_width=target[0], min_height=target[1], strict=True)
    except ValueError as exc:
        if cut_off(exc):  # decoding stopped early: grey from there on, never stored
            raise ImageDecodeError(f"the JPEG stream stops early ({exc}): truncated or cut off") from None
        return None
    if (pixels.shape[1], pixels.shape[0]) != target:
        factor = pixels.shape[1] / target[0]
        # after the scaled decode the factor left is below 2, where bilinear weighs every source
        # pixel; area averaging is the right filter for larger ones
        pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_LINEAR if factor < 2 else cv2.INTER_AREA)
    if orientation != 1:
        pixels = _orient_array(pixels, orientation)
    if pixels.ndim == 2:  # cv2.resize drops a greyscale image's channel axis
        pixels = pixels[:, :, None]
    encoded = simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality,
                                     colorspace="GRAY" if grey else "RGB", colorsubsampling="420")
    ow, oh = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
    return Reencoded(encoded, pixels.shape[1], pixels.shape[0], ow, oh, im.mode, rights_of(im))


def _orient_array(pixels, orientation: int):
    """``pixels`` (rows, columns[, channels]) turned upright for an EXIF orientation of 2..8."""
    import numpy as np

    if orientation in (5, 6, 7, 8):
        pixels = np.swapaxes(pixels, 0, 1)  # transpose: orientation 5 itself
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]  # what is left after the transpose
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    return pixels


def _apply_orientation(im, orientation: int):
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return im.transpose(method) if method is not None else im


def image_size(fh) -> tuple[int, int]:
    """Width and height from the header of the local image file ``fh`` (no decode), oriented.

    Raises :class:`ImageDecodeError` when the header does not parse and :class:`ImageTooLarge` past
    Pillow's decompression-bomb limit: the image's own faults. ``fh`` is a local file (the body as
    received, before it is stored), so any other error is not the image's and is raised as it is.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(fh) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except (UnidentifiedImageError, *DECODE_ERRORS) as exc:
        raise ImageDecodeError(f"{type(exc).__name__}: {exc}") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts the pool down
    _prepare()


def _prepare() -> None:
    """Import the codecs once per process, not per image; OpenCV's own threads stay off (the pool
    is the parallelism)."""
    import cv2
    import simplejpeg  # noqa: F401
    from PIL import Image  # noqa: F401

    cv2.setNumThreads(1)


class ImagePool:
    """A worker pool for :func:`reencode`; ``await pool.reencode(data)`` from the event loop.

    ``kind="process"`` isolates decoding in spawned processes; ``kind="thread"`` keeps it in this
    process, where simplejpeg, OpenCV and Pillow release the GIL while they work, which saves the
    start-up of the processes and shipping every image to one and back
    (benchmarks/bench_download.py --pool). ``kind="mixed"`` (the stage's default) runs the JPEG
    fast path (:func:`reencode_jpeg`: libjpeg-turbo, strict) in threads and every image it does not
    take (other formats, Pillow's decoders, JPEGs it declines) in spawned processes, started at the
    first such image.

    A worker process that dies (the OOM killer, a decoder crash) breaks a process pool and fails
    every image in it. The pool is then replaced, and each of those images is re-encoded again,
    one at a time, in a one-process quarantine pool: an image that kills that process too is the
    culprit and raises :class:`ImageDecodeError`; the others come back as if nothing happened.
    """

    def __init__(self, workers: int, max_side: int, quality: int, kind: str = "process"):
        self.workers = clamp_workers(workers)
        self.max_side = max_side
        self.quality = quality
        self.kind = kind
        self.restarts = 0  # process pools replaced after a worker died
        self._threads = None  # the fast path's threads (kind mixed) or the whole pool (kind thread)
        if kind in ("thread", "mixed"):
            _prepare()
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="m5data-reencode")
        # what the pool of reencode() runs: with kind mixed only what the fast path did not take
        self._fn = functools.partial(reencode, fast=False) if kind == "mixed" else reencode
        self._executor = self._threads if kind == "thread" else None  # processes: started when first needed
        self._generation = 0
        self._quarantine: ProcessPool | None = None
        self._quarantine_lock = asyncio.Lock()

    def _new_executor(self, workers: int):
        if self.kind == "thread":
            return ThreadPoolExecutor(workers, thread_name_prefix="m5data-reencode")
        # spawned workers that end with this process, which may be a daemonic one (a stock Dask worker)
        return ProcessPool(workers, initializer=_init_worker)

    async def reencode(self, data: bytes) -> Reencoded:
        loop = asyncio.get_running_loop()
        if self.kind == "mixed":
            done = await loop.run_in_executor(self._threads, reencode_jpeg, data, self.max_side, self.quality)
            if done is not None:
                return done
        if self._executor is None:
            self._executor = self._new_executor(self.workers)
        generation = self._generation
        try:
            return await loop.run_in_executor(self._executor, self._fn, data, self.max_side, self.quality)
        except BrokenProcessPool:
            if generation == self._generation:  # the first image to see this pool broken replaces it
                broken, self._executor = self._executor, self._new_executor(self.workers)
                self._generation += 1
                self.restarts += 1
                broken.shutdown(wait=False, cancel_futures=True)
        return await self._reencode_alone(data)

    async def _reencode_alone(self, data: bytes) -> Reencoded:
        """Re-encode ``data`` with no other image in flight: if the process dies, this image did it."""
        loop = asyncio.get_running_loop()
        async with self._quarantine_lock:
            if self._quarantine is None:
                self._quarantine = self._new_executor(1)
            try:
                return await loop.run_in_executor(self._quarantine, self._fn, data, self.max_side, self.quality)
            except BrokenProcessPool:
                self._quarantine.shutdown(wait=False, cancel_futures=True)
                self._quarantine = None
                raise ImageDecodeError("the re-encoding process died on this image (crashed or killed), "
                                       "alone in its pool") from None

    def close(self, kill: bool = False) -> None:
        """Shut the pool down; ``kill`` terminates workers at once (a stalled run must not wait)."""
        for executor in (self._executor, self._quarantine, self._threads if self.kind == "mixed" else None):
            if executor is None:
                continue
            processes = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=not kill, cancel_futures=True)
            if kill:
                for proc in processes:
                    if proc.is_alive():
                        proc.terminate()


def clamp_workers(workers: int) -> int:
    """The number of worker processes for ``download.workers`` (0 = one per core)."""
    return workers if workers > 0 else max(1, os.cpu_count() or 1)


__all__ = ["ImageDecodeError", "ImagePool", "ImageTooLarge", "Reencoded", "clamp_workers", "image_size",
           "reencode", "reencode_jpeg"]

"""Images whose header declares more than their bytes hold, and images cut short (issue 75, item 4):
refused before the decode allocates (``corrupt``, the reason per item), with the memory of one
decode capped, while legitimate, highly compressible images (a big flat PNG of a few KB) still pass."""

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile
from support.media_server import MediaServer, jpeg_bytes, media_rows

from m5data.download.declared import check_declared
from m5data.download.resize import ImageDecodeError, ImageTooLarge, reencode, reencode_jpeg

SOF = (0xC0, 0xC1, 0xC2)


def _noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)


def _saved(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def header_only_jpeg(w: int = 12000, h: int = 12000, *, progressive: bool = True, mode: str = "RGB",
                     seed: int = 0) -> bytes:
    """A real 16x16 JPEG (a few hundred bytes) whose frame header (SOF) is patched to say ``w`` x ``h``."""
    data = bytearray(_saved(_noise(16, 16, mode, seed), "JPEG", quality=50, progressive=progressive))
    i = 2
    while data[i + 1] not in SOF:
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    data[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _header_only_png(w: int = 12000, h: int = 12000) -> bytes:
    data = bytearray(_saved(_noise(16, 16), "PNG"))
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid IHDR: only its size lies
    return bytes(data)


def _header_only_gif(w: int = 12000, h: int = 12000) -> bytes:
    data = bytearray(_saved(_noise(16, 16).convert("P"), "GIF"))
    data[6:10] = struct.pack("<HH", w, h)  # the logical screen
    at = data.index(b"\x2c", 13 + 3 * 256)  # the image descriptor, after the global colour table
    data[at + 5:at + 9] = struct.pack("<HH", w, h)
    return bytes(data)


@pytest.mark.parametrize("make", [
    lambda: header_only_jpeg(progressive=True), lambda: header_only_jpeg(progressive=False),
    lambda: header_only_jpeg(mode="L"), lambda: header_only_jpeg(mode="CMYK", progressive=False),
    _header_only_png, _header_only_gif,
], ids=["jpeg-progressive", "jpeg-baseline", "jpeg-grey", "jpeg-cmyk", "png", "gif"])
@pytest.mark.parametrize("fast", [True, False])
def test_a_header_that_declares_more_than_its_bytes_hold_is_refused(make, fast):
    data = make()
    assert len(data) < 2000
    with pytest.raises(ImageDecodeError, match=r"declares 12000x12000 \(144,000,000 pixels\) in [\d,]+ bytes"):
        reencode(data, 512, 90, fast=fast)
    with pytest.raises(ImageDecodeError, match="declares 12000x12000"):  # the fast path's threads refuse it too
        if reencode_jpeg(data, 512, 90) is None:
            raise ImageDecodeError("declares 12000x12000: not a JPEG, the processes judge it")


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("fast", [True, False])
def test_a_jpeg_whose_data_stops_early_is_corrupt_on_both_paths(mode, fast):
    """A header within the bound, over data that ends (at its EOI) before the picture does: libjpeg
    fills the rest with grey and Pillow says nothing; it is refused, never stored grey."""
    data = header_only_jpeg(256, 256, progressive=False, mode=mode)
    with pytest.raises(ImageDecodeError, match="stops early"):
        reencode(data, 128, 90, fast=fast)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "TIFF", "JPEG"])
def test_a_truncated_image_is_corrupt_whatever_load_truncated_images_says(monkeypatch, fmt):
    data = _saved(_noise(400, 300), fmt)
    cut = data[: len(data) * 2 // 3]
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what a library imported beside us may set
    assert reencode(data, 128, 90).width == 128
    for fast in (True, False):
        with pytest.raises(ImageDecodeError, match="truncated|cut off"):
            reencode(cut, 128, 90, fast=fast)


def _flat(fmt: str, w: int, h: int, mode: str = "RGB", **kw) -> bytes:
    return _saved(Image.new(mode, (w, h), 255 if mode in ("L", "P", "1") else (250, 250, 250)), fmt, **kw)


@pytest.mark.parametrize("fmt, mode, kw", [
    ("PNG", "RGB", {"compress_level": 9}), ("PNG", "L", {"compress_level": 9}), ("PNG", "1", {}),
    ("JPEG", "L", {"quality": 1, "optimize": True}), ("JPEG", "RGB", {"quality": 1, "optimize": True}),
    ("JPEG", "RGB", {"quality": 1, "progressive": True, "optimize": True}),
    ("GIF", "P", {}), ("WEBP", "RGB", {"lossless": True}), ("WEBP", "RGB", {"quality": 0}),
])
def test_big_flat_images_of_a_few_kilobytes_are_real_and_pass(fmt, mode, kw):
    """The bound is sound: the most compressible file an encoder makes (a flat colour at its highest
    compression) passes, however few bytes it has per pixel."""
    data = _flat(fmt, 4000, 3000, mode, **kw)
    assert len(data) < 120_000, len(data)  # a few bytes per thousand pixels: the bound must not bite here
    for fast in (True, False):
        out = reencode(data, 256, 90, fast=fast)
        assert (out.width, out.height, out.orig_width, out.orig_height) == (256, 192, 4000, 3000)


def test_the_decode_cap_refuses_before_decoding():
    """A progressive JPEG keeps every coefficient while it decodes (2 bytes each): its estimate counts
    them, and past the cap the image is too large, refused from its header."""
    data = _saved(_noise(1200, 900), "JPEG", progressive=True)
    with Image.open(io.BytesIO(data)) as im:
        check_declared(data, im, (256, 192))
        with pytest.raises(ImageTooLarge, match=r"decoding it would hold about \d+ MiB .*over the cap of 1 MiB"):
            check_declared(data, im, (256, 192), cap=1 << 20)


# the stage in a child process; the test samples the RSS of its whole tree (re-encoding processes included)
_CHILD = """
import json, sys
from pathlib import Path
from m5data.config import load
from m5data.download.run import run
from m5data.storage import Store
stats = run(Store(sys.argv[1]), load(overrides=json.loads(sys.argv[2]), environ={}, cwd=Path(sys.argv[1])))
print(json.dumps(stats.statuses))
"""


def tree_peak_rss(args: list[str], env: dict) -> tuple[str, int]:
    """Run ``args``: (its stdout, the peak of the summed RSS of it and its descendants, sampled every 10 ms)."""
    import psutil

    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not done.wait(0.01):
            total = 0
            try:
                for p in (root, *root.children(recursive=True)):
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            peak = max(peak, total)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=300)
    done.set()
    sampler.join()
    assert proc.returncode == 0, err.decode()[-3000:]
    return out.decode(), peak


def test_five_header_only_jpegs_are_corrupt_and_the_download_stays_small(store):
    """Issue 75: five ~600-byte JPEGs whose header says 12000x12000 took the download to 3.0 GB and were
    stored ok as flat grey 512x512 images. Now each is corrupt with its reason, from the header, and
    the whole process tree stays near what a run of small images takes (~300 MiB here)."""
    files = {f"bomb{i}.jpg": header_only_jpeg(progressive=i % 2 == 0, seed=i) for i in range(5)}
    files["real.jpg"] = jpeg_bytes(640, 480, seed=7)
    with MediaServer(files) as server:
        store.write("media", media_rows([server.url(f"/f/{name}") for name in files]))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                             os.environ.get("PYTHONPATH", "")]))
        out, peak = tree_peak_rss([sys.executable, "-c", _CHILD, str(store.root), json.dumps({
            "download.allow_private": True, "download.retries": 0, "download.image_max_side": 512,
            "download.workers": 2})], env)
    rows = {r["url"].rsplit("/", 1)[1]: r for r in store.read("media").to_pylist()}
    assert json.loads(out.strip().splitlines()[-1]) == {"corrupt": 5, "ok": 1}, rows
    assert rows["real.jpg"]["status"] == "ok" and (rows["real.jpg"]["width"], rows["real.jpg"]["height"]) == (512, 384)
    for name in files:
        if name != "real.jpg":
            assert rows[name]["status"] == "corrupt" and rows[name]["blob"] is None
            assert "declares 12000x12000" in rows[name]["error"] and "at least 421,875" in rows[name]["error"]
    print(f"whole-tree peak RSS {peak / 2**20:,.0f} MiB")
    assert peak < 600 << 20, f"whole-tree peak RSS {peak / 2**20:,.0f} MiB"

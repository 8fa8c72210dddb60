"""Face detection's cost per image, against extract's own image normalisation on the same pictures.

    python benchmarks/bench_faces.py               # each picture 5 times
    python benchmarks/bench_faces.py --repeat 2    # a quick run

Pictures: the real photographs of ../shared/realdata/media (the portrait, the JD photos, the EXIF-rotated
and CMYK ones), at the sizes extract produces: each normalised image (800 px on its longer side at most,
`extract.image_max_side`) and a video frame of 720x405 (`extract.frame_max_side`) cut from the portrait.
In one process, one OpenCV thread (a per-core figure: extract runs one worker per core):
  (a) extract's `normalise_image` of each original (decode, EXIF, RGB, resize, JPEG, phash),
  (b) face detection on the normalised copy (`faces.boxes.detect_files`: decode + CenterFace + decoding),
  (c) face detection on a 720x405 frame.
Prints CPU seconds per image, images per second per core, and (b)/(a): what detection adds to
extract's image time; then the cost at 6.3M images (docs/scale.md).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from m5data.extract.image import normalise_image  # noqa: E402
from m5data.faces.boxes import detect_files, read_bgr  # noqa: E402
from m5data.faces.detect import detect  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata" / "media"
PICTURES = ("faces/astronaut.png", "images/550f6d32Nf6b37d9d.jpg", "images/550f6d33N19ea687b.jpg",
            "images/574c0514Ne3530f5d.jpg", "images/577c67c9Nefee4677.jpg", "images/hopper_orientation_6.jpg",
            "images/pil_sample_cmyk.jpg")
PAPER_IMAGES = 6_313_067  # M5Product's images (docs/scale.md)


def cpu(fn, *args, **kwargs) -> float:
    start = time.process_time()
    fn(*args, **kwargs)
    return time.process_time() - start


@contextlib.contextmanager
def one_thread(prefix: str):
    """A scratch folder, with OpenCV on one thread as extract's pool workers run it (CPU per picture)."""
    import cv2

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="passes over the pictures (default 5)")
    args = ap.parse_args()
    import cv2

    with one_thread("bench-faces-") as work:
        originals = [REALDATA / rel for rel in PICTURES]
        normalised = [work / f"{i}.jpg" for i in range(len(originals))]
        for src, out in zip(originals, normalised):
            normalise_image(src, out)
        frame = cv2.resize(read_bgr(normalised[0]), (720, 405))  # the portrait as a 16:9 video frame
        detect(frame)  # load the network once, outside the timings
        norm_s = det_s = frame_s = 0.0
        for _ in range(args.repeat):
            for src, out in zip(originals, normalised):  # interleaved: load changes hit both alike
                norm_s += cpu(normalise_image, src, out)
                det_s += cpu(detect_files, str(out), [out], kind="image_norm")
            frame_s += cpu(detect, frame)
        n = args.repeat * len(originals)
        sizes = sorted({read_bgr(p).shape[1::-1] for p in normalised}, key=lambda s: -s[0] * s[1])
        print(f"pictures: {len(originals)} x {args.repeat}; normalised sizes (w, h): {sizes}")
        print(f"(a) extract normalise_image   {norm_s / n * 1000:7.1f} ms CPU/image  {n / norm_s:6.1f} images/s/core")
        print(f"(b) detect on the normalised  {det_s / n * 1000:7.1f} ms CPU/image  {n / det_s:6.1f} images/s/core")
        print(f"(c) detect on a 720x405 frame {frame_s / args.repeat * 1000:7.1f} ms CPU/frame  "
              f"{args.repeat / frame_s:6.1f} frames/s/core")
        print(f"(b)/(a): detection costs {det_s / norm_s:.2f}x extract's image normalisation; "
              f"image extract with detection: {(norm_s + det_s) / norm_s:.2f}x its time without")
        per = det_s / n
        print(f"at 6.3M images ({PAPER_IMAGES:,}): {per * PAPER_IMAGES / 3600:,.0f} CPU-hours of detection "
              f"({per * PAPER_IMAGES / 3600 / 16:,.0f} h on 16 cores)")


if __name__ == "__main__":
    main()

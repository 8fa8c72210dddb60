"""Benchmark: CPU per normalised image of the vision stage's signals, against face detection's in the same run.

Pictures: the real photos of ../shared/realdata/media (the JD product photos, the CMYK sample, the EXIF
photo, the astronaut), normalised as extract normalises them (``extract.image.normalise_image``: at most
800 px a side, JPEG), repeated to ``--images`` pictures. In a child process pinned to one core (torch
and OpenCV limited to one thread, ``OMP_NUM_THREADS=1``), for each picture:

* **features**: ``vision.pictures.decode`` + ``vision.vectors.embed`` (EfficientNet-Lite0 at the default
  224 px, batches of ``vision.batch``): what the ``vision`` stage pays per picture;
* **faces**: ``faces.detect.detect`` on the same picture decoded by OpenCV (what extract pays per image today).

Printed: CPU ms per picture of each, their ratio (features / faces), the model's load, and the child's
process-tree peak RSS (``peak_rss``, sampled) with the model loaded. Target (issue 78): every signal
together <= 150 ms CPU per normalised image on one core.

    python benchmarks/bench_image_signals.py [--images 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
REAL = ROOT.parent / "shared" / "realdata" / "media"


def child(images: int, batch: int) -> dict:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    from m5data.extract.image import normalise_image
    from m5data.faces.detect import detect
    from m5data.vision.backbone import load
    from m5data.vision.pictures import decode
    from m5data.vision.vectors import embed

    sources = sorted((REAL / "images").glob("*.jpg")) + [REAL / "faces" / "astronaut.png"]
    work = Path(tempfile.mkdtemp(prefix="m5data-bench-vision-"))
    normal = []
    for i, src in enumerate(sources):
        out = work / f"{i}.jpg"
        normalise_image(src, out)
        normal.append(out.read_bytes())
    pictures = [normal[i % len(normal)] for i in range(images)]
    t = time.process_time()
    backbone = load("efficientnet-lite0")
    load_cpu = time.process_time() - t
    embed(backbone, [decode(pictures[0], backbone.size, 1 << 30, 1 << 30)])  # the first call's one-off costs
    bgr = cv2.imdecode(__import__("numpy").frombuffer(pictures[0], "uint8"), cv2.IMREAD_COLOR)
    detect(bgr)
    t = time.process_time()
    for start in range(0, images, batch):
        chunk = pictures[start:start + batch]
        embed(backbone, [decode(p, backbone.size, 1 << 30, 1 << 30) for p in chunk])
    features = time.process_time() - t
    t = time.process_time()
    for p in pictures:
        detect(cv2.imdecode(__import__("numpy").frombuffer(p, "uint8"), cv2.IMREAD_COLOR))
    faces = time.process_time() - t
    return {"images": images, "sources": len(sources), "load_cpu_s": load_cpu,
            "features_ms": 1000 * features / images, "faces_ms": 1000 * faces / images}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        print("RESULT " + json.dumps(child(args.images, args.batch)))
        return 0
    import subprocess

    from peak_rss import run_measured

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    m = run_measured([sys.executable, __file__, "--child", "--images", str(args.images), "--batch", str(args.batch)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = next((x for x in (m.stdout or "").splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        print(m.stderr[-2000:])
        return 1
    r = json.loads(line[7:])
    print(f"{r['images']} normalised pictures ({r['sources']} real photos repeated), one core, batch {args.batch}")
    print(f"  features (decode + EfficientNet-Lite0 224 px)  {r['features_ms']:7.1f} ms CPU per picture")
    print(f"  faces (OpenCV decode + CenterFace)             {r['faces_ms']:7.1f} ms CPU per picture")
    print(f"  ratio features / faces                         {r['features_ms'] / r['faces_ms']:7.2f}")
    print(f"  model load {r['load_cpu_s']:.2f} CPU s; process tree peak RSS {m.peak / 2**20:,.0f} MiB")
    print(f"  target (issue 78): all signals <= 150 ms CPU per picture: features alone "
          f"{'within' if r['features_ms'] <= 150 else 'OVER'} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

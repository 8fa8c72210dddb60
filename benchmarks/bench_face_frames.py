"""faces.frames (was extract.face_frames): the frames face detection looks at with ``changed`` against ``all``, and the faces it misses.

    python benchmarks/bench_face_frames.py                    # the real videos and a 20-product demo shop's
    python benchmarks/bench_face_frames.py --demo-products 0  # the real videos only

Videos: every real one of ../shared/realdata/media/video (Big Buck Bunny's 30 s and 1 s, Chaplin's film,
moviepy's example, fire2), a slideshow of real pictures (a JD product photo 5 s, the astronaut 3 s, the
photo 4 s: a still product shot with a face coming in), the photo 4 s and then with the astronaut
pasted 64 px wide 4 s (a 10x12-px face, about the least the detector finds), and the videos of a generated demo shop. Each is
cut into the frames extract keeps (1 fps, 720 px on the longer side at most: ``ffmpeg -vf fps=1``; a file it cannot decode is left out), then
detected with ``faces.boxes.detect_pictures`` both ways, in one process, one OpenCV thread. Per video:
frames, frames ``changed`` looked at, faces ``all`` found, misses (faces ``all`` found in a frame that
``changed`` leaves without a box over them: IoU >= 0.5) and CPU seconds of each; then the totals.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_faces import one_thread  # noqa: E402

from m5data.faces.boxes import detect_pictures  # noqa: E402

REALDATA = ROOT.parent / "shared" / "realdata" / "media"
VIDEOS = ("big_buck_bunny_0_30.webm", "big_buck_bunny_432_433.webm", "chaplin.mp4", "example.mp4", "fire2.mp4")
SLIDES = (("images/550f6d32Nf6b37d9d.jpg", 5), ("faces/astronaut.png", 3), ("images/550f6d32Nf6b37d9d.jpg", 4))
SCALE = "scale='if(gt(iw,ih),min(720,iw),-2)':'if(gt(iw,ih),-2,min(720,ih))'"


def frames(video: Path, folder: Path) -> list[Path]:
    """The frames extract would keep of ``video``; none for a file ffmpeg cannot decode (the demo's broken ones)."""
    folder.mkdir(parents=True)
    done = subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(video), "-vf", f"fps=1,{SCALE}", "-q:v", "3",
                           str(folder / "%06d.jpg")])
    return sorted(folder.glob("*.jpg")) if done.returncode == 0 else []


def slideshow(out: Path) -> Path:
    """The slideshow of :data:`SLIDES` at 640x360, 25 fps (H.264)."""
    args, n = [], len(SLIDES)
    for rel, seconds in SLIDES:
        args += ["-loop", "1", "-t", str(seconds), "-i", str(REALDATA / rel)]
    scaled = "".join(f"[{i}:v]scale=640:360:force_original_aspect_ratio=decrease,pad=640:360:(ow-iw)/2:(oh-ih)/2,"
                     f"setsar=1,fps=25,format=yuv420p[v{i}];" for i in range(n))
    subprocess.run(["ffmpeg", "-v", "error", *args, "-filter_complex",
                    scaled + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1[cat]", "-map", "[cat]",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def small_face(out: Path) -> Path:
    """The JD product photo 4 s, then the same with the astronaut pasted 64 px wide (her face 10x12 px,
    about the least the detector finds) 4 s, at 640x360: a face coming into a still shot."""
    photo, still = REALDATA / SLIDES[0][0], ("scale=640:360:force_original_aspect_ratio=decrease,"
                                             "pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1")
    subprocess.run(["ffmpeg", "-v", "error", "-loop", "1", "-t", "4", "-i", str(photo), "-loop", "1", "-t", "4",
                    "-i", str(photo), "-i", str(REALDATA / "faces/astronaut.png"), "-filter_complex",
                    f"[0:v]{still},fps=25,format=yuv420p[a];[2:v]scale=64:64[f];[1:v]{still}[b0];"
                    "[b0][f]overlay=500:40,fps=25,format=yuv420p[b];[a][b]concat=n=2:v=1[c]",
                    "-map", "[c]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def iou(a, b) -> float:
    w, h = min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0)
    inter = max(0.0, w) * max(0.0, h)
    return inter / ((a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter)


def measure(paths: list[Path]) -> dict:
    t = time.process_time()
    every, _, _ = detect_pictures(paths, "all")
    all_s = time.process_time() - t
    t = time.process_time()
    changed, _, checked = detect_pictures(paths, "changed")
    changed_s = time.process_time() - t
    missed = sum(not any(iou(f, g) >= 0.5 for g in others) for faces, others in zip(every, changed) for f in faces)
    return {"frames": len(paths), "checked": checked, "faces": sum(map(len, every)),
            "frames_with_faces": sum(1 for f in every if f), "missed": missed, "all_s": all_s, "changed_s": changed_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-products", type=int, default=20, help="products of the demo shop whose videos are measured")
    args = ap.parse_args()
    with one_thread("bench-face-frames-") as work:
        videos = {f"real/{name}": REALDATA / "video" / name for name in VIDEOS}
        videos["real pictures/slideshow"] = slideshow(work / "slides.mp4")
        videos["real pictures/small face comes in"] = small_face(work / "small.mp4")
        if args.demo_products:
            from m5data.demo.generate import generate

            shop = generate(work / "shop", products=args.demo_products, seed=0, workers=1)
            for i, path in enumerate(sorted(shop.rglob("*.mp4"))):
                videos[f"demo/{i:02d} {path.name[:16]}"] = path
        totals: dict[str, dict] = {}
        print(f"{'video':<38} {'frames':>6} {'checked':>7} {'faces':>5} {'missed':>6} {'all CPU s':>9} {'changed CPU s':>13}")
        for i, (name, path) in enumerate(videos.items()):
            paths = frames(path, work / "frames" / str(i))
            if not paths:
                print(f"{name:<38} not decodable: left out")
                continue
            r = measure(paths)
            print(f"{name:<38} {r['frames']:>6} {r['checked']:>7} {r['faces']:>5} {r['missed']:>6} "
                  f"{r['all_s']:>9.2f} {r['changed_s']:>13.2f}", flush=True)
            group = totals.setdefault(name.split("/")[0], {})
            for k, v in r.items():
                group[k] = group.get(k, 0) + v
        for group, t in totals.items():
            print(f"\n{group}: {t['checked']} of {t['frames']} frames looked at ({t['checked'] / t['frames']:.0%}), "
                  f"{t['faces']} faces in {t['frames_with_faces']} frames, {t['missed']} missed; "
                  f"CPU {t['all_s']:.2f} s -> {t['changed_s']:.2f} s")


if __name__ == "__main__":
    main()

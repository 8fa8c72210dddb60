"""Render the demo shop's media files: Pillow images and ffmpeg videos, in a process pool.

What an image or video shows depends on the product: the class sets the background hue, the
sub-class the shape and its colour, the level-3 class a stripe count, and the instance the accent
colour, decorations, label and (in videos) the second tone and tremolo of the audio. Duplicate
listings of one instance share all of that and differ by crop, size, mirroring and encoding.
Every file is written straight to disk; workers return only small metadata.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FONT_CANDIDATES = ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                   "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
NOT_AN_IMAGE = (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                b"<body><h1>502 Bad Gateway</h1><p>upstream image server error</p></body></html>\n")
BASE_SIZE = 800
FACE = Path(__file__).with_name("astronaut.jpg")  # NASA's photograph, public domain (demo/cases.py)


def font_path() -> str | None:
    """A TrueType font for Latin labels (images and ffmpeg drawtext), or None."""
    return next((f for f in FONT_CANDIDATES if os.path.exists(f)), None)


def ffmpeg_exe() -> str:
    """ffmpeg on PATH, else the binary that imageio-ffmpeg ships."""
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _shape(draw, kind: int, box: tuple[float, float, float, float], fill, outline) -> None:
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if kind == 0:
        draw.ellipse(box, fill=fill, outline=outline, width=8)
    elif kind == 1:
        draw.rectangle(box, fill=fill, outline=outline, width=8)
    elif kind == 2:
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill, outline=outline)
    elif kind == 3:
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill, outline=outline)
    elif kind == 4:
        draw.regular_polygon((cx, cy, w / 2), 6, fill=fill, outline=outline)
    elif kind == 5:
        draw.ellipse(box, outline=fill, width=int(w / 6))
    elif kind == 6:
        for i in range(4):
            draw.rectangle((x0 + i * w / 4 + 6, y0 + (i % 2) * h / 5, x0 + (i + 1) * w / 4 - 6, y1),
                           fill=fill, outline=outline)
    else:
        draw.rectangle((cx - w / 6, y0, cx + w / 6, y1), fill=fill)
        draw.rectangle((x0, cy - h / 6, x1, cy + h / 6), fill=fill)


def product_image(visual: dict, view: str):
    """The instance's photo for one view (main, detail, angle, swatch, scene) at 800x800."""
    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(visual["seed"])
    bg, fg, accent = tuple(visual["bg"]), tuple(visual["fg"]), tuple(visual["accent"])
    img = Image.new("RGB", (BASE_SIZE, BASE_SIZE), bg)
    draw = ImageDraw.Draw(img)
    for y in range(0, BASE_SIZE, 16):  # soft vertical gradient, like a studio backdrop
        k = y / BASE_SIZE * 0.18
        draw.rectangle((0, y, BASE_SIZE, y + 16), fill=tuple(int(c * (1 - k)) for c in bg))
    dots = [(rng.uniform(40, 760), rng.uniform(40, 760), rng.uniform(12, 40)) for _ in range(6)]
    if view == "swatch":
        for i in range(9):
            c = [fg, accent, bg][i % 3]
            x, y = 80 + (i % 3) * 220, 80 + (i // 3) * 220
            draw.rectangle((x, y, x + 190, y + 190), fill=tuple(int(v * (0.7 + 0.1 * (i // 3))) for v in c))
    else:
        scale = {"main": 1.0, "detail": 1.0, "angle": 0.85, "scene": 0.55}[view]
        half = 260 * scale
        cx, cy = (400, 400) if view != "scene" else (rng.uniform(260, 540), 470)
        _shape(draw, visual["shape"], (cx - half, cy - half, cx + half, cy + half), fg, accent)
        for i in range(visual["stripes"]):
            y = cy - half / 2 + i * half / max(visual["stripes"], 1) / 1.2
            draw.rectangle((cx - half / 2, y, cx + half / 2, y + 10), fill=accent)
        for x, y, r in dots:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=accent, outline=fg, width=3)
        path = font_path()
        font = ImageFont.truetype(path, 44) if path else ImageFont.load_default()
        draw.text((60, 690), visual["label"], fill=fg, font=font)
    if view == "detail":
        img = img.crop((200, 200, 600, 600)).resize((BASE_SIZE, BASE_SIZE), Image.Resampling.BILINEAR)
    elif view == "angle":
        img = img.rotate(12 + visual["seed"] % 20, resample=Image.Resampling.BILINEAR, fillcolor=bg)
    return img


def render_image(job: dict, out: Path) -> None:
    """Write one listing image: the instance's view, then this listing's crop, size and encoding."""
    from PIL import Image

    render, variant = job["render"], job["render"]["variant"]
    img = product_image(render["visual"], render["view"])
    if render.get("face"):  # a person in the photo (demo/cases.py)
        img.paste(Image.open(FACE).convert("RGB").resize((400, 400), Image.Resampling.BILINEAR), (200, 120))
    w, h = render["size"]
    left, top, right, bottom = (int(v * BASE_SIZE) for v in variant["crop"])
    box = (left, top, BASE_SIZE - right, BASE_SIZE - bottom)
    bw, bh = box[2] - box[0], box[3] - box[1]
    if bw / bh > w / h:  # keep the target aspect ratio inside the crop box
        cut = bw - round(bh * w / h)
        box = (box[0] + cut // 2, box[1], box[2] - (cut - cut // 2), box[3])
    else:
        cut = bh - round(bw * h / w)
        box = (box[0], box[1] + cut // 2, box[2], box[3] - (cut - cut // 2))
    img = img.resize((w, h), Image.Resampling.BILINEAR, box=box)
    if variant["mirror"]:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gain = variant["brightness"]  # a lookup table is four times cheaper than ImageEnhance
    img = img.point([min(255, round(v * gain)) for v in range(256)] * 3)
    if render["fmt"] == "png":
        img.save(out, "PNG", optimize=False)
    else:
        img.save(out, "JPEG", quality=variant["quality"], optimize=False, progressive=False)


def video_args(job: dict, out: Path, first_input: int) -> tuple[list[str], list[str]]:
    """ffmpeg input and output arguments of one product video (bit-exact, single-threaded x264).

    The audio is mixed inside its own lavfi input, so that several videos can share one ffmpeg
    process: each output then has the same bytes as when rendered alone.
    """
    render, visual = job["render"], job["render"]["visual"]
    w, h = render["size"]
    fps, frames, phase = render["fps"], render["frames"], render["phase"]
    seconds = frames / fps
    hex_ = "0x{:02x}{:02x}{:02x}".format
    box = min(w, h) // 3
    vf = [f"color=c={hex_(*visual['bg'])}:s={w}x{h}:r={fps}:d={seconds:.6f}",
          f"drawbox=x='mod(t*{40 + phase}+{phase * 3},{w - box})':y={h // 3}:w={box}:h={box}"
          f":color={hex_(*visual['fg'])}@1:t=fill",
          f"drawbox=x={w // 8}:y='mod(t*{20 + visual['shape'] * 7},{h - h // 6})':w={w // 6}:h={h // 8}"
          f":color={hex_(*visual['accent'])}@1:t=fill"]
    for i in range(visual["stripes"]):
        vf.append(f"drawbox=x=0:y={h - 8 - i * 12}:w={w}:h=6:color={hex_(*visual['accent'])}@1:t=fill")
    font = font_path()
    if font:
        vf.append(f"drawtext=fontfile={font}:text='{visual['label']}':x=10:y=10:fontsize={h // 10}"
                  f":fontcolor={hex_(*visual['fg'])}")
    inputs = ["-f", "lavfi", "-i", ",".join(vf)]
    outputs = ["-map", f"{first_input}:v"]
    if render["audio"]:
        tones = "".join(f"sine=f={visual[k]}:sample_rate=16000:d={seconds:.6f}[{k}];"
                        for k in ("tone", "tone2"))
        inputs += ["-f", "lavfi", "-i",
                   f"{tones}[tone][tone2]amix=inputs=2,tremolo=f={visual['tremolo']}:d=0.6[out0]"]
        outputs += ["-map", f"{first_input + 1}:a", "-c:a", "aac", "-aac_coder", "fast",
                    "-b:a", "32k", "-ac", "1", "-flags:a", "+bitexact"]
    outputs += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast",
                "-threads", "1", "-pix_fmt", "yuv420p", "-g", str(fps * 2), "-flags:v", "+bitexact",
                "-fflags", "+bitexact", "-map_metadata", "-1", "-f", "mp4", str(out)]
    return inputs, outputs


def face_video_command(job: dict, out: Path) -> list[str]:
    """The ffmpeg command of a video that shows a face (demo/cases.py): the astronaut's photograph,
    scaled to the frame's height, with the product's sound; rendered alone."""
    ins, outs = video_args(job, out, 0)
    w, h = job["render"]["size"]
    ins[:4] = ["-loop", "1", "-framerate", str(job["render"]["fps"]), "-i", str(FACE)]
    at = outs.index("-frames:v")
    outs[at:at] = ["-vf", f"scale=-2:{h},pad={w}:{h}:(ow-iw)/2:0,setsar=1"]
    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *ins, *outs]


def video_command(jobs: list[tuple[dict, Path]]) -> list[str]:
    """One ffmpeg command that renders several videos (one process start instead of many)."""
    inputs: list[str] = []
    outputs: list[str] = []
    for job, out in jobs:
        ins, outs = video_args(job, out, inputs.count("-i"))
        inputs += ins
        outputs += outs
    return [ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *inputs, *outputs]


def _finish(job: dict, out: Path) -> dict:
    """Apply a planned truncation, then hash the file as it will be served."""
    if job["fault"] == "corrupt_truncated":
        # Cut the tail: a JPEG/PNG loses its image data end, an mp4 its trailing moov atom.
        size = out.stat().st_size
        with open(out, "r+b") as fh:
            fh.truncate(max(64, size * 2 // 5))
    digest = hashlib.sha256()
    with open(out, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"url": job["url"], "bytes": out.stat().st_size, "sha256": digest.hexdigest()}


def render_task(jobs: list[dict]) -> list[dict]:
    """Render a group of media files (or their planned corruption); return their facts.

    Images are drawn one by one; the group's videos share one ffmpeg process.
    """
    facts, videos, done = [], [], []
    for job in jobs:
        out = Path(job["site"]) / job["url"].lstrip("/")
        if job["fault"] == "dead_404":
            facts.append({"url": job["url"], "bytes": 0, "sha256": ""})
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        if job["fault"] == "corrupt_zero_bytes":
            out.write_bytes(b"")
        elif job["fault"] == "corrupt_not_image":
            out.write_bytes(NOT_AN_IMAGE)
        elif job["render"]["type"] == "image":
            render_image(job, out)
        elif job["render"].get("face"):
            run = subprocess.run(face_video_command(job, out), capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"ffmpeg failed ({run.returncode}): {run.stderr[-2000:]}")
        else:
            videos.append((job, out))
            continue
        done.append((job, out))
    if videos:
        run = subprocess.run(video_command(videos), capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({run.returncode}): {run.stderr[-2000:]}")
    return facts + [_finish(job, out) for job, out in done + videos]


def render_all(jobs: list[dict], workers: int | None = None, videos_per_task: int = 6,
               images_per_task: int = 8) -> dict[str, dict]:
    """Render all jobs in a process pool, longest videos first; return facts by URL."""
    workers = workers or os.cpu_count() or 1
    videos = sorted((j for j in jobs if j["render"]["type"] == "video"),
                    key=lambda j: -j["render"]["frames"])
    images = [j for j in jobs if j["render"]["type"] == "image"]
    tasks = [videos[i:i + videos_per_task] for i in range(0, len(videos), videos_per_task)]
    tasks += [images[i:i + images_per_task] for i in range(0, len(images), images_per_task)]
    if workers == 1:
        results = map(render_task, tasks)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(render_task, tasks)
    try:
        return {fact["url"]: fact for facts in results for fact in facts}
    finally:
        if workers != 1:
            pool.shutdown()

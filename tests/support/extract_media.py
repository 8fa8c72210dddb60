"""Media in a store for the extract tests (and the faces, egress, export and process-pool tests that run
extract): a file put in as a downloaded media row, extract's test settings, a generated test video."""

import hashlib
import subprocess
from pathlib import Path

from m5data.config import load
from m5data.extract.video import ffmpeg_exe


def make_video(path: Path, seconds: float, *, fps: int = 24, audio: bool = True, size: str = "64x48",
               vcodec: str = "libx264") -> Path:
    """A test video whose second k is a flat grey of luma 16 + 20k (so a frame tells its second)."""
    args = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
            f"color=c=black:s={size}:r={fps}:d={seconds},format=yuv420p,geq=lum='16+20*floor(T)':cb=128:cr=128"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}", "-c:a", "aac"]
    args += ["-c:v", vcodec, *(["-preset", "ultrafast"] if vcodec == "libx264" else []), "-t", str(seconds), str(path)]
    subprocess.run(args, check=True)
    return path


def add_media(store, path, pid, kind, role=None, ext=None):
    """Put a file into the store as a downloaded media row (status ok); returns the row."""
    ref = store.blobs.put_file(path, ext or path.suffix.lstrip("."))
    url = f"http://shop.test/{pid}/{path.name}"
    row = {"media_id": hashlib.sha1(f"{pid}|{kind}|{url}".encode()).hexdigest(), "product_id": pid, "kind": kind,
           "role": role or ("main" if kind == "image" else "video"), "position": 0, "url": url, "blob": ref.path,
           "sha256": ref.sha256, "bytes": ref.bytes, "status": "ok"}
    store.write("media", [row])
    return row


def settings(**over):
    """Settings for an extract test: ``over``'s keys are ``[extract]``'s, or a dotted key of another
    section (``**{"faces.frames": "all"}``)."""
    overrides = {"extract.workers": 1, "extract.frame_max_side": 96,
                 **{k if "." in k else f"extract.{k}": v for k, v in over.items()}}
    return load(overrides=overrides, environ={}, cwd=Path(__file__).parent)  # no stray m5data.toml or M5DATA_*


def rows_by(store, where):
    """Media rows by (product, kind); a product's main image wins over its gallery images (the
    row order of a read is not fixed)."""
    rows = sorted(store.read("media", where=where).to_pylist(), key=lambda r: r.get("role") == "main")
    return {(r["product_id"], r["kind"]): r for r in rows}

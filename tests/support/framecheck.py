"""What a faster ``extract.video_decode`` mode costs in the frames kept, against the exact decode.

The exact decode runs the ffmpeg frame pass with two more showinfo filters (every decoded frame
before ``fps``, every sampled one after it, each with a checksum of its pixels), so each kept frame
is traced back to the source frame it shows; the in-process pass of the faster modes says itself
which source frame each tick shows (its plan; a stream it hands to ffmpeg is traced as the exact
one). Per kept frame: the SSIM of its stored JPEG (at the stored size, luma) against the exact
decode's, and ``shift``, how far the source frame it shows lies from the exact decode's choice
(seconds; 0 when the same source frame is kept).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from m5data.extract.ffmpeg import MediaError, tail
from m5data.extract.ffmpeg_frames import frames_command
from m5data.extract.probe import VideoInfo
from m5data.extract.video import AV_DECODE_OPTIONS, decoder_options, jpeg_qscale

__all__ = ["DecodeQuality", "compare_decodes", "ssim"]

_SHOWINFO = re.compile(r"Parsed_showinfo_(\d+) .*?\bpts_time:(-?[0-9.]+).*?\bchecksum:([0-9A-Fa-f]+)")


@dataclass
class DecodeQuality:
    """Frames kept by one decode mode against the exact decode of the same video."""

    decode: str
    frames: int  # kept by ``decode``
    exact_frames: int  # kept by the exact decode
    ssim: list[float] = field(default_factory=list)  # per kept frame, luma, at the stored size
    shift: list[float] = field(default_factory=list)  # per kept frame, seconds between the source frames shown

    @property
    def worst_ssim(self) -> float:
        return min(self.ssim, default=1.0)

    @property
    def worst_shift(self) -> float:
        return max(self.shift, default=0.0)


def ssim(a, b) -> float:
    """Mean SSIM of two greyscale images (Wang et al. 2004: Gaussian window, sigma 1.5, K1 0.01, K2 0.03)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = gaussian_filter(a, 1.5), gaussian_filter(b, 1.5)
    var_a = gaussian_filter(a * a, 1.5) - mu_a ** 2
    var_b = gaussian_filter(b * b, 1.5) - mu_b ** 2
    cov = gaussian_filter(a * b, 1.5) - mu_a * mu_b
    score = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(score.mean())


def _traced_pass(path: Path, info: VideoInfo, out: Path, decode: str, **params) -> tuple[list[Path], list[float]]:
    """The frame pass of ``decode`` with tracing: its JPEGs and, per JPEG, the time of the source frame it shows."""
    out.mkdir(parents=True)
    args = frames_command(path, out, info, decode=decode, trace=True, **params)
    run = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    stderr = run.stderr.decode("utf-8", "replace")
    if run.returncode != 0:
        raise MediaError("ffmpeg failed", f"{path}: traced frame pass ({decode}), exit {run.returncode}: {tail(stderr)}")
    lines = [(int(n), float(t), ck) for n, t, ck in _SHOWINFO.findall(stderr)]
    before, after = sorted({n for n, _, _ in lines})[:2]  # the trace's two showinfo filters, in graph order
    decoded = [(t, ck) for n, t, ck in lines if n == before]
    shown = []
    for _, tick, ck in (x for x in lines if x[0] == after):
        same = [t for t, c in decoded if c == ck and t <= tick + 1e-6]  # the newest decoded frame with those pixels
        shown.append(max(same) if same else math.inf)
    return sorted(out.glob("*.jpg")), shown


def _av_pass(path: Path, info: VideoInfo, out: Path, decode: str, *, fps: float, max_side: int, quality: int,
             max_frames: int, max_duration: float) -> tuple[list[Path], list[float]]:
    """The in-process frame pass of ``decode``: its JPEGs and, per JPEG, the time of the source frame it shows."""
    from m5data.extract.frames_av import Unsupported, Untrusted, av_frames

    out.mkdir(parents=True)
    try:
        done = av_frames(path, out, fps=fps, max_side=max_side, qscale=jpeg_qscale(quality), max_frames=max_frames,
                         max_duration=max_duration, timeout=600.0, single_thread=True,
                         options=decoder_options(info.codec, decode, info.width, info.height, max_side,
                                                 AV_DECODE_OPTIONS), duration=info.duration)
    except Unsupported as exc:  # the ffmpeg pass, as extract_frames runs it: exact where the plan is not trusted
        shutil.rmtree(out)
        return _traced_pass(path, info, out, "exact" if isinstance(exc, Untrusted) else decode, fps=fps, max_side=max_side, quality=quality,
                            max_frames=max_frames, max_duration=max_duration)
    return [f for f, _ in done.files], done.plan.sources[:len(done.files)]


def compare_decodes(path: Path, info: VideoInfo, work: Path, *, decode: str, fps: float = 1.0, max_side: int = 720,
                    quality: int = 90, max_frames: int = 300, max_duration: float = 300.0) -> DecodeQuality:
    """Decode ``path`` exactly and in mode ``decode`` (scratch under ``work``, removed after) and compare
    the frames each keeps."""
    from PIL import Image

    params = {"fps": fps, "max_side": max_side, "quality": quality, "max_frames": max_frames,
              "max_duration": max_duration}
    scratch = work / f"framecheck-{path.name}-{decode}"
    try:
        exact_files, exact_times = _traced_pass(path, info, scratch / "exact", "exact", **params)
        files, times = (_traced_pass if decode == "exact" else _av_pass)(path, info, scratch / decode, decode, **params)
        result = DecodeQuality(decode, len(files), len(exact_files))
        for a, b, ta, tb in zip(exact_files, files, exact_times, times):
            with Image.open(a) as ia, Image.open(b) as ib:
                result.ssim.append(ssim(ia.convert("L"), ib.convert("L")) if ia.size == ib.size else 0.0)
            # to 0.1 ms: showinfo prints 6 decimals of a time the in-process plan keeps as a fraction
            result.shift.append(round(abs(ta - tb), 4) if math.isfinite(ta) and math.isfinite(tb) else math.inf)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

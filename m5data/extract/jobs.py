"""Per-item extract jobs: one video (frames + audio), one audio input, one image, or a batch of captions.

A job runs in a worker process, writes derived files (atomically) and returns the rows for the
main process to write; it never writes tables itself. Every input problem becomes a status on a
row (corrupt / too_large / absent / failed, with the reason in ``error``), never an exception.

Derived media rows (``role = 'derived'``, ``media_id = sha1(source_media_id|kind)``):

| kind | from | blob |
|---|---|---|
| frames | video | ``derived/frames/<sha[:2]>/<sha256 of the video>/`` (``000001.jpg`` ... + ``frames.json``) |
| audio | video or audio input | ``blobs/<sha[:2]>/<sha256>.mp3`` (content-addressed, like any downloaded blob) |
| mfcc | video or audio input | ``derived/mfcc/<sha[:2]>/<sha256 of the source>.npy`` (float32, see audio.py) |
| image_norm | image | ``derived/images/<sha[:2]>/<sha256 of the original>.jpg`` |

Derived files are keyed by the source's content hash, not by product_id (which holds ':' and
may list the same video as another merchant's duplicate listing): identical media are extracted once.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from pathlib import Path

from ..config import ExtractSettings
from .derived import (
    DERIVED_KINDS,
    KINDS,
    JobResult,
    Outcome,
    blob_sha,
    crashed,
    derived_dir,
    derived_id,
    derived_row,
    failed_rows,
    merge_meta,
    now_utc,
    source_file,
)
from .ffmpeg import MediaError
from .video import expected_frames
from .worker import Context, init_worker, worker_context

__all__ = ["DERIVED_KINDS", "KINDS", "Context", "JobResult", "Outcome", "blob_sha", "crashed", "derived_id",
           "frame_budget", "init_worker", "run_audio", "run_image", "run_text", "run_video",
           "sound_bytes", "source_file"]


# ---------------------------------------------------------------------------------------------- video
def run_video(payload: dict) -> JobResult:
    """Probe one video, then extract its frames and/or its audio (mp3 + MFCC), as ``payload`` asks.

    ``payload``: ``row`` (the video's media row), ``frames`` / ``audio`` (bool: what to do),
    ``frame_count`` (frames already extracted earlier, to align MFCC blocks when only audio runs).
    """
    from .probe import start_probe
    from .video import extract_frames

    ctx = worker_context()
    s = ctx.settings
    root = Path(ctx.store_root)
    src = dict(payload["row"])
    do_frames, do_audio = payload["frames"], payload["audio"]
    wanted = [k for k, on in (("video", do_frames), ("audio", do_audio)) if on]
    derived_of = {"video": ["frames"], "audio": ["audio", "mfcc"]}
    now = now_utc()
    result = JobResult()
    path, err = source_file(root, src)
    if err is not None:
        result.media = failed_rows(src, [d for k in wanted for d in derived_of[k]], err, now)
        result.outcomes = [Outcome(k, "failed", err.reason) for k in wanted]
        return result

    def broken(exc: MediaError) -> JobResult:
        src.update(status="corrupt", error=f"{src['blob']}: {exc}", updated_at=now)
        result.media.append(src)
        result.outcomes.extend(Outcome(k, "corrupt", exc.reason) for k in wanted if k not in
                               {o.kind for o in result.outcomes})
        return result

    # headers only, quick or stuck: ffprobe for "exact", in-process (PyAV) for the modes that decode in-process
    pending = start_probe(path, s.video_decode, timeout=max(10.0, min(60.0, s.video_timeout)))
    frames = None
    try:
        info = pending.result()  # before any decoding: a broken file or an oversized picture never reaches ffmpeg
        if do_frames:
            sha = blob_sha(src)
            try:
                frames = extract_frames(path, root / derived_dir("frames", sha), info, fps=s.frame_fps,
                                        max_side=s.frame_max_side, quality=s.jpeg_quality, max_frames=s.max_frames,
                                        max_duration=s.max_duration, timeout=s.video_timeout,
                                        max_pixels=s.max_video_pixels,
                                        max_bytes=frame_budget(s, info), decode=s.video_decode,
                                        single_thread=s.workers != 1)  # a pool of one worker per core
            except MediaError as exc:
                if exc.status == "corrupt":
                    return broken(exc)
                if exc.status in ("absent", "too_large"):  # sound only, or no frame fits: the audio is still wanted
                    result.media.append(derived_row(src, "frames", now, status=exc.status,
                                                 error=str(exc) if exc.status == "absent" else f"{src['blob']}: {exc}"))
                    result.outcomes.append(Outcome("video", exc.status, exc.reason))
                else:
                    result.media += failed_rows(src, ["frames"], exc, now)
                    result.outcomes.append(Outcome("video", exc.status, exc.reason))
    except MediaError as exc:
        if exc.status == "corrupt":
            return broken(exc)
        kinds = [k for k in wanted if k not in {o.kind for o in result.outcomes}]
        result.media += failed_rows(src, [d for k in kinds for d in derived_of[k]], exc, now)
        result.outcomes += [Outcome(k, exc.status, exc.reason) for k in kinds]
        return result
    finally:
        pending.close()
    src.update(duration=info.duration, fps=info.fps, width=info.width, height=info.height, codec=info.codec,
               has_audio=info.has_audio, updated_at=now,
               meta=merge_meta(src.get("meta"), {"format": info.format_name, "start_time": info.start,
                                                  "audio_codec": info.audio_codec,
                                                  "audio_channels": info.audio_channels}))
    frame_count = payload.get("frame_count")
    if frames is not None:
        frame_count = frames.count
        result.media.append(derived_row(
            src, "frames", now, blob=derived_dir("frames", blob_sha(src)), mime="image/jpeg", bytes=frames.bytes,
            width=frames.width, height=frames.height, duration=info.duration, fps=s.frame_fps,
            frame_count=frames.count, status="ok",
            meta={"timestamps": frames.timestamps, "pattern": "%06d.jpg", "jpeg_quality": s.jpeg_quality,
                  "max_side": s.frame_max_side, "decode": frames.decode, "truncated": frames.truncated,
                  "reused": frames.reused, **({"cut": frames.cut} if frames.cut else {}),
                  **({"fallback": frames.fallback} if frames.fallback else {})}))
        result.bytes += 0 if frames.reused else frames.bytes
        result.outcomes.append(Outcome("video", "ok"))
        if s.detect_faces:
            _faces(result, result.media[-1]["blob"], sorted(frames.folder.glob("*.jpg")), "frames", result.media[-1],
                   ctx.faces.frames)
    result.media.append(src)
    if do_audio:
        if frame_count is None and info.has_video:  # else the decoded sound decides (no duration needed)
            frame_count = expected_frames(info.duration, s.frame_fps, s.max_frames, s.max_duration)
        _audio(result, src, path, info, frame_count, ctx, now, spent=frames.bytes if frames is not None else 0)
    return result


def sound_bytes(s: ExtractSettings, seconds: float | None) -> int:
    """At most what the mp3 and the MFCC of ``seconds`` of sound take (both cut at ``max_duration``
    and ``max_frames`` blocks): the share of ``max_item_bytes`` a video's frames leave to its sound."""
    from .audio import block_samples

    span = min(seconds or s.max_duration, s.max_duration)
    mp3 = int(int(s.mp3_bitrate.rstrip("k")) * 1000 / 8 * span * 1.02) + 65_536  # CBR, plus tags and frame padding
    blocks = min(s.max_frames, math.ceil(span * s.frame_fps))
    mfcc = blocks * s.n_mfcc * (1 + block_samples(s.sample_rate, s.frame_fps) // s.hop_length) * 4 + 1024
    return mp3 + mfcc


def frame_budget(s: ExtractSettings, info) -> int:
    """The bytes a video's frames may take: ``max_item_bytes``, less what its sound will need.

    The share is kept whether or not this job extracts the sound (``--kinds video`` now,
    ``--kinds audio`` later), so that frames and sound together stay within the cap either way."""
    reserve = sound_bytes(s, info.duration) if info.has_audio else 0
    return max(1, s.max_item_bytes - reserve)


def _audio(result: JobResult, src: dict, path: Path, info, n_blocks: int | None, ctx: Context, now: datetime,
           spent: int = 0) -> None:
    """mp3 + MFCC of ``src``'s first audio stream; ``n_blocks`` None: one block per second of sound decoded.

    ``spent``: bytes the item's frames took; mp3 and MFCC together must fit in what is left of
    ``max_item_bytes``, or both are ``too_large`` (nothing stored)."""
    from .audio import block_samples, blocks_for, extract_audio, mfcc_blocks, save_npy

    s = ctx.settings
    if not info.has_audio:
        result.media += [derived_row(src, k, now, status="absent", error="video has no audio stream")
                         for k in ("audio", "mfcc")]
        result.outcomes.append(Outcome("audio", "absent"))
        return
    root = Path(ctx.store_root)
    from ..storage import Store

    store = Store(root)
    tmp = store.blobs.temp_path(".mp3")  # <pid>-<random>.mp3: swept once this worker is dead
    try:
        samples = extract_audio(path, tmp, sample_rate=s.sample_rate, bitrate=s.mp3_bitrate,
                                channels=info.audio_channels, max_duration=s.max_duration, timeout=s.video_timeout)
        audio_seconds = len(samples) / s.sample_rate
        if not n_blocks:  # no frames to align with: the decoded sound decides, never a container duration
            n_blocks = blocks_for(audio_seconds, s.frame_fps, s.max_frames)  # >= 1: sound was decoded
        need = tmp.stat().st_size + n_blocks * s.n_mfcc * (1 + block_samples(s.sample_rate, s.frame_fps)
                                                           // s.hop_length) * 4
        if spent + need > s.max_item_bytes:
            raise MediaError("too large", f"mp3 and MFCC ({need:,} bytes) would pass the extract.max_item_bytes "
                             f"budget of {s.max_item_bytes:,} (frames took {spent:,})", status="too_large")
        ref = store.blobs.put_file(tmp, "mp3")
        mfcc = mfcc_blocks(samples, n_blocks, sample_rate=s.sample_rate, fps=s.frame_fps, n_mfcc=s.n_mfcc,
                           n_fft=s.n_fft, hop_length=s.hop_length)
        rel = derived_dir("mfcc", blob_sha(src)) + ".npy"
        size = save_npy(mfcc, root / rel)
    except MediaError as exc:
        result.media += [derived_row(src, k, now, status=exc.status, error=f"{src['blob']}: {exc}")
                         for k in ("audio", "mfcc")]
        result.outcomes.append(Outcome("audio", exc.status, exc.reason))
        return
    finally:
        tmp.unlink(missing_ok=True)
    result.media.append(derived_row(
        src, "audio", now, blob=ref.path, sha256=ref.sha256, mime="audio/mpeg", bytes=ref.bytes,
        duration=round(audio_seconds, 6), codec="mp3", status="ok",
        meta={"sample_rate": 44_100, "bitrate": s.mp3_bitrate, "source_codec": info.audio_codec}))
    result.media.append(derived_row(
        src, "mfcc", now, blob=rel, mime="application/x-npy", bytes=size, duration=round(audio_seconds, 6),
        fps=s.frame_fps, frame_count=n_blocks, status="ok",
        meta={"shape": list(mfcc.shape), "dtype": "float32", "layout": "blocks x n_mfcc x frames",
              "sample_rate": s.sample_rate, "n_mfcc": s.n_mfcc, "n_fft": s.n_fft, "hop_length": s.hop_length,
              "block_samples": block_samples(s.sample_rate, s.frame_fps)}))
    result.bytes += ref.bytes + size
    result.outcomes.append(Outcome("audio", "ok"))


def run_audio(row: dict) -> JobResult:
    """mp3 + MFCC of one audio input (a media row of kind audio); no frames. The source row gets
    its duration and codec, or ``corrupt`` when it holds no decodable sound."""
    from .probe import probe

    ctx = worker_context()
    s = ctx.settings
    src = dict(row)
    now = now_utc()
    result = JobResult()
    path, err = source_file(Path(ctx.store_root), src)
    if err is not None:
        result.media = failed_rows(src, ["audio", "mfcc"], err, now)
        result.outcomes = [Outcome("audio", "failed", err.reason)]
        return result
    try:
        info = probe(path, timeout=max(10.0, min(60.0, s.video_timeout)))
        if not info.has_audio:
            raise MediaError("no audio stream", f"format {info.format_name}")
    except MediaError as exc:
        if exc.status != "corrupt":
            result.media = failed_rows(src, ["audio", "mfcc"], exc, now)
        else:
            src.update(status="corrupt", error=f"{src['blob']}: {exc}", updated_at=now)
            result.media = [src]
        result.outcomes = [Outcome("audio", exc.status, exc.reason)]
        return result
    src.update(duration=info.duration, codec=info.audio_codec, has_audio=True, updated_at=now,
               meta=merge_meta(src.get("meta"), {"format": info.format_name, "audio_codec": info.audio_codec,
                                                  "audio_channels": info.audio_channels}))
    result.media.append(src)
    _audio(result, src, path, info, None, ctx, now)
    if result.outcomes[-1].status == "corrupt":  # no sound could be decoded: the input is to blame
        src.update(status="corrupt", error=next(r["error"] for r in result.media if r.get("kind") == "mfcc"))
    return result


# ---------------------------------------------------------------------------------------------- image
def run_image(row: dict) -> JobResult:
    """Normalise one image (see image.py); the source row gets its size, tier and phash, or its error."""
    from .image import normalise_image

    ctx = worker_context()
    s = ctx.settings
    root = Path(ctx.store_root)
    src = dict(row)
    now = now_utc()
    result = JobResult()
    path, err = source_file(root, src)
    if err is not None:
        result.media = failed_rows(src, ["image_norm"], err, now)
        result.outcomes = [Outcome("image", "failed", err.reason)]
        return result
    rel = derived_dir("images", blob_sha(src)) + ".jpg"
    try:
        n = normalise_image(path, root / rel, max_side=s.image_max_side, quality=s.jpeg_quality,
                            max_pixels=s.max_image_pixels, tier_high=s.image_tier_high,
                            tier_medium=s.image_tier_medium)
    except MediaError as exc:
        src.update(status=exc.status, error=f"{src['blob']}: {exc}", updated_at=now)
        result.media.append(src)
        result.outcomes.append(Outcome("image", exc.status, exc.reason))
        return result
    src.update(width=n.orig_width, height=n.orig_height, quality_tier=n.tier, phash=n.phash, updated_at=now,
               bytes=src.get("bytes") or path.stat().st_size)
    digest = hashlib.sha256(n.path.read_bytes()).hexdigest()
    result.media += [src, derived_row(
        src, "image_norm", now, blob=rel, sha256=digest, mime="image/jpeg", bytes=n.bytes, width=n.width,
        height=n.height, quality_tier=n.tier, phash=n.phash, status="ok",
        meta={"orig_width": n.orig_width, "orig_height": n.orig_height, "orig_format": n.orig_format,
              "orig_mode": n.orig_mode, "orig_frames": n.frames, "exif_orientation": n.orientation,
              "max_side": s.image_max_side, "jpeg_quality": s.jpeg_quality})]
    result.bytes += n.bytes
    result.outcomes.append(Outcome("image", "ok"))
    if s.detect_faces:
        _faces(result, rel, [n.path], "image_norm", result.media[-1])
    return result


def _faces(result: JobResult, blob: str, paths: list[Path], kind: str, row: dict, frames: str = "all") -> None:
    """The ``faces`` row of a derived picture (or frames folder, its ``frames`` looked at as
    ``faces.frames`` says) just written, into ``result``."""
    import cv2

    from ..faces.boxes import detect_files

    if worker_context().settings.workers != 1:  # a pool of one worker per core: OpenCV's own threads would contend
        cv2.setNumThreads(1)
    found = detect_files(blob, paths, kind=kind, media_id=row["media_id"], product_id=row.get("product_id"),
                         frames=frames)
    if found is not None:
        result.faces.append(found)


# ---------------------------------------------------------------------------------------------- text
def run_text(batch: list[dict]) -> JobResult:
    """Clean and segment a batch of product titles (``product_id``, ``title``) into captions rows."""
    from .text import caption_row

    s = worker_context().text  # what a caption is: [text], the pools' too
    now = now_utc()
    result = JobResult()
    for item in batch:
        row = caption_row(item["product_id"], item.get("title"), strip_brackets=s.strip_brackets,
                          max_chars=s.max_caption_chars, user_dict=s.jieba_user_dict)
        row["updated_at"] = now
        result.captions.append(row)
        result.outcomes.append(Outcome("text", row["status"], "no title text" if row["status"] == "empty" else ""))
    return result

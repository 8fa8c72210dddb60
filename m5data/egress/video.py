"""Whether a video may leave: a check of the video file itself for faces (``export.blur_faces``).

A video leaves only when this check found no face in it; otherwise it is withheld with the reason,
whatever extract made of it. The extracted frames are no proof: a video may be exported before its
frames were extracted, a face may show only between two 1-per-second frames or after extract's cut
(``extract.max_frames``, ``extract.max_duration``), and extract decodes one video stream while a
player shows another (ffmpeg's default choice of a copied file is not the stream extract read).

The check decodes **every** video stream of the file (ffmpeg, one run per ``-map 0:v:N``, its default
decoder, rotation applied as players apply it) over its whole duration at :data:`FPS` pictures a
second, each scaled to at most :data:`SIDE` pixels on its longer side (never enlarged), and runs the
project's face detector (``m5data/faces/detect.py``) on each. The pictures come through a pipe one at
a time (BMP, whose header gives its size): memory is one picture, whatever the video's length.

Why 4 pictures a second at 480 pixels (``benchmarks/bench_video_faces.py``, 2 shared cores, one OpenCV
thread): a face shown for 0.25 s or more is always in one of the pictures, and 480 px keeps a face of
about 1/40 of the picture's side findable (the detector's least is about 10x12 px; extract's frames,
detected at up to 720 px, withhold a video too). The detector costs 2.4 ms a picture at 160 px, 8.7 ms
at 320, 19.5 ms at 480, 36 ms at 640. Face-free videos (scanned to their end) cost 0.125 CPU-s per
second of video (Big Buck Bunny, 720p: 6.8x the CPU of a bare ``ffmpeg -f null`` decode), 0.147
(moviepy's example, 13x) and 0.032 for a still product slideshow (2.0x); every frame at 320 px costs
0.17-0.39 (9-35x) and finds a false face in Big Buck Bunny; 5 a second at 320 px 0.07-0.09. A picture
that is the same as the last one looked at (``faces.boxes.unchanged``: the ``faces.frames =
changed`` rule, which missed no face in its benchmark) is not looked at again: the slideshow's 80
pictures cost 2 detections. The whole process tree peaks at about 200 MiB whatever the length.

Caps: a video over :data:`MAX_PICTURES` pictures (all its streams together, 10 minutes of one stream),
with a picture over :data:`MAX_PIXELS`, or whose scan runs past :data:`TIMEOUT` seconds is not checked
(``not_checked``, so withheld); one that ffprobe or ffmpeg cannot decode too. A verdict is kept as a
row of the ``faces`` table (kind ``video``, keyed by the video's blob; :func:`verdict_row`), so a later
export does not scan the same file again; a ``not_checked`` verdict is not kept (it is tried again).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

FPS = 4  # pictures a second of each stream
SIDE = 480  # longest side of a picture detected (never enlarged)
MAX_PICTURES = 2400  # pictures per video at most, all streams together (600 s of one stream at FPS)
MAX_PIXELS = 33_177_600  # width x height of a stream's frame (8K UHD, extract.max_video_pixels' default)
TIMEOUT = 600.0  # seconds one video's scan may take
KIND = "video"  # the faces table's kind of a verdict row
SCAN = f"video {FPS} fps {SIDE} px"  # how the file was looked at, in the row's model (another scan: looked at again)
CLEAR, FACES, NOT_CHECKED = "clear", "faces", "not_checked"


@dataclass
class VideoVerdict:
    """What the check found in one video: ``status`` ``clear`` (it may leave), ``faces`` or ``not_checked``;
    ``reason`` in words; for faces, the stream (``v:N``), the time (seconds) and the boxes of the first
    picture that shows one, in pixels of that ``size`` picture."""

    status: str
    reason: str = ""
    stream: int | None = None
    time: float | None = None
    pictures: int = 0  # pictures decoded
    detected: int = 0  # of them, looked at by the detector (the others: the same as the last one looked at)
    size: tuple[int, int] = (0, 0)
    faces: list = field(default_factory=list)  # m5data.faces.detect.Face

    @property
    def leaves(self) -> bool:
        return self.status == CLEAR

    def withheld(self) -> str | None:
        """Why the video is withheld (``faces``, or ``not_checked: <why>``: ``undecodable``, ``over the cap``,
        ``timed out``), None when it may leave."""
        if self.leaves:
            return None
        return FACES if self.status == FACES else f"{NOT_CHECKED}: {self.reason.split(':')[0]}"


@dataclass(frozen=True)
class Stream:
    """One video stream of a file: its number among the video streams (``-map 0:v:N``), size, seconds."""

    n: int
    width: int
    height: int
    seconds: float


def probe(path: Path, timeout: float = 60.0) -> list[Stream] | str:
    """The video streams of ``path``, or why they cannot be read."""
    from ..extract.ffmpeg import ffprobe_exe, tail

    cmd = [ffprobe_exe(), "-v", "error", "-select_streams", "v", "-show_entries",
           "stream=width,height,duration:format=duration", "-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return "timed out: ffprobe"
    if done.returncode != 0:
        return f"undecodable: {tail(done.stderr, 200) or 'ffprobe failed'}"
    try:
        info = json.loads(done.stdout or b"{}")
    except ValueError:
        return "undecodable: ffprobe gave no streams"
    whole = _seconds(info.get("format", {}).get("duration"))
    return [Stream(n, int(s.get("width") or 0), int(s.get("height") or 0), _seconds(s.get("duration")) or whole)
            for n, s in enumerate(info.get("streams", []))]


def _seconds(value) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


def pictures(path: Path, stream: int, deadline: float | None = None):
    """The pictures of video stream ``stream`` of ``path`` (BGR arrays), :data:`FPS` a second, at most
    :data:`SIDE` pixels on the longer side, read one at a time from ffmpeg's pipe. Raises ``RuntimeError``
    with ffmpeg's message when it fails or runs past ``deadline`` (``time.monotonic()``)."""
    import time

    import cv2
    import numpy as np

    from ..extract.ffmpeg import ffmpeg_exe, tail

    scale = f"scale=w='min(iw,{SIDE})':h='min(ih,{SIDE})':force_original_aspect_ratio=decrease"
    cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:v:{stream}", "-an", "-sn", "-dn",
           "-vf", f"fps={FPS},{scale}", "-f", "image2pipe", "-c:v", "bmp", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # a full pipe stalls ffmpeg
    reader.start()
    timer = None
    if deadline is not None:
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), proc.kill)
        timer.start()
    try:
        while True:
            head = _read(proc.stdout, 6)
            if not head:
                break
            if len(head) < 6 or head[:2] != b"BM":
                raise RuntimeError("ffmpeg's picture stream broke off")
            size = int.from_bytes(head[2:6], "little")
            body = _read(proc.stdout, size - 6)
            if len(body) < size - 6:
                raise RuntimeError("ffmpeg's picture stream broke off")
            bgr = cv2.imdecode(np.frombuffer(head + body, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise RuntimeError("a picture ffmpeg gave could not be read")
            yield bgr
        proc.wait()
        reader.join()
        if deadline is not None and time.monotonic() >= deadline:
            raise RuntimeError("timed out")
        if proc.returncode != 0:
            raise RuntimeError(tail(b"".join(err), 200) or f"ffmpeg exited with {proc.returncode}")
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def _read(fh, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = fh.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def scan(path: Path, *, max_pictures: int = MAX_PICTURES, timeout: float = TIMEOUT) -> VideoVerdict:
    """Look at every video stream of ``path`` for faces; the first picture with one ends the scan."""
    import time

    from ..faces.boxes import thumbnail, unchanged
    from ..faces.detect import detect

    streams = probe(path)
    if isinstance(streams, str):
        return VideoVerdict(NOT_CHECKED, streams)
    if not streams:
        return VideoVerdict(NOT_CHECKED, "undecodable: no video stream")
    if any(s.width * s.height > MAX_PIXELS for s in streams):
        return VideoVerdict(NOT_CHECKED, f"over the cap: a frame over {MAX_PIXELS:,} pixels")
    expected = sum(int(s.seconds * FPS) + 1 for s in streams)
    if expected > max_pictures:
        return VideoVerdict(NOT_CHECKED, f"over the cap: {expected:,} pictures to look at (at most {max_pictures:,})")
    deadline, done, detected, size = time.monotonic() + timeout, 0, 0, (0, 0)
    for s in streams:
        seen, checked = 0, None
        try:
            for k, bgr in enumerate(pictures(path, s.n, deadline)):
                seen += 1
                done += 1
                if done > max_pictures:
                    return VideoVerdict(NOT_CHECKED, f"over the cap: more than {max_pictures:,} pictures",
                                        pictures=done - 1, detected=detected)
                size = (bgr.shape[1], bgr.shape[0])
                thumb = thumbnail(bgr)
                if checked is not None and unchanged(thumb, checked):
                    continue  # the same picture as the last one looked at, which shows no face
                checked = thumb
                detected += 1
                if found := detect(bgr):
                    return VideoVerdict(FACES, f"faces in stream v:{s.n} at {k / FPS:.2f} s", stream=s.n,
                                        time=k / FPS, pictures=done, detected=detected, size=size, faces=found)
        except RuntimeError as exc:
            timed_out = time.monotonic() >= deadline  # ffmpeg killed at the deadline: a cut picture, or none
            why = f"timed out: after {timeout:g} s" if timed_out else f"undecodable: stream v:{s.n}: {exc}"
            return VideoVerdict(NOT_CHECKED, why, pictures=done, detected=detected)
        if not seen:
            return VideoVerdict(NOT_CHECKED, f"undecodable: stream v:{s.n} gave no picture", pictures=done,
                                detected=detected)
    return VideoVerdict(CLEAR, f"no face in {done} picture(s) of {len(streams)} stream(s)", pictures=done,
                        detected=detected, size=size)


def verdict_row(blob: str, verdict: VideoVerdict, *, media_id: str | None = None,
                product_id: str | None = None) -> dict | None:
    """The ``faces`` row that keeps ``verdict`` (kind ``video``; ``model`` the detector and :data:`SCAN`,
    with the stream of the faces; ``frame`` per face: the picture's index in its stream at :data:`FPS`);
    None for ``not_checked``, which is not kept."""
    from ..faces.boxes import face_row
    from ..faces.detect import MODEL

    if verdict.status == NOT_CHECKED:
        return None
    index = round((verdict.time or 0) * FPS)
    row = face_row(blob, [[]] * index + [verdict.faces], verdict.size, kind=KIND, media_id=media_id,
                   product_id=product_id)
    row["model"] = f"{MODEL}; {SCAN}" + (f"; stream v:{verdict.stream}" if verdict.stream is not None else "")
    return row


def from_row(row: dict) -> VideoVerdict | None:
    """The verdict a ``faces`` row keeps; None when it is not a video row of this scan (look again)."""
    from ..faces.detect import MODEL, THRESHOLD

    model = row.get("model") or ""
    if row.get("kind") != KIND or not model.startswith(f"{MODEL}; {SCAN}") or row.get("threshold") != THRESHOLD:
        return None
    if not row.get("n_faces"):
        return VideoVerdict(CLEAR, "no face (checked before)")
    stream = int(model.rsplit("v:", 1)[1]) if "; stream v:" in model else None
    at = (row.get("frame") or [0])[0] / FPS
    return VideoVerdict(FACES, f"faces in stream v:{stream} at {at:.2f} s (checked before)", stream=stream, time=at)


# the member videos an export may copy (its samples' ``video``), one row per blob
_MEMBER_VIDEOS_SQL = """
WITH m AS (SELECT DISTINCT product_id FROM ({members}))
SELECT blob, min(media_id) AS media_id, min(product_id) AS product_id
FROM media JOIN m USING (product_id)
WHERE kind = 'video' AND status = 'ok' AND blob IS NOT NULL
GROUP BY blob ORDER BY blob
"""
BATCH = 200  # verdict rows per write


def check_videos(store, members_sql: str, *, workers: int = 0, on_scan=None) -> dict[str, str | None]:
    """``{blob: why withheld, or None}`` for every video of the products ``members_sql`` names: the kept
    verdicts (``faces`` rows of kind ``video``), and a scan (:func:`scan`, in a process pool of ``workers``,
    0 = one per core) of the others, whose verdicts are kept. ``on_scan`` is called with each blob scanned."""
    con = store.connect()
    try:
        todo = con.execute(_MEMBER_VIDEOS_SQL.format(members=members_sql)).fetchall()
    finally:
        con.close()
    out: dict[str, str | None] = {}
    if not todo:
        return out
    kept = {}
    if store.parts("faces"):
        for row in store.read("faces", where=f"kind = '{KIND}'",
                              columns=["blob", "kind", "model", "threshold", "n_faces", "frame"]).to_pylist():
            if (verdict := from_row(row)) is not None:
                kept[row["blob"]] = verdict
    scans = []
    for blob, media_id, pid in todo:
        if blob in kept:
            out[blob] = kept[blob].withheld()
        else:
            scans.append((blob, media_id, pid))
    pool = None
    n = min(workers or os.cpu_count() or 1, len(scans))
    try:
        if n > 1:
            from ..process_pool import ProcessPool

            pool = ProcessPool(n)
        for start in range(0, len(scans), BATCH):
            chunk = scans[start:start + BATCH]
            rows = []
            for (blob, media_id, pid), verdict in zip(chunk, _scan_chunk(store, [b for b, _m, _p in chunk], pool)):
                if on_scan is not None:
                    on_scan(blob)
                out[blob] = verdict.withheld()
                if (row := verdict_row(blob, verdict, media_id=media_id, product_id=pid)) is not None:
                    rows.append(row)
            if rows:
                store.write("faces", rows)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def _scan_chunk(store, blobs: list[str], pool) -> list[VideoVerdict]:
    """The verdicts of ``blobs``, in order (inline without a ``pool``); a blob whose file cannot be found
    is not checked."""
    from ..storage.blobs import BlobPathError, resolve_blob

    with store.local_files(blobs) as root:  # a store on object storage: local copies of this chunk
        paths = []
        for b in blobs:
            try:
                path = resolve_blob(Path(root), b)
            except BlobPathError:
                path = None
            paths.append(str(path) if path is not None and path.is_file() else None)
        run = map if pool is None else pool.map
        return list(run(_scan_path, paths))


def _scan_path(path: str | None) -> VideoVerdict:
    if path is None:
        return VideoVerdict(NOT_CHECKED, "undecodable: its blob cannot be read")
    if _pooled():
        import cv2

        cv2.setNumThreads(1)  # one picture at a time per process: the pool's processes share the cores
    return scan(Path(path))


def _pooled() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None

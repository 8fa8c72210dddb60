"""The extract stage: pick what is not extracted yet (``selection.py``), run the jobs in a process pool,
write rows.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..config import Settings, as_dict
from ..errors import UserError
from ..stages import StageRun, opened
from ..storage import StageStats, Store
from .derived import KINDS, JobResult
from .jobs import run_audio, run_image, run_text, run_video
from .mirror import Mirror
from .pool import WorkerPool
from .selection import item_count, item_rows, plan_phases
from .worker import Context

TEXT_BATCH = 256  # titles per text job
FLUSH_ROWS = 200  # rows buffered before a table write
FLUSH_SECONDS = 2.0  # a finished item's rows are written at most this long after it ended
OUT_STATUSES = {"ok", "absent", "empty"}


class ExtractError(UserError, ValueError):
    """Bad extract arguments or settings, found before any work starts."""


@dataclass
class ExtractStats(StageStats):
    """StageStats plus a count per (kind, status) for the end-of-run table."""

    by_kind: Counter = field(default_factory=Counter)
    pool_restarts: int = 0  # worker pools replaced after a worker process died


def parse_kinds(kinds: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"video,audio"`` -> ("video", "audio"); unknown kinds are an ExtractError."""
    if kinds is None:
        return KINDS
    items = [k.strip().lower() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip()]
    unknown = [k for k in items if k not in KINDS]
    if unknown or not items:
        raise ExtractError(f"unknown extract kind(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in items)


def check_settings(settings: Settings, kinds: tuple[str, ...]) -> None:
    """Reject bad extract settings (the fields config.validate does not know) before any work."""
    import re
    import shutil

    ex = settings.extract
    if not 0 < ex.image_tier_medium < ex.image_tier_high:
        raise ExtractError(f"extract.image_tier_medium ({ex.image_tier_medium}) must be > 0 and below "
                           f"extract.image_tier_high ({ex.image_tier_high})")
    if not re.fullmatch(r"[1-9][0-9]{1,3}k", ex.mp3_bitrate):
        raise ExtractError(f"extract.mp3_bitrate must look like '128k', got {ex.mp3_bitrate!r}")
    if not [r for r in ex.image_roles.split(",") if r.strip()]:
        raise ExtractError("extract.image_roles must name at least one media role (e.g. 'main')")
    words = settings.text.jieba_user_dict
    if words and not os.path.isfile(words):
        raise ExtractError(f"text.jieba_user_dict: file not found: {words}")
    if ex.max_item_bytes < 1_000_000:
        raise ExtractError(f"extract.max_item_bytes must be at least 1,000,000 bytes, got {ex.max_item_bytes:,}")
    if ex.max_video_pixels < 256:
        raise ExtractError(f"extract.max_video_pixels must be at least 256 (16x16), got {ex.max_video_pixels:,}")
    if ex.frame_max_side and ex.frame_max_side < 16:
        raise ExtractError(f"extract.frame_max_side must be 0 or >= 16, got {ex.frame_max_side}")
    if ex.detect_faces and {"video", "image"} & set(kinds):
        from ..faces.detect import model_path

        model_path()  # a missing model: one line naming the command that installs it, before any work
    if {"video", "audio"} & set(kinds) and not shutil.which("ffprobe"):
        raise ExtractError("ffprobe not found on PATH: video and audio extraction need it (apt-get install ffmpeg)")


def check_run(settings: Settings, kinds: str | Iterable[str] | None, limit: int | None) -> tuple[str, ...]:
    """The kinds asked (:func:`parse_kinds`), after refusing a negative ``limit`` and what
    :func:`check_settings` refuses: the stage's check (extract/stage.py), before any work."""
    wanted = parse_kinds(kinds)
    if limit is not None and limit < 0:
        raise ExtractError(f"--limit must be >= 0, got {limit}")
    check_settings(settings, wanted)
    return wanted


class _Sink:
    """Buffers result rows and writes them in small batches (one Parquet part per flush).

    A batch is written when it holds FLUSH_ROWS rows, or FLUSH_SECONDS after its first row, by a
    timer thread: a finished item's rows wait at most a few seconds whatever the next item costs
    (a long video, a stuck ffmpeg), so a killed run loses at most that much work. Flushes hold one
    lock, so batches are written one at a time, in order.
    """

    def __init__(self, store: Store, seconds: float = FLUSH_SECONDS, rows: int = FLUSH_ROWS):
        import threading

        self.store = store
        self.seconds = seconds
        self.rows = rows
        self.media: dict[str, dict] = {}
        self.captions: dict[str, dict] = {}
        self.faces: dict[str, dict] = {}
        self.oldest: float | None = None  # when the first row of the current batch came
        self.lock = threading.RLock()
        self.error: BaseException | None = None  # a write the timer thread could not make
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="extract-flush", daemon=True)
        self._timer.start()

    def add(self, result: JobResult) -> None:
        self._raise()
        with self.lock:
            for row in result.media:
                self.media[row["media_id"]] = row
            for row in result.captions:
                self.captions[row["product_id"]] = row
            for row in result.faces:
                self.faces[row["blob"]] = row
            if self.oldest is None and (self.media or self.captions):
                self.oldest = time.monotonic()
            full = len(self.media) + len(self.captions) >= self.rows
        if full:
            self.flush()

    def flush(self) -> None:
        # the media rows last: an item whose media row is ok is done (a re-run skips it), so the rows
        # that depend on it (its faces) must be stored first; a run killed between the writes leaves
        # faces rows its re-run writes again (the same rows), never a done item without them
        with self.lock:
            if self.faces:
                self.store.write("faces", list(self.faces.values()))
                self.faces.clear()
            if self.captions:
                self.store.write("captions", list(self.captions.values()))
                self.captions.clear()
            if self.media:
                self.store.write("media", list(self.media.values()))
                self.media.clear()
            self.oldest = None

    def close(self) -> None:
        """Stop the timer and write what is left."""
        self._stop.set()
        self._timer.join()
        self.flush()
        self._raise()

    def _tick(self) -> None:
        while not self._stop.wait(min(0.5, self.seconds / 4)):
            oldest = self.oldest
            if oldest is not None and time.monotonic() - oldest >= self.seconds:
                try:
                    self.flush()
                except BaseException as exc:  # noqa: BLE001  handed to the main thread at its next add()
                    self.error = exc
                    return

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error


@contextmanager
def _bars(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..bars import bar
    from ..console import console

    progress = bar(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not enabled)
    with progress:
        yield progress


def sweep_temp(store: Store, older_than: float = 3600.0) -> int:
    """Remove temp files and folders a killed run left under derived/ (frames, mfcc, images).

    Only entries older than ``older_than`` seconds go, so a run beside this one keeps its own.
    """
    import shutil

    cutoff = time.time() - older_than
    removed = 0
    for kind in ("frames", "mfcc", "images"):
        folder = store.local_root() / "derived" / kind  # a folder store (object storage: the mirror's scratch)
        for entry in [*folder.glob("*/.tmp-*"), *folder.glob("*/.old-*")]:
            try:
                if entry.lstat().st_mtime < cutoff:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _video_payload(row: dict) -> dict:
    extra = {k: row.pop(k) for k in ("_frames_done", "_frames_status", "_need_frames", "_need_audio")}
    done = extra["_frames_done"] if extra["_frames_status"] == "ok" else None
    return {"row": row, "frames": bool(extra["_need_frames"]), "audio": bool(extra["_need_audio"]),
            "frame_count": None if extra["_need_frames"] else done}


def run(store: Store, settings: Settings, *, kinds: str | Iterable[str] | None = None, limit: int | None = None,
        retry_failed: bool = False, progress: bool = True, shard: tuple[int, int] | None = None,
        run: StageRun | None = None) -> ExtractStats:
    """Extract frames, audio + MFCC, normalised images and captions for everything not done yet.

    Args:
        store: the store to read inputs from and write rows and derived files into.
        settings: effective settings (``settings.extract`` is used).
        kinds: any of video, audio, image, text (default: all).
        limit: at most this many items per kind.
        retry_failed: also redo items whose derived rows have status ``failed``.
        progress: show rich progress bars (one per kind).
        shard: ``(i, n)``: only the items with ``hash(media_id)`` (text: ``hash(product_id)``)
            ``% n == i`` (the flows' task runners fan the n shards out to workers; docs/flows.md).
        run: the run the contract opened (``stages.call``); None: opened here (``stages.opened``:
            one extract per store, the shards of one run together; it sweeps dead runs' temp files).

    Returns:
        ExtractStats, also recorded in the ``runs`` table.
    """
    wanted = check_run(settings, kinds, limit)
    if run is not None:
        return _extract(run, store, settings, wanted, limit, retry_failed, progress, shard)
    with opened("extract", store, settings, shard=shard) as run:
        return _extract(run, store, settings, wanted, limit, retry_failed, progress, shard)


def _extract(srun: StageRun, store: Store, settings: Settings, wanted: tuple[str, ...], limit: int | None,
             retry_failed: bool, progress: bool, shard: tuple[int, int] | None) -> ExtractStats:
    mirror = Mirror(store)  # on object storage: the jobs' local files (mirror.py)
    if not mirror.remote:
        sweep_temp(store)
    ex = settings.extract
    stats = srun.stats
    workers = ex.workers or os.cpu_count() or 1
    ctx = Context(mirror.root, ex, settings.text, settings.faces)
    sink = _Sink(store)
    con = store.connect(cursor=True)  # a cursor of the process's read database (TEMP views)
    pool = None

    def take(result: JobResult) -> None:
        sink.add(result)
        stats.bytes += result.bytes
        stats.n_in += len(result.outcomes)  # one per item and kind: a video asked for frames and audio counts 2
        for o in result.outcomes:
            stats.by_kind[(o.kind, o.status)] += 1
            if o.status in OUT_STATUSES:
                stats.n_out += 1
            else:
                stats.fail(f"{o.kind} {o.status}: {o.reason}" if o.reason else f"{o.kind} {o.status}")

    try:
        phases = plan_phases(con, wanted, ex, retry_failed, limit, shard)
        kinds = {kind for kind, _, _ in phases}
        # frames decoded in-process (video_decode fast, fastest: libav in the worker) never run in this
        # process, even with one worker: a crash on a hostile video fails that item, not the run
        pool = WorkerPool(workers, ctx, isolate="video" in kinds and ex.video_decode != "exact")
        with _bars(progress) as bars:
            tasks = _bar_tasks(bars, con, phases, wanted, limit)
            for kind, sql, _ in phases:
                items, fn = _jobs(kind, item_rows(con, sql, limit))
                for item, result in pool.imap(kind, fn, (mirror.stage_in(kind, it) for it in items)):
                    mirror.publish(kind, item, result)
                    take(result)
                    for o in result.outcomes:
                        bars.advance(tasks[o.kind])
        sink.close()
    except BaseException as exc:
        try:  # rows of finished jobs are good: keep them, so a re-run resumes after them
            sink.close()
        finally:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            srun.record(as_dict(settings), status)
        raise
    finally:
        con.close()
        if pool is not None:
            stats.pool_restarts = pool.restarts
            pool.close()
        mirror.close()
    srun.record(as_dict(settings), "ok")
    return stats


def _bar_tasks(bars, con, phases: list, wanted: tuple[str, ...], limit: int | None) -> dict:
    """One progress bar per kind of outcome: kind -> its task."""
    tasks = {}
    for kind, sql, counts in phases:
        if kind == "video":
            if "video" in wanted:
                tasks["video"] = bars.add_task("video", total=counts[0])
            if "audio" in wanted:  # the videos' soundtracks and the audio inputs: one bar
                tasks["audio"] = bars.add_task("audio", total=counts[1] + sum(
                    c[1] for k, _, c in phases if k == "audio"))
        elif kind != "audio":
            tasks[kind] = bars.add_task("images" if kind == "image" else "captions",
                                        total=item_count(con, sql, limit))
    return tasks


def _jobs(kind: str, rows) -> tuple:
    """A phase's job payloads and the worker function that runs one."""
    if kind == "video":
        return (_video_payload(r) for r in rows), run_video
    if kind == "audio":
        return rows, run_audio
    if kind == "image":
        return rows, run_image
    return _batches(rows, TEXT_BATCH), run_text

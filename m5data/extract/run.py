"""The extract stage: pick what is not extracted yet, run the jobs in a process pool, write rows.

Work selection (idempotent: a re-run picks only what is missing):

- video (frames): media rows ``kind = 'video'``, ``status = 'ok'`` without a ``frames`` row, or whose
  frames row was made from another blob (the video was downloaded again);
- audio (mp3 + MFCC): the same videos without an ``mfcc`` row (``absent`` counts as done), and
  audio inputs (``kind = 'audio'`` rows that are not extract's own mp3) without one;
- image: ``kind = 'image'`` rows of the roles in ``extract.image_roles`` without an ``image_norm`` row;
- text: products without a ``captions`` row, or crawled again after their caption was made.

``retry_failed`` also re-selects derived rows with status ``failed`` (timeouts, worker crashes).
Inputs found broken are marked on their own row (``corrupt`` / ``too_large``) and so leave the
``status = 'ok'`` selection for good.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..config import Settings, as_dict
from ..stages import StageRun
from ..storage import StageStats, Store
from ..storage.queries import shard_sql
from .derived import KINDS, JobResult
from .jobs import run_audio, run_image, run_text, run_video
from .mirror import Mirror
from .pool import WorkerPool
from .worker import Context

TEXT_BATCH = 256  # titles per text job
FLUSH_ROWS = 200  # rows buffered before a table write
FLUSH_SECONDS = 2.0  # a finished item's rows are written at most this long after it ended
OUT_STATUSES = {"ok", "absent", "empty"}


class ExtractError(ValueError):
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
    if ex.jieba_user_dict and not os.path.isfile(ex.jieba_user_dict):
        raise ExtractError(f"extract.jieba_user_dict: file not found: {ex.jieba_user_dict}")
    if ex.max_item_bytes < 1_000_000:
        raise ExtractError(f"extract.max_item_bytes must be at least 1,000,000 bytes, got {ex.max_item_bytes:,}")
    if ex.max_video_pixels < 256:
        raise ExtractError(f"extract.max_video_pixels must be at least 256 (16x16), got {ex.max_video_pixels:,}")
    if ex.frame_max_side and ex.frame_max_side < 16:
        raise ExtractError(f"extract.frame_max_side must be 0 or >= 16, got {ex.frame_max_side}")
    if {"video", "audio"} & set(kinds) and not shutil.which("ffprobe"):
        raise ExtractError("ffprobe not found on PATH: video and audio extraction need it (apt-get install ffmpeg)")


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.strip().replace("'", "''") + "'" for v in values if v.strip())


def video_sql(frames: bool, audio: bool, retry: bool) -> str:
    def need(alias: str) -> str:
        retry_sql = f" OR {alias}.status = 'failed'" if retry else ""
        return (f"({alias}.media_id IS NULL OR json_extract_string({alias}.meta, '$.source_blob') "
                f"IS DISTINCT FROM m.blob{retry_sql})")

    return f"""
        SELECT * FROM (
          SELECT m.*, f.frame_count AS _frames_done, f.status AS _frames_status,
                 {need('f') if frames else 'false'} AS _need_frames,
                 {need('a') if audio else 'false'} AS _need_audio
          FROM media m
          LEFT JOIN media f ON f.source_media_id = m.media_id AND f.kind = 'frames'
          LEFT JOIN media a ON a.source_media_id = m.media_id AND a.kind = 'mfcc'
          WHERE m.kind = 'video' AND m.status = 'ok' AND m.blob IS NOT NULL
        ) WHERE _need_frames OR _need_audio ORDER BY media_id"""


def audio_sql(retry: bool) -> str:
    """Audio inputs (kind audio, not extract's own mp3 rows) without an MFCC made from their blob."""
    retry_sql = " OR a.status = 'failed'" if retry else ""
    return f"""
        SELECT m.* FROM media m
        LEFT JOIN media a ON a.source_media_id = m.media_id AND a.kind = 'mfcc'
        WHERE m.kind = 'audio' AND m.source_media_id IS NULL AND m.status = 'ok' AND m.blob IS NOT NULL
          AND (a.media_id IS NULL OR json_extract_string(a.meta, '$.source_blob') IS DISTINCT FROM m.blob{retry_sql})
        ORDER BY m.media_id"""


def image_sql(roles: str, retry: bool) -> str:
    retry_sql = " OR d.status = 'failed'" if retry else ""
    return f"""
        SELECT m.* FROM media m
        LEFT JOIN media d ON d.source_media_id = m.media_id AND d.kind = 'image_norm'
        WHERE m.kind = 'image' AND m.status = 'ok' AND m.blob IS NOT NULL
          AND coalesce(m.role, 'main') IN ({_sql_list(roles.split(','))})
          AND (d.media_id IS NULL OR json_extract_string(d.meta, '$.source_blob') IS DISTINCT FROM m.blob{retry_sql})
        ORDER BY m.media_id"""


TEXT_SQL = """
    SELECT p.product_id, p.title FROM products p LEFT JOIN captions c ON c.product_id = p.product_id
    WHERE c.product_id IS NULL OR c.updated_at < p.crawled_at ORDER BY p.product_id"""


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
            if self.oldest is None and (self.media or self.captions):
                self.oldest = time.monotonic()
            full = len(self.media) + len(self.captions) >= self.rows
        if full:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            if self.media:
                self.store.write("media", list(self.media.values()))
                self.media.clear()
            if self.captions:
                self.store.write("captions", list(self.captions.values()))
                self.captions.clear()
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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..console import console

    progress = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
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
        folder = store.root / "derived" / kind
        for entry in [*folder.glob("*/.tmp-*"), *folder.glob("*/.old-*")]:
            try:
                if entry.lstat().st_mtime < cutoff:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def _rows(con, sql: str, limit: int | None) -> Iterator[dict]:
    if limit is not None:
        sql = f"SELECT * FROM ({sql}) LIMIT {int(limit)}"
    for batch in con.sql(sql).to_arrow_reader(256):
        yield from batch.to_pylist()


def _count(con, sql: str, limit: int | None) -> int:
    n = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    return min(n, limit) if limit is not None else n


def _batches(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sharded(sql: str, key: str, shard: tuple[int, int] | None) -> str:
    """``sql`` restricted to shard ``(i, n)`` of its rows by ``hash(key)``; unchanged when ``shard`` is None."""
    if shard is None:
        return sql
    return f"SELECT * FROM ({sql}) WHERE {shard_sql(key, shard)} ORDER BY {key}"


def _video_payload(row: dict) -> dict:
    extra = {k: row.pop(k) for k in ("_frames_done", "_frames_status", "_need_frames", "_need_audio")}
    done = extra["_frames_done"] if extra["_frames_status"] == "ok" else None
    return {"row": row, "frames": bool(extra["_need_frames"]), "audio": bool(extra["_need_audio"]),
            "frame_count": None if extra["_need_frames"] else done}


def run(store: Store, settings: Settings, *, kinds: str | Iterable[str] | None = None, limit: int | None = None,
        retry_failed: bool = False, progress: bool = True, shard: tuple[int, int] | None = None) -> ExtractStats:
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

    Returns:
        ExtractStats, also recorded in the ``runs`` table.
    """
    wanted = parse_kinds(kinds)
    if limit is not None and limit < 0:
        raise ExtractError(f"--limit must be >= 0, got {limit}")
    check_settings(settings, wanted)
    # one extract per store (the shards of one run together); sweeps dead runs' temp files
    with StageRun(store, "extract", shard=shard, stats=ExtractStats("extract")) as srun:
        mirror = Mirror(store)  # on object storage: the jobs' local files (mirror.py)
        if not mirror.remote:
            sweep_temp(store)
        ex = settings.extract
        stats = srun.stats
        workers = ex.workers or os.cpu_count() or 1
        ctx = Context(mirror.root, ex)
        sink = _Sink(store)
        con = store.connect()
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
            phases = []
            if {"video", "audio"} & set(wanted):
                vsql = _sharded(video_sql("video" in wanted, "audio" in wanted, retry_failed), "media_id", shard)
                limited = vsql if limit is None else f"SELECT * FROM ({vsql}) LIMIT {int(limit)}"
                counts = con.execute(f"SELECT count(*) FILTER (WHERE _need_frames), count(*) FILTER (WHERE _need_audio) "
                                     f"FROM ({limited})").fetchall()[0]
                phases.append(("video", vsql, counts))
            if "audio" in wanted:
                asql = audio_sql(retry_failed)
                phases.append(("audio", asql, (0, _count(con, asql, limit))))
            if "image" in wanted:
                phases.append(("image", _sharded(image_sql(ex.image_roles, retry_failed), "media_id", shard), None))
            if "text" in wanted:
                phases.append(("text", _sharded(TEXT_SQL, "product_id", shard), None))
            # a process that never runs a sound job never starts the fork server (see pool.pool_context)
            pool = WorkerPool(workers, ctx, sound=any(kind in ("video", "audio") for kind, _, _ in phases))
            with _bars(progress) as bars:
                tasks = {}
                for kind, sql, counts in phases:
                    if kind == "video":
                        if "video" in wanted:
                            tasks["video"] = bars.add_task("video", total=counts[0])
                        if "audio" in wanted:  # the videos' soundtracks and the audio inputs: one bar
                            tasks["audio"] = bars.add_task("audio", total=counts[1] + sum(
                                c[1] for k, _, c in phases if k == "audio"))
                    elif kind == "audio":
                        pass
                    else:
                        tasks[kind] = bars.add_task("images" if kind == "image" else "captions",
                                                    total=_count(con, sql, limit))
                for kind, sql, _ in phases:
                    rows = _rows(con, sql, limit)
                    if kind == "video":
                        items, fn = (_video_payload(r) for r in rows), run_video
                    elif kind == "audio":
                        items, fn = rows, run_audio
                    elif kind == "image":
                        items, fn = rows, run_image
                    else:
                        items, fn = _batches(rows, TEXT_BATCH), run_text
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

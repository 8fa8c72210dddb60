"""The download stage: pending media rows -> blobs + one status row per URL.

``run(store, settings)`` selects ``media`` rows of kind image, video or audio (not derived ones)
with status ``pending`` (``retry_failed=True``: status ``failed`` only), fetches them
concurrently (:mod:`.fetch`) and writes each row back with its final status. ``source=`` first registers the URLs of a text,
CSV or Parquet file as pending media rows (:mod:`.sources`) and then downloads only those.

Scheduling: a per-host slot is taken before a global slot, and the request deadline starts only
once both are held, so a queue for one busy host never times out waiting and never starves other
hosts. Every URL ends within ``download.url_deadline`` of taking its slots, so a run ends within
:func:`run_bound`. Status rows are buffered and written in atomic Parquet parts every
:data:`FLUSH_ROWS` rows, and by a timer every :data:`FLUSH_SECONDS` seconds whatever the URLs in
flight do (a hung URL never holds a finished one's status back), each part after one sync of the
blob area that makes its blobs durable: a run killed at any point loses at most the statuses of that buffer, and those URLs are
still ``pending`` and fetched again by the next run (their blobs, if already committed, are
content-addressed and so stored once).

The store's own errors (an endpoint that does not answer, a full disk) are never a URL's status:
blobs and status rows are written again while the store is out, for up to
``download.store_retry_seconds``; past that the run ends with one :class:`~m5data.storage.errors.StoreUnavailable` line
naming the store, and the URLs whose status was not written stay ``pending`` for the next run.

A watchdog ends the run when nothing progressed (no byte received, no URL finished, no retry wait
begun or ended) for ``download.stall_timeout`` seconds: the URLs in flight are written as ``failed``
with reason ``stalled``, the rest stay ``pending``, and the run is recorded as ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from yarl import URL

from .. import config as cfg
from ..errors import UserError
from ..optout import OPTED_OUT_PRODUCTS_SQL
from ..stages import StageRun
from ..storage import StageStats
from ..storage.errors import StoreError, StoreUnavailable
from ..storage.queries import shard_sql
from ..storage.retry import StoreRetry
from .fetch import Fetcher
from .guard import decoding_pool
from .optouts import OPTED_OUT, write_statuses
from .outcome import Outcome, status_row
from .resize import ImagePool
from .sources import register_source

STAGE = "download"
KINDS = ("image", "video", "audio")
FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0
READ_BATCH = 1000


class DownloadError(UserError):
    """A download run that cannot start (bad option, unreadable source); the message says why."""


class ProgressSink(Protocol):
    """What the run reports to a progress display (the CLI's rich bar)."""

    def start(self, total: int) -> None: ...

    def update(self, done: int, ok: int, failed: int, nbytes: int) -> None: ...


@dataclass
class Job:
    row: dict[str, Any]  # the full media row, written back with its new status
    referer: str | None = None  # the page of the row's product (products.url): sent as Referer

    @property
    def url(self) -> str:
        return self.row["url"] or ""

    @property
    def host(self) -> str:
        try:
            u = URL(self.url)
            return f"{u.host}:{u.port}"
        except (ValueError, TypeError):
            return ""


@dataclass
class DownloadStats(StageStats):
    """StageStats plus what the CLI prints: statuses, URLs left pending, stuck URLs."""

    statuses: Counter = field(default_factory=Counter)
    selected: int = 0
    stalled: list[str] = field(default_factory=list)
    pool_restarts: int = 0  # re-encoding pools replaced after a worker process died
    store_waits: int = 0  # store calls that failed and were tried again (the store was out)
    robots_refused: int = 0  # files not requested: robots.txt disallows them (opted_out, reason robots_txt)

    @property
    def failure_rate(self) -> float:
        return self.n_failed / self.n_in if self.n_in else 0.0

    @property
    def pending_left(self) -> int:
        return self.selected - self.n_in


def check_options(opts) -> None:
    """Reject download settings config.py does not check itself (this stage's own fields)."""
    if opts.workers < 0:
        raise DownloadError(f"download.workers must be >= 0, got {opts.workers}")
    if opts.pool not in ("mixed", "process", "thread"):
        raise DownloadError(f"download.pool must be mixed, process or thread, got {opts.pool!r}")
    if opts.stall_timeout <= 0:
        raise DownloadError(f"download.stall_timeout must be > 0, got {opts.stall_timeout}")
    for key in ("url_deadline", "rate_window"):
        value = getattr(opts, key)
        if not (math.isfinite(value) and value > 0):
            raise DownloadError(f"download.{key} must be a finite number > 0, got {value}")
    for key, what in (("min_rate", "bytes/s; 0 = off"), ("store_retry_seconds", "0 = no waiting for the store")):
        value = getattr(opts, key)
        if not (math.isfinite(value) and value >= 0):
            raise DownloadError(f"download.{key} must be a finite number >= 0 ({what}), got {value}")


def run_bound(opts, n_urls: int) -> float:
    """Seconds within which fetching ``n_urls`` URLs ends, whatever the servers do.

    ``ceil(n_urls / min(per_host, concurrency)) * url_deadline``: while URLs are left, at least
    ``min(per_host, concurrency)`` of them are in flight (a host's queue holds its own slots only),
    and each ends within ``url_deadline`` of taking its slots; so every ``url_deadline`` seconds at
    least that many finish. Start-up and the last status write come on top (seconds).
    """
    lanes = max(1, min(opts.per_host, opts.concurrency))
    return math.ceil(n_urls / lanes) * opts.url_deadline


def run(store, settings: cfg.Settings, *, source: str | Path | None = None, retry_failed: bool = False,
        kind: str = "image", url_column: str = "url", product_column: str | None = None,
        progress: ProgressSink | None = None, shard: tuple[int, int] | None = None, refresh: bool = False) -> DownloadStats:
    """Download the selected media rows; returns the run's stats (also recorded in ``runs``).

    Args:
        store: the store.
        settings: effective settings (the ``download`` section is used, plus ``crawl.user_agent``).
        source: optional URL list (.txt), CSV/TSV or Parquet file to register and download.
        retry_failed: fetch rows whose status is ``failed`` instead of ``pending``.
        kind: media kind for source rows without a ``kind`` column (image, video or audio).
        url_column: the source column holding URLs.
        product_column: the source column holding product ids (default: ``product_id`` if present,
            else an id derived from the URL).
        progress: optional progress display.
        shard: ``(i, n)``: only the selected rows with ``hash(media_id) % n == i`` (the flows'
            task runners fan the n shards out to workers; see docs/flows.md).
        refresh: instead, re-check what each stored file says of itself now (:mod:`.recheck`).
    """
    opts = settings.download
    check_options(opts)
    if refresh:
        from .recheck import recheck
        return recheck(store, settings, DownloadStats(STAGE), shard)
    # one download per store (the shards of one run together); sweeps dead runs' temp files
    with StageRun(store, STAGE, shard=shard, stats=DownloadStats(STAGE)) as srun:
        stats = srun.stats
        wanted = None
        if source is not None:
            try:
                wanted = register_source(store, Path(source), kind=kind, url_column=url_column,
                                         product_column=product_column)
            except (OSError, ValueError) as exc:
                raise DownloadError(str(exc)) from None
        status = "failed" if retry_failed else "pending"
        con = store.connect(cursor=True)  # a cursor of the process's read database: its views and "wanted" are its own
        try:
            # source_media_id: a derived row (extract's mp3 is kind audio too) is never fetched
            where = f"m.status = '{status}' AND m.kind IN {KINDS} AND m.source_media_id IS NULL"
            where += f" AND m.product_id NOT IN ({OPTED_OUT_PRODUCTS_SQL})"  # docs/compliance.md, "Opt-outs"
            if shard is not None:
                where += f" AND {shard_sql('m.media_id', shard)}"
            sql = "FROM media m"
            if wanted is not None:
                con.register("wanted", wanted)
                sql += " JOIN wanted w USING (media_id)"
            stats.selected = con.sql(f"SELECT count(*) AS n {sql} WHERE {where}").to_arrow_table()["n"][0].as_py()
            page = ", NULL AS __page_url"
            if opts.send_referer:  # the product's page, sent as Referer (one row per product: no media row doubles)
                sql += (" LEFT JOIN (SELECT product_id, any_value(url) AS __page_url FROM products GROUP BY product_id)"
                        " p ON p.product_id = m.product_id")
                page = ", p.__page_url"
            reader = con.sql(f"SELECT m.*{page} {sql} WHERE {where} ORDER BY m.media_id").to_arrow_reader(READ_BATCH)
            jobs = (Job(row, referer=row.pop("__page_url")) for batch in reader for row in batch.to_pylist())
            if progress is not None:
                progress.start(stats.selected)
            retry = StoreRetry(str(store.root), opts.store_retry_seconds, "download.store_retry_seconds")
            try:
                with decoding_pool(store, opts.pool if opts.image_max_side > 0 else "none", shard, retry.call) as (pool, why):
                    if why:
                        stats.details["pool"] = {"kind": pool, "why": why}
                    asyncio.run(_Download(store, settings, stats, progress, retry, pool).run(jobs))
            except KeyboardInterrupt:
                stats.finish("interrupted")
            except StoreUnavailable as exc:
                raise StoreUnavailable(f"{exc}; the URLs whose status was not written stay pending: "
                                       "run the download again once the store is back") from exc
        finally:
            con.close()
        if stats.ended is None:
            stalled = bool(stats.stalled)
            over = stats.failure_rate > opts.max_failure_rate
            stats.finish("interrupted" if stalled else "failed" if over else "ok")
        stats.store_waits = retry.waits
        if retry.waits:
            stats.details["store_waits"] = retry.waits
        stats.details["optouts"] = {"media": stats.statuses[OPTED_OUT],
                                    **({"robots.txt": stats.robots_refused} if stats.robots_refused else {})}
        job = {"optouts": stats.details["optouts"], **({"pool": stats.details["pool"]} if "pool" in stats.details else {})}
        retry.call(srun.record, {**cfg.as_dict(settings), "job": job})
        return stats


def _first(exc: BaseException) -> BaseException:
    """What ended a task group: its first StoreError (the store's one line, not a group), else ``exc``."""
    if isinstance(exc, BaseExceptionGroup):
        store, _ = exc.split(StoreError)
        while isinstance(store, BaseExceptionGroup):
            store = store.exceptions[0]
        if store is not None:
            return store
    return exc


class _HostSlots:
    """One semaphore per host, dropped when unused so a million hosts do not pile up."""

    def __init__(self, per_host: int):
        self.per_host = per_host
        self._slots: dict[str, list] = {}  # host -> [semaphore, users]

    @contextlib.asynccontextmanager
    async def hold(self, host: str):
        entry = self._slots.setdefault(host, [asyncio.Semaphore(self.per_host), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._slots[host]


class _Download:
    def __init__(self, store, settings: cfg.Settings, stats: DownloadStats, progress: ProgressSink | None,
                 retry: StoreRetry, pool: str):
        self.store = store
        self.pool = pool  # download.pool, or "process" after a run that did not end (guard.py)
        self.retry = retry
        retry.on_wait = self._touch  # a wait for the store is not a stall of the URLs in flight
        self.settings = settings
        self.opts = settings.download
        self.stats = stats
        self.progress = progress
        self.buffer: list[dict] = []
        self.last_flush = time.monotonic()
        self.last_progress = time.monotonic()
        self.inflight: dict[str, Job] = {}
        self.flush_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ progress bookkeeping
    def _touch(self) -> None:
        self.last_progress = time.monotonic()

    def _on_bytes(self, n: int) -> None:
        self.stats.bytes += n
        self.last_progress = time.monotonic()

    def _report(self) -> None:
        if self.progress is not None:
            s = self.stats
            self.progress.update(s.n_in, s.n_out, s.n_failed, s.bytes)

    def _record(self, job: Job, outcome: Outcome) -> None:
        self.stats.n_in += 1
        self.stats.statuses[outcome.status] += 1
        if outcome.status == "ok":
            self.stats.n_out += 1
        elif outcome.status == OPTED_OUT:  # an owner's opt-out is no failure, never retried
            self.stats.robots_refused += outcome.reason == "robots_txt"
        else:
            reason = outcome.status if outcome.reason == outcome.status else f"{outcome.status}/{outcome.reason}"
            self.stats.fail(reason)
        self.buffer.append(status_row(job.row, outcome))
        self._touch()
        self._report()

    async def _flush(self, force: bool = False) -> None:
        if not self.buffer or (not force and len(self.buffer) < FLUSH_ROWS
                               and time.monotonic() - self.last_flush < FLUSH_SECONDS):
            return
        async with self.flush_lock:
            if not force and len(self.buffer) < FLUSH_ROWS and time.monotonic() - self.last_flush < FLUSH_SECONDS:
                return  # another task flushed while this one waited for the lock
            rows, self.buffer = self.buffer, []
            if rows:
                # a try once started writes its part whole even if the run is being cancelled; past
                # the store's retry window the rows are not written: their URLs stay pending
                await self.retry.acall(self._commit, rows)
            self.last_flush = time.monotonic()

    def _commit(self, rows: list[dict]) -> None:
        """Make the rows' blobs durable (written without an fsync each), then record the rows: a
        status ``ok`` is never stored before its blob."""
        if any(row["blob"] for row in rows):
            self.store.blobs.sync()
        write_statuses(self.store, rows, self.stats.run_id)  # and the optouts rows of files opted out

    # ------------------------------------------------------------------ the run
    async def run(self, jobs) -> None:
        self.flush_lock = asyncio.Lock()
        opts = self.opts
        pool = ImagePool(opts.workers, opts.image_max_side, opts.jpeg_quality, self.pool) if opts.image_max_side > 0 else None
        try:
            async with Fetcher(self.store, opts, pool, on_bytes=self._on_bytes, on_activity=self._touch,
                               user_agent=self.settings.crawl.user_agent, store_retry=self.retry) as fetcher:
                main = asyncio.create_task(self._schedule(fetcher, jobs))
                watch = asyncio.create_task(self._watchdog())
                flusher = asyncio.create_task(self._flush_timer())
                try:
                    await asyncio.wait({main, watch, flusher}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (main, watch, flusher):
                        task.cancel()
                    await asyncio.gather(main, watch, flusher, return_exceptions=True)
                if watch.done() and not watch.cancelled() and watch.exception() is None and watch.result():
                    self._record_stalled(list(self.inflight.values()))
                elif main.done() and not main.cancelled() and main.exception() is not None:
                    raise _first(main.exception())
                elif flusher.done() and not flusher.cancelled() and flusher.exception() is not None:
                    raise flusher.exception()  # the store could not be written
        except StoreError:
            self.buffer.clear()  # not written: those URLs stay pending, the next run fetches them
            raise
        finally:
            await self._flush(force=True)
            if pool is not None:
                self.stats.pool_restarts = pool.restarts
                pool.close(kill=bool(self.stats.stalled))
            self._report()

    async def _schedule(self, fetcher: Fetcher, jobs) -> None:
        hosts = _HostSlots(self.opts.per_host)
        slots = asyncio.Semaphore(self.opts.concurrency)
        window = asyncio.Semaphore(self.opts.concurrency * 4)  # tasks alive at once: bounded memory

        async def one(job: Job) -> None:
            try:
                async with hosts.hold(job.host), slots:
                    self.inflight[job.row["media_id"]] = job
                    outcome = await fetcher.fetch(job.url, job.row["kind"], job.referer)
                    # not popped on cancellation: what is left in flight after a stall is what got stuck
                    self.inflight.pop(job.row["media_id"], None)
                self._record(job, outcome)
                await self._flush()
            finally:
                window.release()

        async with asyncio.TaskGroup() as group:
            for job in jobs:
                await window.acquire()
                group.create_task(one(job))

    async def _flush_timer(self) -> None:
        """Write buffered statuses at least every FLUSH_SECONDS, even while no other URL finishes
        (one hung URL must not hold the finished ones back: a kill would lose their statuses)."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS / 4)
            await self._flush()

    async def _watchdog(self) -> bool:
        """Return True once URLs are in flight and nothing progressed for ``stall_timeout`` seconds."""
        tick = min(0.25, self.opts.stall_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            self._report()
            if self.inflight and time.monotonic() - self.last_progress > self.opts.stall_timeout:
                return True

    def _record_stalled(self, stuck: list[Job]) -> None:
        for job in stuck:
            self.stats.stalled.append(job.url)
            self._record(job, Outcome("failed", "stalled", f"stalled: no progress for {self.opts.stall_timeout:g} s; "
                                      "the watchdog ended the run", attempts=1))

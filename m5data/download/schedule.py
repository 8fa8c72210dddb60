"""The concurrent part of a download run: per-host and global slots, status flushes, the watchdog.

:class:`Download` fetches the :class:`Job` s that :func:`.run.run` selected: a per-host slot is
taken before a global slot, and the request deadline starts only once both are held. Status rows
are buffered and written every :data:`FLUSH_ROWS` rows, and by a timer every :data:`FLUSH_SECONDS`
seconds; a watchdog ends the run when nothing progressed for ``download.stall_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from yarl import URL

from .. import config as cfg
from ..storage.errors import StoreError
from ..storage.retry import StoreRetry
from .fetch import Fetcher
from .optouts import OPTED_OUT, write_statuses
from .outcome import Outcome, status_row
from .resize import ImagePool

if TYPE_CHECKING:
    from .run import DownloadStats

FLUSH_ROWS = 200
FLUSH_SECONDS = 2.0


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


class Download:
    """The fetches of one run: slots, status flushes, watchdog (:func:`.run.run` drives it)."""

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
                               user_agent=self.settings.http.user_agent, store_retry=self.retry) as fetcher:
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

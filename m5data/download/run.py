"""The download stage: pending media rows -> blobs + one status row per URL.

``run(store, settings)`` selects ``media`` rows of kind image, video or audio (not derived ones)
with status ``pending`` (``retry_failed=True``: status ``failed`` only), fetches them
concurrently (:mod:`.fetch`) and writes each row back with its final status. ``source=`` first registers the URLs of a text,
CSV or Parquet file as pending media rows (:mod:`.sources`) and then downloads only those.

Scheduling: a per-host slot is taken before a global slot, and the request deadline starts only
once both are held, so a queue for one busy host never times out waiting and never starves other
hosts. Every URL ends within ``download.url_deadline`` of taking its slots, so a run ends within
:func:`run_bound`. Status rows are buffered and written in atomic Parquet parts every
:data:`~.schedule.FLUSH_ROWS` rows, and by a timer every :data:`~.schedule.FLUSH_SECONDS` seconds whatever the URLs in
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
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import config as cfg
from ..errors import UserError
from ..optout import OPTED_OUT_PRODUCTS_SQL
from ..stages import StageRun, opened
from ..storage import StageStats
from ..storage.errors import StoreUnavailable
from ..storage.queries import shard_sql
from ..storage.retry import StoreRetry
from .guard import decoding_pool
from .optouts import OPTED_OUT
from .schedule import Download, Job, ProgressSink
from .sources import register_source

STAGE = "download"
KINDS = ("image", "video", "audio")
READ_BATCH = 1000


class DownloadError(UserError):
    """A download run that cannot start (bad option, unreadable source); the message says why."""


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
        progress: ProgressSink | None = None, shard: tuple[int, int] | None = None, refresh: bool = False,
        run: StageRun | None = None) -> DownloadStats:
    """Download the selected media rows; returns the run's stats (also recorded in ``runs``).

    Args:
        store: the store.
        settings: effective settings (the ``download`` section is used, plus the shared ``http.user_agent``).
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
        run: the run the contract opened (``stages.call``); None: opened here (``stages.opened``:
            one download per store, the shards of one run together; it sweeps dead runs' temp files).
    """
    check_options(settings.download)
    if run is not None:
        return _run(run, store, settings, source, retry_failed, kind, url_column, product_column, progress, shard,
                    refresh)
    with opened(STAGE, store, settings, shard=shard) as run:
        return _run(run, store, settings, source, retry_failed, kind, url_column, product_column, progress, shard,
                    refresh)


def _run(srun: StageRun, store, settings: cfg.Settings, source: str | Path | None, retry_failed: bool, kind: str,
         url_column: str, product_column: str | None, progress: ProgressSink | None, shard: tuple[int, int] | None,
         refresh: bool) -> DownloadStats:
    if refresh:
        from .recheck import recheck
        return recheck(srun, store, settings, shard)
    opts = settings.download
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
                asyncio.run(Download(store, settings, stats, progress, retry, pool).run(jobs))
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

"""The download stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` and its
``check(settings, options)``."""

from __future__ import annotations

import contextlib

from ..stages import DownloadFailed, RunContext, StageRun, second_run
from ..storage.queries import shard_sql
from .optouts import OPTED_OUT
from .run import DownloadStats


def check(settings, options: dict) -> None:
    """The ``[download]`` settings config.py does not check itself are usable, and a URL list
    (``options["source"]``) is a file and its ``kind`` a media kind (DownloadError, one line naming the key)."""
    from pathlib import Path

    from .run import DownloadError, check_options
    from .sources import KINDS

    check_options(settings.download)
    source, kind = options.get("source"), options.get("kind")
    if source is not None and not Path(source).is_file():
        raise DownloadError(f"URL list not found: {source}")
    if source is not None and kind and kind not in KINDS:
        raise DownloadError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def run(ctx: RunContext, run: StageRun) -> DownloadStats:
    """Download the store's pending media (or ``options["source"]``'s URLs: ``kind``, ``url_column``,
    ``product_column`` say how to read that list), in the run the contract opened (stages.call: the
    download's lock, the shard's for a shard).

    Raises :class:`DownloadFailed` when the run stalled or its failure rate passed
    ``download.max_failure_rate``, so that the flow retries it; the retry (``ctx.attempt`` 2)
    fetches only the URLs that failed, plus whatever a stall left pending (first, in the contract's
    run; the failures then in a second run of its own, under the same lock: two ``runs`` rows). With
    ``options["shard"] = [i, n]`` only shard i of n of the pending rows (docs/flows.md).
    """
    from .run import run as download

    store, settings, part = ctx.store, ctx.settings, ctx.shard
    source, retry_failed = ctx.options.get("source"), bool(ctx.options.get("retry_failed"))
    refresh = bool(ctx.options.get("refresh"))  # download --refresh: re-check the stored files instead (recheck.py)
    listed = {key: ctx.options[key] for key in ("kind", "url_column", "product_column") if ctx.options.get(key)}
    is_retry = ctx.attempt > 1
    with contextlib.ExitStack() as held:
        if is_retry and not retry_failed and not refresh:
            download(store, settings, source=source, shard=part, run=run, **listed)  # what a stalled first attempt left pending
            run = held.enter_context(second_run("download", ctx))
        with _progress(ctx.progress) as bar:
            stats = download(store, settings, source=source, retry_failed=retry_failed or is_retry, shard=part,
                             progress=bar, refresh=refresh, run=run, **listed)
    stats.details["statuses"] = dict(stats.statuses)
    # a retry re-fetched only the failures: judge it by the share of all tried media still failed
    failed = stats.status == "failed" if not is_retry else \
        store_failure_rate(store, part) > settings.download.max_failure_rate
    if stats.stalled or failed:
        raise DownloadFailed(f"download run {stats.run_id}: {stats.status}, failure rate {stats.failure_rate:.1%} "
                             f"({stats.n_failed} of {stats.n_in}); stalled URLs: {len(stats.stalled)}", stats)
    return stats


def _progress(enabled: bool):
    """The download verb's rich progress bar, or a context that gives None."""
    if not enabled:
        return contextlib.nullcontext(None)
    from ..console import console
    from .cli import RichProgress

    return RichProgress(console)


def store_failure_rate(store, shard: tuple[int, int] | None = None) -> float:
    """Share of the store's (or shard's) tried image/video rows whose status is not ok (opted-out files
    are not tried: docs/compliance.md)."""
    where = f" AND {shard_sql('media_id', shard)}" if shard else ""
    con = store.connect()
    try:
        bad, tried = con.sql("SELECT count(*) FILTER (WHERE status <> 'ok'), count(*) FROM media "
                             f"WHERE kind IN ('image', 'video') AND status NOT IN ('pending', '{OPTED_OUT}'){where}"
                             ).fetchall()[0]  # an owner's opt-out is no failure
    finally:
        con.close()
    return bad / tried if tried else 0.0

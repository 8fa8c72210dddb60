"""Prefect task (and a one-task flow) for the download stage: thin wrappers over download.run.run."""

from __future__ import annotations

from prefect import flow, task

from .retry import DownloadFailed, transient


@task(name="download", retries=1, retry_delay_seconds=30, retry_condition_fn=transient)
def download_task(store_path: str, source: str | None = None, retry_failed: bool = False,
                  overrides: dict | None = None, config_file: str | None = None,
                  shard: list[int] | None = None, progress: bool = False) -> dict:
    """Download the store's pending media (or ``source``'s URLs); returns the run's ``runs`` row.

    Raises :class:`DownloadFailed` when the run stalled or its failure rate passed the threshold,
    so that Prefect retries it; a retry fetches only the URLs that failed (``--retry-failed``),
    plus whatever a stall left pending. ``shard=[i, n]`` downloads only shard i of n of the
    pending rows (see docs/flows.md); ``progress`` shows the verb's progress bar.
    """
    from prefect.runtime import task_run

    from ..config import load
    from ..download.run import run
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    part = tuple(shard) if shard else None
    is_retry = (task_run.run_count or 1) > 1
    if is_retry and not retry_failed:
        run(store, settings, source=source, shard=part)  # what a stalled first attempt left pending
    with _progress(progress) as bar:
        stats = run(store, settings, source=source, retry_failed=retry_failed or is_retry, shard=part, progress=bar)
    row = stats.row()
    row["failures"] = dict(stats.failures)
    row["statuses"] = dict(stats.statuses)
    # a retry re-fetched only the failures: judge it by the share of all tried media still failed
    failed = stats.status == "failed" if not is_retry else \
        _store_failure_rate(store, part) > settings.download.max_failure_rate
    if stats.stalled or failed:
        raise DownloadFailed(f"download run {stats.run_id}: {stats.status}, failure rate {stats.failure_rate:.1%} "
                             f"({stats.n_failed} of {stats.n_in}); stalled URLs: {len(stats.stalled)}")
    return row


def _progress(enabled: bool):
    """The download verb's rich progress bar, or a context that gives None."""
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from ..console import console

    try:
        from ..download.cli import RichProgress
    except ImportError:  # the verb's bar moved: run without one rather than fail the download
        return contextlib.nullcontext(None)
    return RichProgress(console)


def _store_failure_rate(store, shard: tuple[int, int] | None = None) -> float:
    """Share of the store's (or shard's) tried image/video rows whose status is not ok."""
    where = f" AND hash(media_id) % {int(shard[1])} = {int(shard[0])}" if shard else ""
    con = store.connect()
    try:
        bad, tried = con.sql("SELECT count(*) FILTER (WHERE status <> 'ok'), count(*) FROM media "
                             f"WHERE kind IN ('image', 'video') AND status <> 'pending'{where}").fetchall()[0]
    finally:
        con.close()
    return bad / tried if tried else 0.0


@flow(name="m5data-download")
def download_flow(store_path: str, source: str | None = None, retry_failed: bool = False,
                  overrides: dict | None = None) -> dict:
    """Download every pending media URL of one store."""
    return download_task(store_path, source, retry_failed, overrides)

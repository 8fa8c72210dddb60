"""Prefect task (and a one-task flow) for the download stage: thin wrappers over download.run.run."""

from __future__ import annotations

from prefect import flow, task


class DownloadFailed(RuntimeError):
    """The download run stalled or failed more URLs than ``download.max_failure_rate`` allows."""


@task(name="download", retries=1, retry_delay_seconds=30)
def download_task(store_path: str, source: str | None = None, retry_failed: bool = False,
                  overrides: dict | None = None, config_file: str | None = None) -> dict:
    """Download the store's pending media (or ``source``'s URLs); returns the run's ``runs`` row.

    Raises :class:`DownloadFailed` when the run stalled or its failure rate passed the threshold,
    so that Prefect retries it; a retry fetches only the URLs that failed (``--retry-failed``),
    plus whatever a stall left pending.
    """
    from prefect.runtime import task_run

    from ..config import load
    from ..crawler.download.run import run
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings)
    is_retry = (task_run.run_count or 1) > 1
    if is_retry and not retry_failed:
        run(store, settings, source=source)  # what a stalled first attempt left pending
    stats = run(store, settings, source=source, retry_failed=retry_failed or is_retry)
    row = stats.row()
    row["statuses"] = dict(stats.statuses)
    # a retry re-fetched only the failures: judge it by the share of all tried media still failed
    failed = stats.status == "failed" if not is_retry else \
        _store_failure_rate(store) > settings.download.max_failure_rate
    if stats.stalled or failed:
        raise DownloadFailed(f"download run {stats.run_id}: {stats.status}, failure rate {stats.failure_rate:.1%} "
                             f"({stats.n_failed} of {stats.n_in}); stalled URLs: {len(stats.stalled)}")
    return row


def _store_failure_rate(store) -> float:
    """Share of the store's tried (not pending) image/video rows whose status is not ok."""
    con = store.connect()
    try:
        bad, tried = con.sql("SELECT count(*) FILTER (WHERE status <> 'ok'), count(*) FROM media "
                             "WHERE kind IN ('image', 'video') AND status <> 'pending'").fetchall()[0]
    finally:
        con.close()
    return bad / tried if tried else 0.0


@flow(name="m5data-download")
def download_flow(store_path: str, source: str | None = None, retry_failed: bool = False,
                  overrides: dict | None = None) -> dict:
    """Download every pending media URL of one store."""
    return download_task(store_path, source, retry_failed, overrides)

"""Prefect task (and a one-task flow) for the crawl stage: thin wrappers over crawler.crawl.run.

Each crawl runs Scrapy in a subprocess, so the task can run many times in one worker process
(Twisted's reactor cannot restart in-process) and from a worker thread (Scrapy installs signal
handlers only in a main thread).
"""

from __future__ import annotations

from prefect import flow, task

from .retry import transient


@task(name="crawl", retries=1, retry_delay_seconds=30, retry_condition_fn=transient)
def crawl_task(store_path: str, start_urls: list[str], site: str | None = None, refresh: bool = False,
               overrides: dict | None = None, config_file: str | None = None, progress: bool = False,
               shard: list[int] | None = None) -> dict:
    """Crawl ``start_urls`` into the store at ``store_path``; returns the run's ``runs`` row.

    Raises ``CrawlFailed`` when the crawl subprocess died, fetched nothing or could not write
    the store; Prefect retries it once unless the store could not be written (``retry.transient``);
    a retry resumes (pages already stored are skipped). ``progress`` shows the crawl's progress line.
    ``shard=[i, n]``: this is shard i of n of one run (``start_urls`` are its hosts' URLs).
    """
    from ..config import load
    from ..crawler.crawl import run
    from ..storage import Store

    settings = load(config_file, {**(overrides or {}), "store.path": store_path})
    store = Store.from_settings(settings, create=True)
    stats = run(store, settings, start_urls=start_urls, site=site, refresh=refresh, progress=progress,
                shard=tuple(shard) if shard else None)
    row = stats.row()
    row["failures"] = dict(stats.failures)
    return row


@flow(name="m5data-crawl")
def crawl_flow(store_path: str, start_urls: list[str], site: str | None = None, refresh: bool = False,
               overrides: dict | None = None) -> dict:
    """Crawl one set of start URLs into one store."""
    return crawl_task(store_path, start_urls, site, refresh, overrides)

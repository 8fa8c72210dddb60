"""The crawl stage's entry in the registry (m5data/stages.py): ``run(ctx) -> StageStats``.

Each crawl runs Scrapy in a subprocess, so the stage can run many times in one worker process
(Twisted's reactor cannot restart in-process) and from a worker thread (Scrapy installs signal
handlers only in a main thread).
"""

from __future__ import annotations

from ..stages import RunContext
from ..storage import StageStats


def check(settings, options: dict) -> None:
    """The crawl needs start URLs, each an absolute http(s) URL (``options["start_urls"]``; ValueError), and a
    forced adapter (``options["site"]``) must be one (UnknownSite)."""
    from .crawl import check_start_urls

    check_start_urls(list(options.get("start_urls") or []))
    if options.get("site"):
        from .adapters import get_adapter

        get_adapter(options["site"])


def run(ctx: RunContext) -> StageStats:
    """Crawl ``options["start_urls"]`` into the store (created if missing).

    Raises ``CrawlFailed`` when the crawl subprocess died, fetched nothing or could not write the
    store; the flow retries it once unless the store could not be written (``flows.retry.transient``);
    a retry resumes (pages already stored are skipped). With ``options["shard"] = [i, n]`` this is
    shard i of n of one run (the start URLs are its hosts' URLs).
    """
    from .crawl import run as crawl

    return crawl(ctx.store, ctx.settings, start_urls=list(ctx.options.get("start_urls") or []),
                 site=ctx.options.get("site"), refresh=bool(ctx.options.get("refresh")), progress=ctx.progress,
                 shard=ctx.shard)

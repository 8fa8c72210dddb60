"""The crawl stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` and its
``check(settings, options)``.

Each crawl runs Scrapy in a subprocess, so the stage can run many times in one worker process
(Twisted's reactor cannot restart in-process) and from a worker thread (Scrapy installs signal
handlers only in a main thread).
"""

from __future__ import annotations

from ..stages import RunContext, StageRun
from ..storage import StageStats
from .checks import check  # noqa: F401  (the registry's crawl check: checks.py)


def run(ctx: RunContext, run: StageRun) -> StageStats:
    """Crawl ``options["start_urls"]`` into the store (created if missing), in the run the contract opened
    (stages.call: the crawl's lock, the shard's for a shard).

    Raises ``CrawlFailed`` when the crawl subprocess died, fetched nothing or could not write the
    store; the flow retries it once unless the store could not be written (``flows.retry.transient``);
    a retry resumes (pages already stored are skipped). With ``options["shard"] = [i, n]`` this is
    shard i of n of one run (the start URLs are its hosts' URLs).
    """
    from .crawl import run as crawl

    return crawl(ctx.store, ctx.settings, start_urls=list(ctx.options.get("start_urls") or []),
                 site=ctx.options.get("site"), refresh=bool(ctx.options.get("refresh")), progress=ctx.progress,
                 shard=ctx.shard, run=run)

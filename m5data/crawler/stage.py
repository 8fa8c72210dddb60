"""The crawl stage's entry in the registry (m5data/stages.py): ``run(ctx, run) -> StageStats`` and its
``check(settings, options)``.

Each crawl runs Scrapy in a subprocess, so the stage can run many times in one worker process
(Twisted's reactor cannot restart in-process) and from a worker thread (Scrapy installs signal
handlers only in a main thread).
"""

from __future__ import annotations

from ..stages import RunContext, StageRun
from ..storage import StageStats


def check(settings, options: dict) -> None:
    """What the crawl cannot run with, refused before any work (``m5data run``: before any stage): start URLs
    that are not absolute http(s) URLs (``options["start_urls"]``; ValueError), a forced adapter
    (``options["site"]``) that is none (UnknownSite), a ``crawl.headers`` that is not a JSON table or a
    ``crawl.cookies_file`` that cannot be read (SessionError), ``crawl.render`` without a browser to render
    with (ValueError) and a ``crawl.render_timeout`` not above 0 (ConfigError)."""
    from pathlib import Path

    from . import session
    from .crawl import check_start_urls

    check_start_urls(list(options.get("start_urls") or []))
    if options.get("site"):
        from .adapters import get_adapter

        get_adapter(options["site"])
    session.parse_headers(settings.crawl.headers)
    if settings.crawl.cookies_file:  # a missing or unreadable file
        session.load_cookies(Path(settings.crawl.cookies_file).expanduser().absolute())
    if settings.crawl.render:
        from .render import check_browser

        if why := check_browser():
            raise ValueError(why)
    if not settings.crawl.render_timeout > 0:
        from ..config_checks import ConfigError

        raise ConfigError(f"crawl.render_timeout must be > 0, got {settings.crawl.render_timeout}")


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

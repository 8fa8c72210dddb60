"""The crawl stage: ``run(store, settings, start_urls=...) -> StageStats``.

Scrapy's Twisted reactor cannot start twice in one process, and a crawl that fails still exits
0, so each crawl runs in a subprocess (``python -m m5data.crawler.child JOB.json``) that writes
its Scrapy stats to JSON when it ends; this parent reads them, decides whether the crawl worked,
and records the ``runs`` row. Logs and stats of a run stay in ``<store>/logs/crawl/<run_id>/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .. import config as cfg
from ..errors import TransientFailure, UserError
from ..stages import StageRun, opened
from ..storage import StageStats
from ..storage.redact import redact_url
from .checks import check, check_start_urls
from .items import Caps
from .optouts import FETCHED, ROBOTS, optout_settings
from .politeness import throttle_by_host
from .render import playwright_settings

CHANGES = ("new", "changed", "unchanged")  # a crawl's products against the store (pipeline.py)
# the other product pages fetched, each counted in ``changes`` (when there are some) under its name, so that
# the counts add up to the product pages fetched (pipeline.py: m5data/pages/<key>)
NOT_COUNTED = {"stored_elsewhere": "already stored under another URL", "duplicate": "duplicate pages",
               "not_stored": "not stored"}
OK_FINISH = {"finished", "closespider_pagecount", "closespider_itemcount", "closespider_timeout"}
STOP_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT}


@dataclasses.dataclass
class CrawlStats(StageStats):
    """StageStats plus what the shops asked of the crawl, per host (``host:port``): ``throttled``
    (429/503 answers), ``retry_after_s`` (seconds paused for Retry-After), ``retry_after_capped``,
    ``crawl_delay_s`` (and ``crawl_delay_asked_s`` when capped or replaced). Recorded in the ``runs``
    row's ``config.job.throttle`` and printed by ``m5data crawl``."""

    throttle: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)


class CrawlFailed(TransientFailure):
    """A crawl that did not work (subprocess died, nothing fetched, a bad finish); says why, or where the
    reason is (the log, or the ``crawl_errors`` rows). Worth one more try: the sites may answer then.
    ``stats``: the run's CrawlStats."""


class CrawlNotStored(UserError, CrawlFailed):
    """A crawl whose store writes failed or whose items could not be stored: the store must be fixed
    first (m5data/errors.py: a UserError, never retried); the message names the log."""


class CrawlInterrupted(UserError, CrawlFailed):
    """A crawl stopped by Ctrl-C or SIGTERM (Scrapy's graceful shutdown): what it stored stands, and
    the same crawl again resumes. Never retried by the flow: the stop was asked for."""


INTERRUPTED = "crawl interrupted; nothing stored was lost; run the same command again to resume"
PRIVATE_HOST = "m5data/refused/private_host/"  # + host: requests refused as not public (safety.py)


def shard_start_urls(urls: list[str], n: int) -> list[list[str]]:
    """Start URLs split by host into at most ``n`` shards, for the crawl's shards on cluster workers.

    The unit is the host: every start URL of a host lands in one shard, so one Scrapy process
    holds that host's download slot and its politeness (delay, per-domain concurrency, robots.txt)
    stays what one crawl would give. Hosts go, the largest first, to the shard with the fewest URLs
    (ties: the lowest index), so the split depends only on the URLs; empty shards are left out:
    one host is one shard, whatever ``n``.
    """
    by_host: dict[str, list[str]] = {}
    for url in urls:
        by_host.setdefault((urlsplit(url).hostname or "").lower(), []).append(url)
    shards: list[list[str]] = [[] for _ in range(max(1, min(n, len(by_host))))]
    for host in sorted(by_host, key=lambda h: (-len(by_host[h]), h)):
        min(shards, key=len).extend(by_host[host])
    return [group for group in shards if group]


def build_settings(cs: cfg.CrawlSettings, *, store_path: str, compression: str, run_id: str, resume: bool,
                   log_file: str, user_agent: str = cfg.HttpSettings.user_agent) -> dict:
    """Scrapy settings for one crawl, from the ``[crawl]`` section and the shared ``http.user_agent``."""
    return {
        "BOT_NAME": "m5data", "USER_AGENT": user_agent,
        "ROBOTSTXT_OBEY": cs.obey_robots,
        "CONCURRENT_REQUESTS": cs.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": cs.per_domain,
        "DOWNLOAD_DELAY": cs.download_delay,
        "AUTOTHROTTLE_ENABLED": cs.autothrottle,
        "AUTOTHROTTLE_START_DELAY": max(cs.download_delay, 0.1),
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(cs.per_domain),
        "M5DATA_MAX_PAGES": cs.max_pages,  # exact (pagecap.py); Scrapy's CLOSESPIDER_PAGECOUNT ran past it
        "DEPTH_LIMIT": cs.max_depth,
        "DOWNLOAD_TIMEOUT": cs.timeout,
        "DOWNLOAD_MAXSIZE": cs.max_page_bytes,  # inflated too (HttpCompressionMiddleware): "page too large" rows
        "DOWNLOAD_WARNSIZE": cs.max_page_bytes // 2,
        "TELNETCONSOLE_ENABLED": False, "REMOTE_CONTROL_ENABLED": False,  # 2.19's code-running HTTP endpoint: never
        "LOG_FILE": log_file,
        "LOG_LEVEL": "INFO",
        "ITEM_PIPELINES": {"m5data.crawler.pipeline.StorePipeline": 300},
        "CONCURRENT_ITEMS": 1,  # Scrapy's tasks per response (100); the pipeline is synchronous: crawl CPU -24%
        # process_request runs from low to high numbers: 45 refuses unsafe requests (redirect hops
        # included) before robots.txt (100) is fetched for them; process_response runs from high to
        # low: 120 sees the body after decompression (590)
        # Scrapy's OffsiteMiddleware is off: it drops a link's redirect to another host when the
        # redirect is scheduled, with no errback and so no crawl_errors row; the spider keeps links in
        # scope itself and SafetyMiddleware refuses an off-scope redirect hop with its reason
        # 560: waits for its host's gate after robots.txt (100) and the retry middleware (550), so a
        # retry waits too; sees a 429/503 before RetryMiddleware makes its retry (politeness.py)
        "DOWNLOADER_MIDDLEWARES": {"m5data.crawler.safety.SafetyMiddleware": 45,
                                   "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
                                   "m5data.crawler.optouts.TdmRepMiddleware": 110,  # after robots.txt (100)
                                   "m5data.crawler.spider.CharsetMiddleware": 120,
                                   "m5data.crawler.politeness.PolitenessMiddleware": 560,
                                   # sees a 3xx's headers before RedirectMiddleware (600) follows it
                                   "m5data.crawler.optouts.RedirectOptOutMiddleware": 610,
                                   "m5data.crawler.pagecap.PageCapMiddleware": 950},  # last: counts what is sent
        # no telnet console nor remote control (Scrapy 2.19's HTTP endpoint that runs code sent to it): the
        # subprocess leaves them out of Scrapy's base list (child.without_listeners)
        "EXTENSIONS": {"m5data.crawler.spider.ProgressReporter": 500},
        "M5DATA_STORE": store_path,
        "M5DATA_STORE_COMPRESSION": compression,
        "M5DATA_RUN_ID": run_id,
        "M5DATA_RESUME": resume,
        "M5DATA_REVALIDATE": cs.revalidate and not resume,  # conditional requests: a refresh only
        "M5DATA_BATCH_ROWS": cs.batch_rows,
        "M5DATA_CAPS": dataclasses.asdict(Caps.from_settings(cs)),
        "M5DATA_POLITENESS": {"max_retry_after": cs.max_retry_after, "max_crawl_delay": cs.max_crawl_delay,
                              "crawl_delay": cs.crawl_delay},
        "URLLENGTH_LIMIT": cs.max_url_chars,  # links longer than a stored URL may be are not followed
        "M5DATA_ALLOW_PRIVATE": cs.allow_private,
        "M5DATA_RENDER": cs.render,
        **optout_settings(cs, user_agent),
        "M5DATA_RENDER_TIMEOUT": cs.render_timeout,
        **(playwright_settings(cs.render_timeout) if cs.render else {}),
    }


def run(store, settings: cfg.Settings, *, start_urls: list[str], site: str | None = None, refresh: bool = False,
        progress: bool = False, shard: tuple[int, int] | None = None, run: StageRun | None = None) -> StageStats:
    """Crawl from ``start_urls`` into ``store``; raises :class:`CrawlFailed` after recording a failed run.

    Args:
        start_urls: listing pages, sitemaps (``.xml``/``.xml.gz``) or a ``robots.txt``; their hosts
            are the only ones crawled.
        site: adapter forced on every page (default: by host; generic schema.org otherwise).
        refresh: fetch product pages already in the store again (default: skip them: resume).
        progress: show a rich progress line.
        shard: ``(i, n)`` when this crawl is shard i of n of one run (the start URLs of its hosts,
            from :func:`shard_start_urls`): the shards hold the crawl lock together.
        run: the run the contract opened (``stages.call``); None: opened here (``stages.opened``),
            after the stage's check (crawler/stage.py) refused what it cannot run with, before any work.
    """
    check(settings, {"start_urls": start_urls, "site": site})  # m5data run: before any stage
    if run is not None:
        return _crawl(run, store, settings, start_urls, site, refresh, progress, shard)
    # one crawl per store (the shards of one run together: the shard's lock); sweeps dead runs' temp files
    with opened("crawl", store, settings, start_urls=start_urls, site=site, refresh=refresh,
                          shard=shard) as run:
        return _crawl(run, store, settings, start_urls, site, refresh, progress, shard)


def _crawl(srun: StageRun, store, settings: cfg.Settings, start_urls: list[str], site: str | None, refresh: bool,
           progress: bool, shard: tuple[int, int] | None) -> StageStats:
    from ..storage.redact import install_log_redaction
    from . import session

    urls = check_start_urls(start_urls)
    # a start URL's user:pass becomes its host's Authorization header: the URL is crawled and kept without it
    urls, url_auth = session.split_credentials(urls)
    secret_headers = session.merge(session.parse_headers(settings.crawl.headers), url_auth)
    session.register_headers(secret_headers)
    install_log_redaction()
    cookies_file = str(Path(settings.crawl.cookies_file).expanduser().absolute()) if settings.crawl.cookies_file else ""
    stats = srun.stats
    # the run's folder: logs/crawl/<run> of the store (on object storage: a local folder uploaded at the
    # end); partial: kept also when the run fails, its log is what explains it
    with store.staged(f"logs/crawl/{stats.run_id}", partial=True) as rundir:
        stats_file, log_file = rundir / "stats.json", rundir / "crawl.log"
        job = {
            "store": str(store.root), "start_urls": urls, "site": site, "stats_file": str(stats_file),
            "parent_pid": os.getpid(),
            # in the main thread Ctrl-C raises here: the subprocess ignores SIGINT (a terminal sends it to
            # both) and gets one SIGTERM per Ctrl-C from _wait, so that Scrapy stops gracefully on the
            # first (two signals at once would force it); in a worker thread (a flow) it takes SIGINT itself
            "parent_handles_sigint": threading.current_thread() is threading.main_thread(),
            "scrapy_settings": build_settings(settings.crawl, store_path=str(store.root), compression=store.compression,
                                              run_id=stats.run_id, resume=not refresh, log_file=str(log_file),
                                              user_agent=settings.http.user_agent),
        }
        session.add_settings(job["scrapy_settings"], cookies_file)
        job_file = rundir / "job.json"
        session.write_private(job_file, json.dumps(job, indent=2))
        with open(rundir / "stderr.txt", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "m5data.crawler.child", str(job_file)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
            try:  # the secrets go on stdin, never into a file (the job file only names the cookies file)
                proc.stdin.write(json.dumps({"headers": secret_headers}))
                proc.stdin.close()
            except BrokenPipeError:  # the subprocess died at once: _judge says so
                pass
            stopped = _wait(proc, progress)
            code = proc.returncode
        crawl_stats = json.loads(stats_file.read_text()) if stats_file.is_file() else None
        failure = _judge(code, crawl_stats, stats, log_file, n_start=len(set(urls)))
        interrupted = stopped or (crawl_stats or {}).get("finish_reason") == "shutdown"
        if interrupted:
            failure = CrawlInterrupted(INTERRUPTED, stats)
    log_file = store.where(f"logs/crawl/{stats.run_id}/{log_file.name}")  # on object storage: the object
    config = {**cfg.as_dict(settings), "job": {"start_urls": [redact_url(u) for u in start_urls], "site": site,
                                             "refresh": refresh, "log": str(log_file),
                                             **({"shard": list(shard)} if shard else {}),
                                             **({"throttle": stats.throttle} if stats.throttle else {}),
                                             "optouts": stats.details.get("optouts", {})}}
    status = "ok" if failure is None else ("interrupted" if interrupted or (code < 0 and -code in STOP_SIGNALS)
                                           else "failed")
    srun.record(config, status)
    store.refresh_catalog(quiet=True)
    if failure is not None:
        raise failure
    return stats


def _wait(proc: subprocess.Popen, progress: bool) -> bool:
    """Follow the subprocess until it exits; True when Ctrl-C (a SIGINT here) stopped it: each one
    is passed on as a SIGTERM (Scrapy: the first stops the crawl gracefully, a second at once)."""
    stopped = False
    while True:
        try:
            _follow(proc, progress)
            proc.wait()
            return stopped
        except KeyboardInterrupt:
            stopped = True
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)


def _follow(proc: subprocess.Popen, progress: bool) -> None:
    """Read the subprocess's progress lines (and show them when ``progress``)."""
    bar = task = None
    if progress:
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        from ..bars import bar as progress_bar
        from ..console import console

        # shown from the crawl's first progress line on: a crawl that fails before prints its error alone
        bar = progress_bar(SpinnerColumn(), TextColumn("crawl: {task.fields[pages]} pages, {task.fields[products]} products, "
                                                   "{task.fields[errors]} errors"), TimeElapsedColumn(), console=console)
        task = bar.add_task("crawl", total=None, pages=0, products=0, errors=0)
        bar.start()
    try:
        for line in proc.stdout:
            if bar is not None and line.startswith('{"progress"'):
                try:
                    bar.update(task, **json.loads(line)["progress"])
                except (ValueError, KeyError):
                    pass
    finally:
        if bar is not None:
            bar.stop()


def _judge(code: int, crawl: dict | None, stats: StageStats, log_file: Path, n_start: int = 1) -> CrawlFailed | None:
    """Fill ``stats`` from the crawl's own stats; return why the crawl failed (CrawlNotStored: the store
    is at fault, not worth a retry), or None if it worked."""
    if crawl is not None:
        if isinstance(stats, CrawlStats):
            stats.throttle = throttle_by_host(crawl)
        stats.n_in = int(crawl.get("response_received_count", 0)) - int(crawl.get(FETCHED, 0))  # tdmrep.json: no page
        stats.details["optouts"] = {"page": int(crawl.get("m5data/optouts/page", 0))}
        if robots := int(crawl.get(ROBOTS, 0)):  # of those, the product links robots.txt disallowed
            stats.details["optouts"]["robots.txt"] = robots
        stats.n_out = int(crawl.get("m5data/products_stored", 0))
        stats.bytes = int(crawl.get("downloader/response_bytes", 0))
        stats.details["changes"] = {kind: int(crawl.get(f"m5data/changes/{kind}", 0)) for kind in CHANGES}
        stats.details["changes"].update({name: n for key, name in NOT_COUNTED.items()
                                         if (n := int(crawl.get(f"m5data/pages/{key}", 0)))})
        stats.details["not_modified"] = int(crawl.get("m5data/not_modified", 0))
        # what was fetched (product pages and the others: listings, sitemaps, robots.txt, errors) and
        # the stored product pages not fetched again (a resume)
        stats.details["pages"] = {"fetched": stats.n_in, "product": int(crawl.get("m5data/product_pages", 0)),
                                  "stored_skipped": int(crawl.get("m5data/stored_skipped", 0))}
        for key, n in crawl.items():
            if key.startswith("m5data/errors/"):
                stats.fail(key.removeprefix("m5data/errors/"), int(n))
            elif key.startswith("spider_exceptions/"):
                stats.fail(f"spider exception: {key.removeprefix('spider_exceptions/')}", int(n))
    if code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return CrawlFailed(f"crawl subprocess {how}; see {log_file}", stats)
    if crawl is None:
        return CrawlFailed(f"crawl wrote no stats; see {log_file}", stats)
    if crawl.get("m5data/store_write_failed"):
        return CrawlNotStored(f"store writes failed; see {log_file}", stats)
    if crawl.get("m5data/pipeline_errors"):
        return CrawlNotStored(f"{crawl['m5data/pipeline_errors']} items could not be stored; see {log_file}", stats)
    reason = crawl.get("finish_reason")
    if reason not in OK_FINISH:
        return CrawlFailed(f"crawl ended with {reason!r}; see {log_file}", stats)
    if stats.n_in == 0:
        return CrawlFailed(_nothing_fetched(crawl, stats), stats)
    if int(crawl.get("m5data/start_urls_empty", 0)) >= n_start and stats.n_out == 0:
        return CrawlFailed(f"no product found: none of the {n_start} start URL(s) gave a product or a link to "
                           f"follow; {_reasons_at(stats)}", stats)
    return None


def _reasons_at(stats: StageStats) -> str:
    return f"the reasons are in crawl_errors (run_id '{stats.run_id}')"


def _nothing_fetched(crawl: dict, stats: StageStats) -> str:
    """Why a crawl fetched no page: the hosts refused as not public and how to allow them, and the
    other errors by kind, with where their rows are (the log does not hold the reasons)."""
    refused = {key.removeprefix(PRIVATE_HOST): int(n) for key, n in crawl.items() if key.startswith(PRIVATE_HOST)}
    why = []
    if refused:
        names = ", ".join(sorted(refused))
        one = len(refused) == 1
        why.append(f"refused: {names} {'is a' if one else 'are'} loopback/private address{'' if one else 'es'}; "
                   f"pass --allow-private (crawl.allow_private) to crawl {'it' if one else 'them'}")
    others = stats.failures.copy()
    others["refused"] -= sum(refused.values())
    others = {reason: n for reason, n in others.items() if n > 0}
    if others:
        kinds = ", ".join(f"{reason} {n:,}" for reason, n in sorted(others.items(), key=lambda kv: -kv[1]))
        why.append(f"{sum(others.values()):,} errors ({kinds}); {_reasons_at(stats)}")
    return "no page could be fetched: " + ("; ".join(why) or "no request was made")

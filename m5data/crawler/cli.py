"""``m5data crawl``: crawl product pages into the store (mounted by ``m5data/cli.py``)."""

from __future__ import annotations

from typing import Optional

import typer


def crawl(
    ctx: typer.Context,
    start_url: list[str] = typer.Option(..., "--start-url", help="Listing page, sitemap (.xml/.xml.gz) or robots.txt to start from (repeatable). Only their hosts are crawled."),
    site: Optional[str] = typer.Option(None, "--site", help="Site adapter for every page (amazon, aliexpress, generic, ...). Default: chosen per page by host or template, else generic schema.org."),
    refresh: bool = typer.Option(False, "--refresh", help="Fetch product pages already in the store again (default: skip them, so a re-run resumes)."),
    max_pages: Optional[int] = typer.Option(None, "--max-pages", help="Send at most this many page requests, robots.txt included (crawl.max_pages; 0 = no limit)."),
    max_depth: Optional[int] = typer.Option(None, "--max-depth", help="Follow links this many hops from a start URL (crawl.max_depth; 0 = no limit)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Requests in flight (crawl.concurrency)."),
    per_domain: Optional[int] = typer.Option(None, "--per-domain", help="Requests in flight per domain (crawl.per_domain)."),
    delay: Optional[float] = typer.Option(None, "--delay", help="Seconds between requests to one domain (crawl.download_delay)."),
    allow_private: Optional[bool] = typer.Option(None, "--allow-private/--no-allow-private", help="Crawl hosts on loopback/private/link-local addresses (crawl.allow_private; off by default)."),
    render: Optional[bool] = typer.Option(None, "--render/--no-render", help="Fetch pages whose product data scripts fill in again through headless Chromium (crawl.render; needs /usr/bin/chromium)."),
    cookies: Optional[str] = typer.Option(None, "--cookies", help="Netscape cookies.txt (curl -c, a browser's cookies.txt export) of a logged-in session; each cookie goes only to its own host (crawl.cookies_file; never stored or logged)."),
) -> None:
    """Crawl product pages from start URLs into products, specs, media (pending) and crawl_errors.

    \b
    Examples:
      m5data --store st crawl --start-url https://a.example/robots.txt --delay 1
      m5data --store st crawl --start-url http://127.0.0.1:8000/ --allow-private
      m5data --store st crawl --start-url https://a.example/ --refresh
    """
    from ..console import console, fail, interrupted, stage_summary, warn
    from ..verbs import run_stage, stage_context
    from .adapters import UnknownSite
    from .crawl import CrawlFailed, CrawlInterrupted
    from .walls import walled_note

    rctx = stage_context(ctx, options={"start_urls": start_url, "site": site, "refresh": refresh},
                         **{"crawl.max_pages": max_pages, "crawl.max_depth": max_depth,
                            "crawl.concurrency": concurrency, "crawl.per_domain": per_domain,
                            "crawl.download_delay": delay, "crawl.allow_private": allow_private,
                            "crawl.render": render, "crawl.cookies_file": cookies})
    try:
        stats = run_stage("crawl", rctx, summary=False, handles=(ValueError, CrawlFailed))  # shown below
    except (ValueError, UnknownSite) as exc:
        fail(str(exc), code=2)
    except CrawlFailed as exc:
        console.print(summary(stage_summary, exc.stats))
        if isinstance(exc, CrawlInterrupted):
            interrupted("crawl")
        if note := walled_note(exc.stats.failures):
            warn(note)
        fail(str(exc))
    console.print(summary(stage_summary, stats))
    if note := walled_note(stats.failures):
        warn(note)


def summary(stage_summary, stats):
    """The stage summary plus the pages fetched (product pages and the others) and the stored ones
    not fetched again, and per host what the shop asked of the crawl (Retry-After, Crawl-delay)."""
    table = stage_summary(stats)
    if pages := stats.details.get("pages"):
        fetched, product = pages["fetched"], min(pages["product"], pages["fetched"])
        table.add_row("pages fetched", f"{fetched:,}: {product:,} product pages, {fetched - product:,} listings and other")
        if pages["stored_skipped"]:
            table.add_row("not fetched", f"{pages['stored_skipped']:,} product pages already stored (--refresh fetches them)")
    if elsewhere := stats.details.get("changes", {}).get("already stored under another URL"):
        table.add_row("stored elsewhere", f"{elsewhere:,} product pages fetched whose product ids the store holds "
                      "under another URL (the same shop on another host or port?): not stored again; --refresh "
                      "compares them with the stored products and keeps the new URLs")
    if opted := stats.details.get("optouts", {}).get("page"):
        robots = stats.details["optouts"].get("robots.txt", 0)
        table.add_row("opted out", f"{opted:,} product pages: not stored ("
                      + (f"{robots:,} disallowed by robots.txt; " if robots else "") + "optouts; docs/compliance.md)")
    for host, seen in sorted(getattr(stats, "throttle", {}).items()):
        if seen.get("throttled"):
            capped = f", {seen['retry_after_capped']} capped" if seen.get("retry_after_capped") else ""
            table.add_row(f"  throttled (429/503): {host}",
                          f"{seen['throttled']} ({seen.get('retry_after_s', 0):.1f} s Retry-After{capped})")
        if seen.get("crawl_delay_s"):
            asked = f" (asked {seen['crawl_delay_asked_s']:g} s)" if "crawl_delay_asked_s" in seen else ""
            table.add_row(f"  Crawl-delay: {host}", f"{seen['crawl_delay_s']:g} s{asked}")
    return table
